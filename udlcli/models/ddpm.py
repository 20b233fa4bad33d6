"""Denoising diffusion (`udl train ddpm`, Ho et al. 2020): a U-Net learns the noise added over T = 1,000 steps; DDPM and DDIM sampling.

    forward   x_t = sqrt(abar_t) x + sqrt(1 - abar_t) eps, eps ~ N(0, I), for t ~ U{0..T-1} per image,
              abar_t the product of (1 - beta) up to t: a linear beta schedule (1e-4 .. 0.02, Ho et al.)
              or the cosine one (Nichol and Dhariwal 2021, gentler at small images)
    loss      the U-Net predicts eps (prediction: eps) or v = sqrt(abar) eps - sqrt(1 - abar) x
              (prediction: v, Salimans and Ho 2022); the mean squared error
    sampling  ancestral: the DDPM posterior at every one of the T steps, with fresh noise each;
              ddim (the default): the deterministic DDIM update over `steps` evenly spaced steps
              (Song et al. 2021), so 50 steps sample 20x faster; x0 estimates are clipped to [-1, 1]

Per-image t and noise are drawn through the trainer's udlcli.rows.Rows, so 2 ranks train as 1 process.
"""

from __future__ import annotations

import math
from typing import Literal, Optional

import torch
import torch.nn.functional as F
from pydantic import Field

from udlcli.errors import SpecError
from udlcli.models.conv import data_shape
from udlcli.models.denoiser import (
    DATA_DEFAULTS,
    TRAIN_DEFAULTS,
    Denoiser,
    DenoiserConfig,
    check_spec,
    keep_at,
)
from udlcli.models.registry import Family, register
from udlcli.rows import LOCAL, Rows
from udlcli.search import Optimizer, Search


class DDPMConfig(DenoiserConfig):
    name: Literal["ddpm"] = "ddpm"
    timesteps: int = Field(1000, ge=10, le=10_000)
    """T, the number of noising steps (Ho et al.'s 1,000)."""
    schedule: Literal["linear", "cosine"] = "cosine"
    """The beta schedule: linear (Ho et al.) or cosine (Nichol and Dhariwal)."""
    prediction: Literal["eps", "v"] = "eps"
    """What the U-Net predicts: the noise (eps) or the velocity v."""


class DDPMSearch(Search):
    """`udl tune ddpm|flow`: the optimiser, the learning rate, and the U-Net's width."""

    optimizer: list[Optimizer] = ["adamw", "adam"]
    """The families' own AdamW first (their train default), and Adam."""
    width: list[int] = [16, 32, 48, 64]
    """Choices, not a range: group norm needs multiples of 8."""


def betas_for(schedule: str, steps: int) -> torch.Tensor:
    """beta_1 .. beta_T (float64)."""
    if schedule == "linear":
        scale = 1000 / steps  # Ho et al.'s 1e-4 .. 0.02 at T = 1000, stretched for other T
        return torch.linspace(scale * 1e-4, scale * 0.02, steps, dtype=torch.float64).clamp(
            max=0.999
        )
    s = 0.008
    f = (
        torch.cos(
            (torch.arange(steps + 1, dtype=torch.float64) / steps + s) / (1 + s) * math.pi / 2
        )
        ** 2
    )
    return (1 - f[1:] / f[:-1]).clamp(max=0.999)


def ddim_steps(steps: int, n: int) -> list[int]:
    """n time steps evenly spaced from T - 1 (pure noise) down to 0; one step goes from T - 1 to the image."""
    return sorted({round((steps - 1) * (1 - i / max(n - 1, 1))) for i in range(n)}, reverse=True)


