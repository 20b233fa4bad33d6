"""The data layer: datasets by name, held as uint8 tensors and sliced into batches on the device."""

from udlcli.data.dataset import ImageDataset, TensorImages, load_dataset, resolve_data_dir

__all__ = ["ImageDataset", "TensorImages", "load_dataset", "resolve_data_dir"]
