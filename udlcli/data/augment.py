"""Batched, seeded augmentations on the device, for self-supervised views: crop, flip, colour jitter, grey, blur.

Images are (B, C, H, W) in [0, 1] on any device; every random number is drawn through a
udlcli.rows.Rows (the trainer's), the same count for every image whatever is applied, so a batch
split over ranks is augmented as one process would, and a seed gives the same views. There is no
per-image PIL path: a batch of 512 digits takes milliseconds.

    crop     random resized crop (SimCLR's): an area share in [crop_min, 1], an aspect ratio in
             [3/4, 4/3] (log-uniform), anywhere in the image, resampled to the full size (bilinear)
    flip     horizontal, with probability 1/2 (never for digits or characters: a flipped 3 is no 3)
    jitter   with probability jitter_p: brightness, contrast, saturation by a factor in [1 - j, 1 + j],
             hue rotated by up to j/4 of a turn (colour only; grey images get brightness and contrast)
    gray     with probability gray_p, the colour image made grey (colour only)
    blur     with probability blur_p, a Gaussian blur of sigma in [0.1, 1.5] pixels (5x5)

`strength` scales them all (0: the images as they are): udl tune searches it.
"""

from __future__ import annotations

import math
from typing import Optional

import torch
import torch.nn.functional as F
from pydantic import Field

from udlcli.config import Strict
from udlcli.rows import Rows

NO_FLIP = ("mnist", "mnist-sample", "kmnist", "svhn")
"""Datasets whose classes a horizontal flip changes (digits, characters): flip defaults to off."""
DRAWS = 16
"""Random numbers drawn per image and view (a fixed count, so views never shift the stream)."""
GRAY = (0.299, 0.587, 0.114)


class AugmentConfig(Strict):
    strength: float = Field(1.0, ge=0.0, le=2.0)
    """Scales every augmentation: 0 keeps the images, 2 doubles jitter and probabilities."""
    crop_min: float = Field(0.3, gt=0.0, le=1.0)
    """Random resized crop: the smallest share of the image's area a view keeps."""
    flip: Optional[bool] = None
    """Horizontal flips; None: on, except for digits and characters (mnist, kmnist, svhn)."""
    jitter: float = Field(0.4, ge=0.0, le=1.0)
    jitter_p: float = Field(0.8, ge=0.0, le=1.0)
    gray_p: float = Field(0.2, ge=0.0, le=1.0)
    """Colour images only."""
    blur_p: float = Field(0.0, ge=0.0, le=1.0)


def flips_for(cfg: AugmentConfig, dataset: str) -> bool:
    return cfg.flip if cfg.flip is not None else dataset not in NO_FLIP


def _gray(x: torch.Tensor) -> torch.Tensor:
    w = torch.tensor(GRAY, device=x.device, dtype=x.dtype).view(1, 3, 1, 1)
    return (x * w).sum(1, keepdim=True)


def augment(x: torch.Tensor, cfg: AugmentConfig, flip: bool, rows: Rows) -> torch.Tensor:
    """One random view of every image of x (B, C, H, W) in [0, 1]."""
    b, c, h, w = x.shape
    s = cfg.strength
    u = rows.rand((b, DRAWS), x.device, x.dtype)  # (B, 16) uniforms: every parameter below
    # crop: area share, log aspect ratio, centre; flip as the sign of the x scale
    area = (1 - s * (1 - cfg.crop_min) * u[:, 0]).clamp(
        min=0.01
    )  # strength > 1 must not go below 0
    ratio = torch.exp(s * (u[:, 1] * 2 - 1) * math.log(4 / 3))
    sx, sy = (area * ratio).sqrt().clamp(max=1), (area / ratio).sqrt().clamp(max=1)
    cx, cy = (u[:, 2] * 2 - 1) * (1 - sx), (u[:, 3] * 2 - 1) * (1 - sy)
    sign = torch.where((u[:, 4] < 0.5 * min(s, 1.0)) & flip, -1.0, 1.0).to(x.dtype)
    theta = torch.zeros(b, 2, 3, device=x.device, dtype=x.dtype)
    theta[:, 0, 0], theta[:, 0, 2], theta[:, 1, 1], theta[:, 1, 2] = sx * sign, cx, sy, cy
    grid = F.affine_grid(theta, [b, c, h, w], align_corners=False)
    x = F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=False)
    # colour jitter
    j = cfg.jitter * s
    on = (u[:, 5] < min(cfg.jitter_p * s, 1.0)).to(x.dtype).view(b, 1, 1, 1)
    factor = lambda k: 1 + on * j * (u[:, k] * 2 - 1).view(b, 1, 1, 1)  # noqa: E731
    x = x * factor(6)  # brightness
    g = _gray(x) if c == 3 else x
    x = (x - g.mean((2, 3), keepdim=True)) * factor(7) + g.mean((2, 3), keepdim=True)  # contrast
    if c == 3:
        g = _gray(x)
        x = g + (x - g) * factor(8)  # saturation
        x = _hue(x, on.view(b) * j / 4 * (u[:, 9] * 2 - 1))
        grey = (u[:, 10] < min(cfg.gray_p * s, 1.0)).view(b, 1, 1, 1)
        x = torch.where(grey, _gray(x).expand_as(x), x)
    x = x.clamp(0, 1)
    if cfg.blur_p > 0:
        blurred = _blur(x, 0.1 + 1.4 * u[:, 11])
        x = torch.where((u[:, 12] < min(cfg.blur_p * s, 1.0)).view(b, 1, 1, 1), blurred, x)
    return x


def _hue(x: torch.Tensor, turns: torch.Tensor) -> torch.Tensor:
    """Rotate each image's hue by `turns` (B,) of a circle, in YIQ (luma kept)."""
    to_yiq = torch.tensor(
        [[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]],
        device=x.device,
        dtype=x.dtype,
    )
    yiq = torch.einsum("ij,bjhw->bihw", to_yiq, x)
    a = turns * 2 * math.pi
    cos, sin = a.cos().view(-1, 1, 1), a.sin().view(-1, 1, 1)
    i, q = yiq[:, 1], yiq[:, 2]
    yiq = torch.stack([yiq[:, 0], cos * i - sin * q, sin * i + cos * q], 1)
    return torch.einsum("ij,bjhw->bihw", torch.linalg.inv(to_yiq), yiq)


def _blur(x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """A 5x5 Gaussian blur with each image's own sigma (B,): one grouped, separable convolution."""
    b, c, h, w = x.shape
    r = torch.arange(-2, 3, device=x.device, dtype=x.dtype)
    k = torch.exp(-(r[None] ** 2) / (2 * sigma[:, None] ** 2))
    k = (k / k.sum(1, keepdim=True)).repeat_interleave(c, 0)  # (B*C, 5)
    y = x.reshape(1, b * c, h, w)
    y = F.conv2d(F.pad(y, (2, 2, 0, 0), mode="reflect"), k.view(b * c, 1, 1, 5), groups=b * c)
    y = F.conv2d(F.pad(y, (0, 0, 2, 2), mode="reflect"), k.view(b * c, 1, 5, 1), groups=b * c)
    return y.view(b, c, h, w)
