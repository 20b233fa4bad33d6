"""The names of the datasets udl reads by name: no imports, so the CLI builds its --dataset help without pydantic or torch."""

DATASET_NAMES = (
    "mnist",
    "fashion-mnist",
    "kmnist",
    "mnist-sample",
    "cifar10",
    "cifar100",
    "svhn",
    "stl10",
    "stl10-unlabeled",
    "celeba",
)
"""Besides these, `folder:PATH` reads a folder of images (udlcli/data/folders.py)."""
