"""What the diffusion and flow families share: a U-Net over images in [-1, 1], class labels with dropout, guidance, seeded generation.

x in [0, 1] (B, C, H, W) -> 2x - 1 in [-1, 1], the space the noise lives in; samples come back as (x + 1) / 2
conditional   the U-Net also sees the class; in training each label is replaced by "no class"
              with probability p_uncond, so one network is both the conditional and the
              unconditional model, and sampling mixes them (classifier-free guidance, Ho and
              Salimans 2022): out = out_none + guidance * (out_class - out_none)
generate      n images, the starting noise drawn from a seeded CPU generator in chunks, and a
              stochastic step's noise from a generator of its own per (seed, chunk, step), drawn for
              the whole chunk: image i's noise depends only on the seed and i, so the same seed gives
              the same images on any device and whatever n is; a family gives the loop (`_sample`)
              over its own time steps
"""

from __future__ import annotations

from typing import Optional

import torch
from pydantic import Field

from udlcli.core.contracts import Graph
from udlcli.errors import SpecError
from udlcli.models.unet import UNet, UNetConfig
from udlcli.rows import Rows

CHUNK = 500
"""Images generated at once: bounds memory, and fixes how the seeded noise is drawn."""

# Both families' budget: an hour on a 2-core CPU at MNIST's size (docs/diffusion.md).
TRAIN_DEFAULTS = {
    "optimizer": "adamw",
    "lr": 1e-3,
    "weight_decay": 0.0,
    "batch_size": 128,
    "epochs": 6,
    "scheduler": "cosine",
    "warmup_steps": 200,
    "grad_clip": 1.0,
    "ema": 0.999,
    "n_fixed": 36,
}
DATA_DEFAULTS = {"val_fraction": 0.05}
"""5% is plenty to watch a diffusion loss (3,000 MNIST images), and the rest trains."""


class DenoiserConfig(UNetConfig):
    conditional: bool = False
    """Train with class labels (dropped with probability p_uncond), for `udl sample KIND --class K --guidance G`."""
    p_uncond: float = Field(0.1, ge=0.0, le=1.0)
    """With conditional: how often a label is replaced by 'no class' in training."""
    classes: Optional[int] = Field(None, ge=1, le=100_000)
    """Classes of the data, filled in when the data is loaded (the class embedding's size)."""


def check_spec(spec) -> list[str]:
    """Settings a diffusion or flow spec would ignore (registry.Family.check)."""
    m = spec.model
    if not m.conditional and m.p_uncond != type(m).model_fields["p_uncond"].default:
        return [
            f"model.p_uncond={m.p_uncond} has no effect without --conditional (only a model that sees "
            "labels drops them); add --conditional, or leave p_uncond out"
        ]
    return []


