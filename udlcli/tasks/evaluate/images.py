"""`udl evaluate --images`: a folder of generated images, checked against the dataset's shape before any work."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from udlcli.data.folders import list_images, probe, read_image
from udlcli.errors import DataError


def _shape_text(shape) -> str:
    c, h, w = shape
    return f"{h}x{w} {'grayscale' if c == 1 else 'colour'}"


def image_files(folder: str | Path) -> list[Path]:
    """The image files under folder: at least two, or a one-line DataError."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"--images {folder}: no such folder; give a folder of the dataset's images")
    files = list_images(folder)
    if len(files) < 2:
        raise DataError(
            f"--images {folder}: found {len(files)} image(s); FID and precision/recall need at least 2"
        )
    return files


def load_images(folder: str | Path, shape: tuple[int, int, int], dataset: str) -> torch.Tensor:
    """Every image under folder as (N, C, H, W) float32 in [0, 1]; each must have the dataset's size and colour."""
    c, h, w = shape
    files = image_files(folder)
    out = np.empty((len(files), c, h, w), np.uint8)
    for i, f in enumerate(files):
        (fw, fh), colour = probe(f)  # a file that is not an image is a one-line error here
        if (fh, fw) != (h, w):
            raise DataError(
                f"{f} is {fw}x{fh}; udl evaluate needs {_shape_text(shape)} images like {dataset}'s, so resize them first"
            )
        if colour and c == 1:
            raise DataError(
                f"{f} is a colour image; udl evaluate needs {_shape_text(shape)} images like {dataset}'s, so convert it to grayscale first"
            )
        out[i] = read_image(f, (h, w), c)[0]
    return torch.from_numpy(out).float().div_(255.0)


def check_images(x: torch.Tensor, label: str, shape: tuple[int, int, int]) -> torch.Tensor:
    """A source's images as float (N, C, H, W) in [0, 1], or a one-line DataError saying what is wrong with them."""
    if x.ndim != 4 or tuple(x.shape[1:]) != tuple(shape):
        raise DataError(
            f"{label} gave images of shape {tuple(x.shape)}; udl evaluate needs (N, {', '.join(map(str, shape))}) images"
        )
    if len(x) < 2:
        raise DataError(f"{label} gave {len(x)} image(s); FID and precision/recall need at least 2")
    if not torch.isfinite(x).all():
        raise DataError(
            f"{label} gave images with NaN or infinite pixels; the run may have diverged"
        )
    return x.float().clamp(0, 1)