class DDPM(Denoiser):
    def __init__(self, cfg: DDPMConfig, shape):
        super().__init__(cfg, shape)
        self.steps, self.prediction = cfg.timesteps, cfg.prediction
        abar = torch.cumprod(1 - betas_for(cfg.schedule, cfg.timesteps), 0)
        # Fixed by the config: buffers for the device, not weights (not in the state dict).
        self.register_buffer("abar", abar.float(), persistent=False)

    def _coefs(self, t: torch.Tensor, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        a = self.abar[t].view(-1, *([1] * (x.ndim - 1)))
        return a.sqrt(), (1 - a).sqrt()

    def loss(self, x: torch.Tensor, y: torch.Tensor, rows: Rows = LOCAL) -> dict[str, torch.Tensor]:
        x0 = 2 * x - 1  # (B, C, H, W) in [-1, 1]
        t = rows.randint(self.steps, (len(x),), x.device)
        eps = rows.randn(tuple(x.shape), x.device, x.dtype)
        sa, s1a = self._coefs(t, x0)
        out = self.net(sa * x0 + s1a * eps, t.float(), self.labels(y, rows))
        target = eps if self.prediction == "eps" else sa * eps - s1a * x0
        return {"loss": F.mse_loss(out, target)}

    def _eps_x0(self, x, t: int, label, guidance) -> tuple[torch.Tensor, torch.Tensor]:
        """The noise and the (clipped) clean image the network sees in x at step t."""
        tt = torch.full((len(x),), float(t), device=x.device)
        out = self.guided(x, tt, label, guidance)
        a = self.abar[t]
        if self.prediction == "v":
            x0 = a.sqrt() * x - (1 - a).sqrt() * out
        else:
            x0 = (x - (1 - a).sqrt() * out) / a.sqrt()
        # Clip the clean image, then take the noise that goes with it (what DDIM steps along).
        x0 = x0.clamp(-1, 1)
        return (x - a.sqrt() * x0) / (1 - a).sqrt(), x0

    def _sample(self, x, noise, keep=0, steps=None, sampler="ddim", class_=None, guidance=1.0):
        if sampler == "ancestral":
            if steps not in (None, self.steps):
                raise SpecError(
                    f"--steps {steps}: ancestral sampling takes all {self.steps} steps; use --sampler ddim for fewer"
                )
            ts = list(range(self.steps - 1, -1, -1))
        elif sampler == "ddim":
            n = 50 if steps is None else steps
            if not 1 <= n <= self.steps:
                raise SpecError(f"--steps {n}: give 1 to {self.steps} DDIM steps")
            ts = ddim_steps(self.steps, n)
        else:
            raise SpecError(f"--sampler {sampler}: ddpm samples with ddim or ancestral")
        frames, shown = [x[:1]], keep_at(len(ts), keep) if keep else set()
        for i, t in enumerate(ts):
            eps, x0 = self._eps_x0(x, t, class_, guidance)
            prev = ts[i + 1] if i + 1 < len(ts) else -1
            a_prev = self.abar[prev] if prev >= 0 else torch.tensor(1.0, device=x.device)
            if sampler == "ddim":
                x = a_prev.sqrt() * x0 + (1 - a_prev).sqrt() * eps
            else:  # the DDPM posterior q(x_{t-1} | x_t, x0), its variance beta~_t
                a, beta = self.abar[t], 1 - self.abar[t] / a_prev
                mean = (a_prev.sqrt() * beta * x0 + (1 - beta).sqrt() * (1 - a_prev) * x) / (1 - a)
                var = beta * (1 - a_prev) / (1 - a)
                x = mean + (var.sqrt() * noise(i) if prev >= 0 else 0)
            if i + 1 in shown:
                frames.append(x[:1])
        return torch.cat(frames) if keep else x

    def generate(
        self,
        n: int,
        generator: torch.Generator | None = None,
        steps: Optional[int] = None,
        sampler: str = "ddim",
        class_: Optional[int] = None,
        guidance: float = 1.0,
    ) -> torch.Tensor:
        """n images in [0, 1]: DDIM over `steps` (50) or ancestral over all T; a class, with guidance."""
        return self.run(
            n, generator, steps=steps, sampler=sampler, class_=class_, guidance=guidance
        )


def build(cfg: DDPMConfig, data) -> DDPM:
    return DDPM(cfg, data_shape(data))


register(
    Family(
        name="ddpm",
        config=DDPMConfig,
        build=build,
        model=DDPM,
        description="denoising diffusion: a U-Net learns the noise, sampled by DDIM or DDPM",
        train_defaults=TRAIN_DEFAULTS,
        data_defaults=DATA_DEFAULTS,
        search=DDPMSearch,
        check=check_spec,
        tiny={
            "model": {"width": 8, "blocks": 1, "attention": False, "timesteps": 100},
            "train": {"n_fixed": 4},
        },
    )
)
