"""Real colour images offline: seeded patches of scikit-image's bundled photographs, in the layouts udl reads.

The class of a patch is the photograph it was cut from. The same patches are written as a folder
dataset (one sub-folder per photograph), in CIFAR-10's batch layout and in SVHN's .mat layout.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np

PHOTOS = [
    "astronaut",
    "chelsea",
    "coffee",
    "rocket",
    "colorwheel",
    "hubble_deep_field",
    "immunohistochemistry",
    "retina",
    "stereo_motorcycle",
]


def patches(size: int, per_class: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """(x uint8 (N, 3, size, size), y int64 (N,), class names): per_class random patches of each photograph."""
    from skimage import data as skdata

    rng = np.random.default_rng(seed)
    xs, ys = [], []
    for label, name in enumerate(PHOTOS):
        img = getattr(skdata, name)()
        img = (
            img[0] if isinstance(img, tuple) else img
        )  # stereo_motorcycle: (left, right, disparity)
        h, w = img.shape[:2]
        for _ in range(per_class):
            r, c = rng.integers(0, h - size), rng.integers(0, w - size)
            xs.append(img[r : r + size, c : c + size].transpose(2, 0, 1))
            ys.append(label)
    order = rng.permutation(len(xs))
    return np.stack(xs)[order].copy(), np.asarray(ys, np.int64)[order], list(PHOTOS)


def write_folder(root: Path, x: np.ndarray, y: np.ndarray, classes: list[str]) -> Path:
    from PIL import Image

    for i, (img, label) in enumerate(zip(x, y)):
        d = root / classes[label]
        d.mkdir(parents=True, exist_ok=True)
        Image.fromarray(img.transpose(1, 2, 0)).save(d / f"{i:05d}.png")
    return root


def write_cifar(root: Path, x_train, y_train, x_test, y_test, classes: list[str]) -> Path:
    """root/cifar-10-batches-py/ as the CIFAR-10 python version has it: five train batches, test_batch, batches.meta."""
    d = root / "cifar-10-batches-py"
    d.mkdir(parents=True, exist_ok=True)

    def dump(name: str, obj: dict) -> None:
        with open(d / name, "wb") as f:
            pickle.dump(obj, f, protocol=2)

    for i, idx in enumerate(np.array_split(np.arange(len(x_train)), 5), start=1):
        dump(
            f"data_batch_{i}",
            {
                b"batch_label": b"training batch",
                b"labels": [int(v) for v in y_train[idx]],
                b"data": x_train[idx].reshape(len(idx), -1),
            },
        )
    dump(
        "test_batch",
        {
            b"batch_label": b"testing batch",
            b"labels": [int(v) for v in y_test],
            b"data": x_test.reshape(len(x_test), -1),
        },
    )
    dump("batches.meta", {b"label_names": [c.encode() for c in classes], b"num_vis": 3072})
    return root


def write_svhn(root: Path, x_train, y_train, x_test, y_test) -> Path:
    """root/SVHN/{train,test}_32x32.mat: X (32, 32, 3, N) uint8 and y (N, 1), digit 0 written as 10."""
    from scipy.io import savemat

    d = root / "SVHN"
    d.mkdir(parents=True, exist_ok=True)
    for name, x, y in (("train", x_train, y_train), ("test", x_test, y_test)):
        y10 = np.where(y == 0, 10, y).reshape(-1, 1).astype(np.uint8)
        savemat(str(d / f"{name}_32x32.mat"), {"X": x.transpose(2, 3, 1, 0), "y": y10})
    return root
