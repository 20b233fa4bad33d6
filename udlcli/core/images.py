"""The one image-grid helper: a batch of images tiled into one mosaic array, for every figure and sample grid."""

from __future__ import annotations

import math

import numpy as np


def to_numpy(images) -> np.ndarray:
    """A tensor or array of images, (B, H, W), (B, 1, H, W) or (B, C, H, W), in [0, 1] -> float32 numpy (B, C, H, W)."""
    a = (
        images.detach().float().cpu().numpy()
        if hasattr(images, "detach")
        else np.asarray(images, dtype=np.float32)
    )
    if a.ndim == 3:
        a = a[:, None]
    return np.clip(a.astype(np.float32, copy=False), 0.0, 1.0)


def grid_shape(n: int, ncol: int | None = None) -> tuple[int, int]:
    """(rows, cols) for n tiles: ncol columns, or the smallest square that holds them."""
    cols = max(1, min(n, ncol)) if ncol else max(1, int(math.ceil(math.sqrt(n))))
    return int(math.ceil(n / cols)), cols


def tile(images, ncol: int | None = None, pad: int = 0, fill: float = 0.0) -> np.ndarray:
    """Tile images into one mosaic, row by row, with `pad` pixels of `fill` around and between them.

    Returns float32 in [0, 1]: (rows*H + (rows+1)*pad, cols*W + (cols+1)*pad) for one channel, with a
    trailing channel axis for several (what matplotlib's imshow and PIL take).
    """
    a = to_numpy(images)  # (B, C, H, W)
    b, c, h, w = a.shape
    rows, cols = grid_shape(b, ncol)
    canvas = np.full(
        (c, rows * h + (rows + 1) * pad, cols * w + (cols + 1) * pad), fill, np.float32
    )
    for i in range(b):
        r, k = divmod(i, cols)
        top, left = pad + r * (h + pad), pad + k * (w + pad)
        canvas[:, top : top + h, left : left + w] = a[i]
    return canvas[0] if c == 1 else canvas.transpose(1, 2, 0)


def tile_origin(i: int, shape: tuple[int, int], ncol: int, pad: int = 0) -> tuple[int, int]:
    """(top, left) pixel of tile i in a mosaic of tiles of shape (H, W) made by tile(..., ncol, pad)."""
    r, k = divmod(i, ncol)
    return pad + r * (shape[0] + pad), pad + k * (shape[1] + pad)
