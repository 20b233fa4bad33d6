"""Flow matching (`udl train flow`): a U-Net learns the velocity of straight paths from noise to data; Euler and Heun sampling.

    paths     x_t = (1 - t) x_0 + t x_1, from noise x_0 ~ N(0, I) at t = 0 to an image x_1 at t = 1
              (conditional flow matching with straight paths: Lipman et al. 2023, Liu et al.'s
              rectified flow), t ~ U(0, 1) per image, or logit-normal (Esser et al. 2024: more
              weight on the middle of the path)
    loss      the U-Net predicts the velocity x_1 - x_0 at (x_t, t); the mean squared error
    sampling  integrate dx/dt = v(x, t) from noise at t = 0 to t = 1 in `steps` equal steps:
              euler (one evaluation a step) or heun (two: a second-order correction)

Per-image t and noise are drawn through the trainer's udlcli.rows.Rows, so 2 ranks train as 1 process.
"""

from __future__ import annotations

from typing import Literal, Optional

import torch
import torch.nn.functional as F

from udlcli.errors import SpecError
from udlcli.models.conv import data_shape
from udlcli.models.ddpm import DDPMSearch
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

TIME_SCALE = 1000.0
"""t in [0, 1] is shown to the U-Net's sinusoidal embedding as 1000 t, the range DDPM's steps span."""


class FlowConfig(DenoiserConfig):
    name: Literal["flow"] = "flow"
    time: Literal["uniform", "logit-normal"] = "uniform"
    """How training draws t: uniformly, or logit-normal (the middle of the path more often)."""


class Flow(Denoiser):
    def __init__(self, cfg: FlowConfig, shape):
        super().__init__(cfg, shape)
        self.time_sampling = cfg.time

    def loss(self, x: torch.Tensor, y: torch.Tensor, rows: Rows = LOCAL) -> dict[str, torch.Tensor]:
        x1 = 2 * x - 1  # (B, C, H, W): the data end of the path, in [-1, 1]
        x0 = rows.randn(tuple(x.shape), x.device, x.dtype)
        if self.time_sampling == "uniform":
            t = rows.rand((len(x),), x.device, x.dtype)
        else:
            t = torch.sigmoid(rows.randn((len(x),), x.device, x.dtype))
        tt = t.view(-1, 1, 1, 1)
        out = self.net((1 - tt) * x0 + tt * x1, t * TIME_SCALE, self.labels(y, rows))
        return {"loss": F.mse_loss(out, x1 - x0)}

    def _velocity(self, x, t: float, label, guidance) -> torch.Tensor:
        tt = torch.full((len(x),), t * TIME_SCALE, device=x.device)
        return self.guided(x, tt, label, guidance)

    def _sample(self, x, noise, keep=0, steps=None, sampler="euler", class_=None, guidance=1.0):
        n = 20 if steps is None else steps
        if not 1 <= n <= 1000:
            raise SpecError(f"--steps {n}: give 1 to 1000 integration steps")
        if sampler not in ("euler", "heun"):
            raise SpecError(f"--sampler {sampler}: flow samples with euler or heun")
        frames, shown, dt = [x[:1]], keep_at(n, keep) if keep else set(), 1.0 / n
        for i in range(n):
            t = i * dt
            v = self._velocity(x, t, class_, guidance)
            if sampler == "heun":  # the trapezoid: the velocity here and at the Euler guess's end
                guess = x + dt * v
                v = (v + self._velocity(guess, t + dt, class_, guidance)) / 2
            x = x + dt * v
            if i + 1 in shown:
                frames.append(x[:1])
        return torch.cat(frames) if keep else x

    def generate(
        self,
        n: int,
        generator: torch.Generator | None = None,
        steps: Optional[int] = None,
        sampler: str = "euler",
        class_: Optional[int] = None,
        guidance: float = 1.0,
    ) -> torch.Tensor:
        """n images in [0, 1]: `steps` (20) Euler or Heun steps from noise; a class, with guidance."""
        return self.run(
            n, generator, steps=steps, sampler=sampler, class_=class_, guidance=guidance
        )


def build(cfg: FlowConfig, data) -> Flow:
    return Flow(cfg, data_shape(data))


register(
    Family(
        name="flow",
        config=FlowConfig,
        build=build,
        model=Flow,
        description="flow matching: a U-Net learns straight paths from noise to images, sampled by Euler or Heun",
        train_defaults=TRAIN_DEFAULTS,
        data_defaults=DATA_DEFAULTS,
        search=DDPMSearch,
        check=check_spec,
        tiny={"model": {"width": 8, "blocks": 1, "attention": False}, "train": {"n_fixed": 4}},
    )
)