class Denoiser(torch.nn.Module):
    bf16_pays = True
    """--precision auto trains it in bf16 where the device has bf16 units: the U-Net's convolutions
    ran 2.1x (training) and 2.8x (sampling) as fast on an Intel Xeon with AMX (issue #34)."""

    def __init__(self, cfg: DenoiserConfig, shape):
        super().__init__()
        self.shape, self.conditional = tuple(shape), cfg.conditional
        self.classes = (cfg.classes or 1) if cfg.conditional else 0
        self.p_uncond = cfg.p_uncond
        self.net = UNet(cfg, self.shape, self.classes)

    # ------------------------------------------------------------ training inputs

    def labels(self, y: torch.Tensor, rows: Rows) -> torch.Tensor | None:
        """The labels the network sees in training: y, each dropped to 'no class' with probability p_uncond."""
        if not self.conditional:
            return None
        drop = rows.rand((len(y),), y.device) < self.p_uncond
        return torch.where(drop, torch.full_like(y, self.classes), y.clamp(0, self.classes - 1))

    # ------------------------------------------------------------ sampling

    def guided(
        self, x: torch.Tensor, t: torch.Tensor, label: int | None, guidance: float
    ) -> torch.Tensor:
        """The network's output at (x, t), for a class with guidance, or unconditioned."""
        if label is None or not self.conditional:
            return self.net(x, t)
        y = torch.full((len(x),), label, device=x.device, dtype=torch.long)
        if guidance == 1.0:
            return self.net(x, t, y)
        none = torch.full_like(y, self.classes)
        both = self.net(torch.cat([x, x]), torch.cat([t, t]), torch.cat([y, none]))
        cond, uncond = both.chunk(2)
        return uncond + guidance * (cond - uncond)

    def check_options(self, class_: int | None, guidance: float) -> None:
        if class_ is not None and not self.conditional:
            raise SpecError(
                "--class needs a model trained with --conditional (this one is unconditional)"
            )
        if class_ is not None and not 0 <= class_ < self.classes:
            raise SpecError(f"--class {class_}: this model knows classes 0..{self.classes - 1}")
        if guidance != 1.0 and class_ is None:
            raise SpecError(
                "--guidance mixes the class's output with the unconditioned one: give --class K too"
            )
        if not 0.0 <= guidance <= 50.0:
            raise SpecError(
                f"--guidance {guidance}: give a scale between 0 and 50 (1: no guidance)"
            )

    @torch.no_grad()
    def run(
        self, n: int, generator: torch.Generator | None, keep: int = 0, **options
    ) -> torch.Tensor:
        """n images in [0, 1] (keep > 0: `keep` frames of the first image's path instead, noise to image)."""
        self.check_options(options.get("class_"), options.get("guidance", 1.0))
        dev = next(self.parameters()).device
        base = int(torch.randint(0, 2**62, (), generator=generator))  # seeds every step's noise
        out = []
        for chunk, start in enumerate(range(0, n, CHUNK)):
            m = min(CHUNK, n - start)
            x = torch.randn(m, *self.shape, generator=generator).to(dev)
            noise = StepNoise(base, chunk, tuple(x.shape), dev)
            out.append(self._sample(x, noise, keep=keep, **options))  # images, or frames
            if keep:
                break
        return ((torch.cat(out) + 1) / 2).clamp(0, 1)

    def trajectory(
        self, generator: torch.Generator | None = None, frames: int = 8, **options
    ) -> torch.Tensor:
        """One sample's way from noise to image: `frames` images (frames, C, H, W) in [0, 1].

        options are generate()'s (each family's generate names them, for `udl sample`)."""
        return self.run(1, generator, keep=frames, **options)

    def _sample(
        self, x, noise: StepNoise, keep: int = 0, **options
    ):  # pragma: no cover - each family's own
        raise NotImplementedError

    # ------------------------------------------------------------ export

    def graphs(self) -> dict[str, Graph]:
        inputs = {"x": torch.randn(2, *self.shape), "t": torch.tensor([10.0, 500.0])}
        if self.conditional:
            inputs["label"] = torch.tensor([0, self.classes])
        doc = "x_t (B, C, H, W) in [-1, 1], t (B,)" + (
            ", label (B,) (classes = none)" if self.conditional else ""
        )
        return {"denoiser": Graph(self.net, inputs, f"{doc} -> the network's output (B, C, H, W)")}


class StepNoise:
    """Fresh noise for each step of a stochastic sampler: noise(k) is step k's (m, C, H, W) for one chunk.

    Each (seed, chunk, step) has a CPU generator of its own that draws a whole chunk's noise, of
    which the chunk's m images take their rows: image i's noise at step k is the same for any n.
    """

    def __init__(self, base: int, chunk: int, shape: tuple[int, ...], device):
        self.base, self.chunk, self.shape, self.device = base, chunk, shape, device

    def __call__(self, step: int) -> torch.Tensor:
        # hash() of a tuple of ints is the same in every process (only str hashing is salted).
        g = torch.Generator().manual_seed(hash((self.base, self.chunk, step)) & (2**63 - 1))
        return torch.randn(CHUNK, *self.shape[1:], generator=g)[: self.shape[0]].to(self.device)


def keep_at(steps: int, frames: int) -> set[int]:
    """The step indices (0 = the noise, steps = the image) a trajectory of `frames` frames shows."""
    return {round(i * steps / (frames - 1)) for i in range(frames)}
