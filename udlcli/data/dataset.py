"""A dataset in memory: whole uint8 tensors (N, C, H, W), the seeded 80/20 split, on-device batching, fair subsets.

Loading one by name, and fitting a run's data section to it, is udlcli.data.loading.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np
import torch

from udlcli.errors import DataError


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
    """A split held as one uint8 tensor (N, C, H, W) plus int64 labels, both on the training device.

    Batches are slices of it, turned into float [0, 1] tensors (B, C, H, W) on the device:
    no per-sample transforms and no DataLoader workers, which is what makes an epoch fast.
    A (N, H, W) tensor is taken as one channel.
    """

    def __init__(self, x: torch.Tensor, y: torch.Tensor):
        if x.ndim == 3:
            x = x.unsqueeze(1)
        assert x.dtype == torch.uint8 and x.ndim == 4, x.shape
        self.x, self.y = x, y

    @property
    def shape(self) -> tuple[int, int, int]:
        """(C, H, W) of every image."""
        return tuple(self.x.shape[1:])

    def __len__(self) -> int:
        return len(self.x)

    def to(self, device: torch.device | str) -> TensorImages:
        return TensorImages(self.x.to(device), self.y.to(device))

    def subset(self, idx: torch.Tensor | np.ndarray) -> TensorImages:
        idx = torch.as_tensor(idx, device=self.x.device)
        return TensorImages(self.x[idx], self.y[idx])

    def images(self, idx=None) -> torch.Tensor:
        """Float images in [0, 1], shape (B, C, H, W)."""
        x = self.x if idx is None else self.x[idx]
        return x.float().div_(255.0)

    def n_batches(self, batch_size: int) -> int:
        return (len(self) + batch_size - 1) // batch_size

    def batches(
        self, batch_size: int, generator: torch.Generator | None = None
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Yield (x in [0,1] (B, C, H, W), y (B,)); shuffled when a generator is given."""
        n = len(self)
        # The permutation comes from a CPU generator so CPU and CUDA runs see the same order.
        order = (
            torch.randperm(n, generator=generator).to(self.x.device)
            if generator is not None
            else None
        )
        for start in range(0, n, batch_size):
            if order is None:
                sl = slice(start, start + batch_size)
                yield self.x[sl].float().div_(255.0), self.y[sl]
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
    stats: tuple[list[float], list[float]] | None = None
    """Per-channel (mean, std) of the whole training split, before any --limit: a quick run normalises as a full one."""

    @property
    def shape(self) -> tuple[int, int, int]:
        """(C, H, W) of every image of both splits."""
        return self.train.shape

    @property
    def labelled(self) -> bool:
        """Every training image has one of at least two classes: a classifier can be trained on it."""
        return self.why_unlabelled() is None

    def why_unlabelled(self) -> str | None:
        """Why no classifier can be trained on this data ("has 1 class", ...), or None when it can."""
        if int((self.train.y >= 0).sum()) < len(self.train):
            return "has training images without a class label"
        if len(self.classes) < 2:
            return f"has {len(self.classes)} class{'es' if len(self.classes) != 1 else ''}"
        return None

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
            "shape": list(self.shape),
            "train_size": len(self.train),
            "test_size": len(self.test),
            "classes": self.classes,
            "source": self.source,
            "notes": self.notes,
        }
