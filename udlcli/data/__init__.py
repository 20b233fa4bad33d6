"""The data layer: datasets by name, held as uint8 tensors and sliced into batches on the device."""

from udlcli.data.dataset import ImageDataset, TensorImages, showcase_indices, stratified_indices
from udlcli.data.loading import (
    check_data_dir,
    fit_config,
    load_configured,
    load_dataset,
    resolve_data_dir,
)

__all__ = [
    "fit_config",
    "load_configured",
    "ImageDataset",
    "TensorImages",
    "check_data_dir",
    "load_dataset",
    "resolve_data_dir",
    "showcase_indices",
    "stratified_indices",
]
