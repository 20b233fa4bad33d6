"""Seeded noise transforms for denoising (the report's Gaussian and salt-and-pepper), applied per batch on the device.

Images are float tensors in [0, 1] of shape (B, C, H, W). The report adds N(0, 1) to the image
*after* Normalize((0.1307,), (0.3081,)), so its sigma is in normalised units: sigma = 1.0 there is
sigma * std = 0.3081 in pixel units. `sigma` below is in normalised units and `std` (the dataset's
Normalize std) converts it. Every result is clamped to the valid pixel range [0, 1].

Randomness comes from `generator` when one is given (evaluation: the same noise every time), else
from torch's global RNG, whose state the trainer stores in each checkpoint (training: resumes exactly).
"""

from __future__ import annotations

from typing import Literal

import torch
from pydantic import Field

from udlcli.config import Strict
from udlcli.rows import LOCAL, Rows

NoiseKind = Literal["none", "gaussian", "saltpepper", "both", "mix"]
EVAL_KINDS: tuple[str, ...] = ("none", "gaussian", "saltpepper", "both")
"""The noise types `mix` draws from (each with probability 1/4), and the rows of the evaluation table."""


class NoiseConfig(Strict):
    """The noise a denoising AE is trained on; the defaults are the report's."""

    noise: NoiseKind = "mix"
    """none | gaussian | saltpepper | both | mix (per image one of the other four, equally likely)."""
    sigma: float = Field(1.0, ge=0.0, le=100.0)
    """Gaussian std in normalised units (x - mean) / std, per channel; 1.0 = std in [0, 1] pixels (0.3081 on MNIST)."""
    p: float = Field(0.2, ge=0.0, le=1.0)
    """Salt-and-pepper: the probability that a pixel is replaced."""
    salt: float = Field(0.5, ge=0.0, le=1.0)
    """Salt-and-pepper: the probability that a replaced pixel becomes 1 (white) rather than 0."""


def _draw(
    fn, shape: tuple[int, ...], x: torch.Tensor, generator: torch.Generator | None, rows: Rows
) -> torch.Tensor:
    """rand/randn of `shape` on x's device: this process's rows of a draw for the global batch (udlcli.rows)."""
    return rows.draw(fn, shape, x.device, x.dtype, generator)


def _pixel_scale(std, x: torch.Tensor):
    """The Normalize std as what multiplies (B, C, H, W) noise: a number for one channel, (1, C, 1, 1) for several."""
    v = [float(std)] if isinstance(std, (int, float)) else [float(s) for s in std]
    if len(v) == 1:
        return v[0]
    return torch.tensor(v, device=x.device, dtype=x.dtype).view(1, -1, 1, 1)


def add_noise(
    x: torch.Tensor,
    cfg: NoiseConfig,
    std=0.3081,
    generator: torch.Generator | None = None,
    kind: str | None = None,
    rows: Rows = LOCAL,
) -> torch.Tensor:
    """A noisy copy of x (B, C, H, W) in [0, 1]; `kind` overrides cfg.noise (evaluation runs each type).

    Every channel of every pixel gets its own draw: Gaussian noise scaled by that channel's std,
    and salt and pepper replaced channel by channel.
    """
    kind = kind or cfg.noise
    if kind == "none":
        return x.clone()
    b = x.shape[0]
    if kind == "mix":
        choice = (
            _draw(torch.rand, (b,), x, generator, rows).mul(4).floor()
        )  # (B,): 0 none, 1 gaussian, 2 s&p, 3 both
        use_gauss = ((choice == 1) | (choice == 3)).view(b, 1, 1, 1)
        use_sp = ((choice == 2) | (choice == 3)).view(b, 1, 1, 1)
    elif kind in EVAL_KINDS:
        use_gauss = torch.tensor(
            kind in ("gaussian", "both"), device=x.device
        )  # broadcasts like the masks
        use_sp = torch.tensor(kind in ("saltpepper", "both"), device=x.device)
    else:
        raise ValueError(
            f"unknown noise {kind!r}; choose one of none, gaussian, saltpepper, both, mix"
        )
    # Both noises are always drawn, in a fixed order, so the random stream does not depend on the kind.
    scale = _pixel_scale(std, x)
    eps = _draw(torch.randn, tuple(x.shape), x, generator, rows) * (
        cfg.sigma * scale
    )  # (B, C, H, W), pixel units
    out = (x + eps * use_gauss).clamp(0.0, 1.0)
    # Salt and pepper after the Gaussian, so replaced pixels are exactly 0 or 1 (Fig. 15).
    hit = (
        _draw(torch.rand, tuple(x.shape), x, generator, rows) < cfg.p
    ) & use_sp  # (B, C, H, W): each channel value replaced on its own
    white = (_draw(torch.rand, tuple(x.shape), x, generator, rows) < cfg.salt).to(x.dtype)
    return torch.where(hit, white, out)


def pixel_sigma(cfg: NoiseConfig, std=0.3081) -> float:
    """The Gaussian std in [0, 1] pixel units, for messages and docs (the mean over channels)."""
    v = [float(std)] if isinstance(std, (int, float)) else [float(s) for s in std]
    return cfg.sigma * sum(v) / len(v)
