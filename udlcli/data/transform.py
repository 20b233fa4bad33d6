"""Whole-split image transforms on uint8 tensors (N, C, H, W): resize, colour conversion, centre crop, channel statistics.

They run once, when a dataset is loaded, in chunks so a large split never needs a float copy of
itself: the result is uint8 again, and batches are sliced from it on the device as before.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

CHUNK = 4096
GRAY_WEIGHTS = (0.299, 0.587, 0.114)
"""ITU-R 601-2 luma, what PIL's convert("L") uses."""


def as_nchw(x: np.ndarray | torch.Tensor) -> torch.Tensor:
    """uint8 images (N, H, W), (N, H, W, C) or (N, C, H, W) -> a contiguous uint8 tensor (N, C, H, W).

    A trailing axis of 1 or 3 is read as channels-last (numpy and PIL's layout), as is (N, H, W, C)
    whenever the last axis is 1 or 3 and the second is not.
    """
    t = torch.as_tensor(np.ascontiguousarray(x) if isinstance(x, np.ndarray) else x)
    if t.dtype != torch.uint8:
        raise TypeError(f"images must be uint8, got {t.dtype}")
    if t.ndim == 3:
        t = t.unsqueeze(1)
    elif t.ndim == 4 and t.shape[-1] in (1, 3) and t.shape[1] not in (1, 3):
        t = t.permute(0, 3, 1, 2)
    if t.ndim != 4:
        raise ValueError(f"images must be (N, H, W) or (N, C, H, W), got {tuple(t.shape)}")
    return t.contiguous()


def _chunks(x: torch.Tensor, fn) -> torch.Tensor:
    return torch.cat([fn(x[i : i + CHUNK]) for i in range(0, len(x), CHUNK)]) if len(x) else fn(x)


def _to_uint8(f: torch.Tensor) -> torch.Tensor:
    return f.round_().clamp_(0, 255).to(torch.uint8)


def to_gray(x: torch.Tensor) -> torch.Tensor:
    """(N, 3, H, W) -> (N, 1, H, W) by ITU-R 601-2 luma; one channel stays as it is."""
    if x.shape[1] == 1:
        return x
    w = torch.tensor(GRAY_WEIGHTS).view(1, 3, 1, 1)
    return _chunks(x, lambda c: _to_uint8((c.float() * w).sum(1, keepdim=True)))


def to_rgb(x: torch.Tensor) -> torch.Tensor:
    """(N, 1, H, W) -> (N, 3, H, W), the gray value in each channel; three channels stay as they are."""
    return x.expand(-1, 3, -1, -1).contiguous() if x.shape[1] == 1 else x


def resize(x: torch.Tensor, size: int | tuple[int, int]) -> torch.Tensor:
    """Bilinear resize to size x size (or (H, W)), with antialiasing when shrinking, as PIL does; uint8 in and out."""
    hw = (size, size) if isinstance(size, int) else tuple(size)
    if tuple(x.shape[-2:]) == hw:
        return x
    return _chunks(
        x,
        lambda c: _to_uint8(
            F.interpolate(c.float(), size=hw, mode="bilinear", antialias=True, align_corners=False)
        ),
    )


def center_crop(x: torch.Tensor, size: int) -> torch.Tensor:
    """The central size x size square of each image (CelebA's 148 crop)."""
    h, w = x.shape[-2:]
    top, left = (h - size) // 2, (w - size) // 2
    return x[..., top : top + size, left : left + size].contiguous()


def channel_stats(x: torch.Tensor, decimals: int = 4) -> tuple[list[float], list[float]]:
    """Per-channel mean and (population) std of uint8 images (N, C, H, W) as pixels in [0, 1], rounded.

    Rounded to 4 decimals, MNIST's training split gives the report's 0.1307 and 0.3081.
    """
    c = x.shape[1]
    s = torch.zeros(c, dtype=torch.float64)
    ss = torch.zeros(c, dtype=torch.float64)
    for i in range(0, len(x), CHUNK):
        f = x[i : i + CHUNK].to(torch.float64).div_(255.0)
        s += f.sum(dim=(0, 2, 3))
        ss += (f * f).sum(dim=(0, 2, 3))
    n = x.shape[0] * x.shape[2] * x.shape[3]
    mean = s / n
    std = (ss / n - mean**2).clamp_min(0).sqrt()
    return [round(float(v), decimals) for v in mean], [
        round(max(float(v), 1e-4), decimals) for v in std
    ]
