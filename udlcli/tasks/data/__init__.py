"""`udl data`: the named datasets listed (where, size, whole or not), fetched ahead of time, verified, located."""

from udlcli.tasks.data.run import (
    DatasetState,
    FileCheck,
    Verification,
    dataset_path,
    fetch,
    list_datasets,
    locate,
    verify,
)

__all__ = [
    "DatasetState",
    "FileCheck",
    "Verification",
    "dataset_path",
    "fetch",
    "list_datasets",
    "locate",
    "verify",
]
