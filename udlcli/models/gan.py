"""The report's MLP GAN (`udl train gan`, alias `udl gan`), a DCGAN option, the adversarial step and its registry entry.

The report's networks (noise size 64, images normalised to [-1, 1]):

    generator      z (B, 64) -> Linear 256 -> Linear 512 -> Linear 1024, each + LeakyReLU(0.2)
                   -> Linear C*H*W -> Tanh -> (B, C, H, W) in [-1, 1]
    discriminator  x (B, C, H, W) -> flatten -> Linear 1024 -> Linear 512 -> Linear 256,
                   each + LeakyReLU(0.2) + Dropout(0.3) -> Linear 1 -> Sigmoid

`--arch dcgan` swaps in convolutional networks (models/dcgan.py). The discriminator's forward()
returns the pre-sigmoid logit, so training uses the numerically stable BCE-with-logits (the same
model as Sigmoid + BCE). Two networks and two optimisers do not fit the one-loss contract: the GAN
is Adversarial (core/contracts.py), the trainer calls its train_step, and it trains float32, eager.
Its own figures and failure checks are in models/gan_watch.py.
"""

from __future__ import annotations

import math
from typing import Literal, Optional

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn

from udlcli.config import MNIST_SHAPE, Strict, TrainConfig
from udlcli.core.contracts import Graph
from udlcli.core.optim import make_optimizer
from udlcli.models.dcgan import build_dcgan, check_size
from udlcli.models.gan_watch import GanChecks, gan_callbacks
from udlcli.models.registry import Family, register
from udlcli.rows import LOCAL, Rows


class GanModelConfig(Strict):
    name: Literal["gan"] = "gan"
    arch: Literal["mlp", "dcgan"] = "mlp"
    """mlp: the report's fully connected GAN (any image shape); dcgan: convolutional (28, 32 or 64 pixels)."""
    noise_dim: int = Field(64, ge=1, le=4096)
    """Size of the normal noise vector z (the report's 64)."""
    dropout: float = Field(0.3, ge=0.0, lt=1.0)
    """Dropout after each hidden layer of the MLP discriminator (the report's 0.3)."""
    channels: int = Field(64, ge=1, le=512)
    """dcgan only: channels of the discriminator's first convolution (the generator mirrors it)."""


class GanTrainConfig(TrainConfig):
    """The train section with the GAN's own knobs; its optimisers are Adam with the report's betas."""

    batch_size: int = Field(128, ge=2, le=65_536)
    lr_d: Optional[float] = Field(None, gt=0.0, le=1.0)
    """D's learning rate; None means the same as lr (G's)."""
    beta1: float = Field(0.5, ge=0.0, lt=1.0)
    beta2: float = Field(0.999, ge=0.0, lt=1.0)
    d_steps: int = Field(1, ge=1, le=20)
    """Discriminator updates per generator update (each on the same real batch, fresh noise)."""
    label_smoothing: float = Field(0.0, ge=0.0, lt=0.5)
    """One-sided: D's target for real images is 1 - label_smoothing (0 = off, the report's setting)."""


def leaky(n_in: int, n_out: int, dropout: float = 0.0) -> list[nn.Module]:
    """Linear + LeakyReLU(0.2) (+ Dropout): one hidden layer of the report's networks."""
    layers: list[nn.Module] = [nn.Linear(n_in, n_out), nn.LeakyReLU(0.2, inplace=True)]
    return layers + ([nn.Dropout(dropout)] if dropout > 0 else [])


class MLPGenerator(nn.Module):
    """z (B, noise_dim) -> images (B, C, H, W) in [-1, 1] (the normalised pixel space); (B, 1, 28, 28) in the report."""

    def __init__(self, noise_dim: int = 64, shape=MNIST_SHAPE):
        super().__init__()
        self.noise_dim, self.shape = noise_dim, tuple(shape)
        self.body = nn.Sequential(
            *leaky(noise_dim, 256),
            *leaky(256, 512),
            *leaky(512, 1024),
            nn.Linear(1024, math.prod(shape)),
            nn.Tanh(),
        )

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.body(z).view(-1, *self.shape)


class Discriminator(nn.Module):
    """Shared inference side of both discriminators: forward() gives logits (B,), probability() applies the Sigmoid."""

    @torch.no_grad()
    def probability(self, x: torch.Tensor) -> torch.Tensor:
        """P(real) for normalised images (B, C, H, W) in [-1, 1] -> (B,): the report's Sigmoid output unit."""
        return torch.sigmoid(self(x))


class MLPDiscriminator(Discriminator):
    """Images (B, C, H, W) in [-1, 1] -> logits (B,); sigmoid(logit) is the report's output unit."""

    def __init__(self, dropout: float = 0.3, shape=MNIST_SHAPE):
        super().__init__()
        self.body = nn.Sequential(
            nn.Flatten(),
            *leaky(math.prod(shape), 1024, dropout),
            *leaky(1024, 512, dropout),
            *leaky(512, 256, dropout),
            nn.Linear(256, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x).squeeze(1)


def build_gan(cfg: GanModelConfig, shape=MNIST_SHAPE) -> tuple[nn.Module, nn.Module]:
    """(generator, discriminator) for cfg.arch and the image shape, with fresh weights from the current torch seed."""
    if cfg.arch == "dcgan":
        return build_dcgan(cfg.noise_dim, cfg.channels, shape)
    return MLPGenerator(cfg.noise_dim, shape), MLPDiscriminator(cfg.dropout, shape)


class GAN(nn.Module):
    """Generator and discriminator as one module, trained through train_step (the Adversarial contract).

    Its state_dict holds G.* and D.*; `mean` and `std` are the normalisation of the real images
    (0.5, 0.5: [-1, 1] like G's Tanh), kept as plain floats (the state is G's and D's alone).
    """

    def __init__(self, cfg: GanModelConfig, mean=0.5, std=0.5, shape=MNIST_SHAPE):
        super().__init__()
        self.G, self.D = build_gan(cfg, shape)
        self.arch, self.shape, self.noise_dim = cfg.arch, tuple(shape), cfg.noise_dim
        self.d_steps, self.label_smoothing = (
            1,
            0.0,
        )  # the train section's, set by configure_optimizers
        as_list = lambda v: [float(v)] if isinstance(v, (int, float)) else [float(t) for t in v]  # noqa: E731
        self.mean, self.std = as_list(mean), as_list(std)

    def _per_channel(self, values: list[float], x: torch.Tensor):
        """One number as it is, several as (1, C, 1, 1) to broadcast over a batch."""
        if len(values) == 1:
            return values[0]
        return torch.tensor(values, device=x.device, dtype=x.dtype).view(1, -1, 1, 1)

    def configure_optimizers(self, cfg: GanTrainConfig) -> dict[str, torch.optim.Optimizer]:
        """The train section's optimiser (Adam) for G at lr and for D at lr_d (default lr), both with the report's betas.

        The section's step knobs (D steps per G step, label smoothing) are taken here too.
        """
        self.d_steps, self.label_smoothing = cfg.d_steps, cfg.label_smoothing
        betas = (cfg.beta1, cfg.beta2)
        d_group = [{"params": list(self.D.parameters()), "lr": cfg.lr_d or cfg.lr}]
        return {
            "g": make_optimizer(list(self.G.parameters()), cfg, betas),
            "d": make_optimizer(d_group, cfg, betas),
        }

    def to_pixels(self, g: torch.Tensor) -> torch.Tensor:
        """Generator output in normalised space -> images in [0, 1]: the one place this conversion is made."""
        return (g * self._per_channel(self.std, g) + self._per_channel(self.mean, g)).clamp(0, 1)

    def images(self, z: torch.Tensor) -> torch.Tensor:
        """Noise (B, noise_dim) -> images (B, C, H, W) in [0, 1]: the exported generator graph."""
        return self.to_pixels(self.G(z))

    @torch.no_grad()
    def generate(
        self, n: int, generator: torch.Generator | None = None, batch: int = 2048
    ) -> torch.Tensor:
        """n images in [0, 1]; z is drawn at once on the CPU (a seeded generator gives the same z on any device)."""
        z = torch.randn(n, self.noise_dim, generator=generator)
        dev = next(self.G.parameters()).device
        return torch.cat([self.images(z[i : i + batch].to(dev)) for i in range(0, n, batch)])

    def train_step(
        self,
        x: torch.Tensor,
        y: torch.Tensor,
        optimizers: dict[str, torch.optim.Optimizer],
        rows: Rows = LOCAL,
    ) -> dict[str, torch.Tensor]:
        """One iteration on real images x (B, C, H, W) in [0, 1]: d_steps D updates, then one G update."""
        real = (x - self._per_channel(self.mean, x)) / self._per_channel(self.std, x)  # in [-1, 1]
        b, dev = len(real), real.device
        real_target = torch.full((b,), 1.0 - self.label_smoothing, device=dev)
        ones, zeros = torch.ones(b, device=dev), torch.zeros(b, device=dev)
        for _ in range(self.d_steps):
            fake = self.G(rows.randn((b, self.noise_dim), dev)).detach()
            d_real, d_fake = self.D(real), self.D(fake)  # logits (B,)
            loss_d = F.binary_cross_entropy_with_logits(
                d_real, real_target
            ) + F.binary_cross_entropy_with_logits(d_fake, zeros)
            optimizers["d"].zero_grad(set_to_none=True)
            loss_d.backward()
            optimizers["d"].step()
        self.D.requires_grad_(False)  # the G step needs gradients through D, not for D's weights
        loss_g = F.binary_cross_entropy_with_logits(
            self.D(self.G(rows.randn((b, self.noise_dim), dev))), ones
        )
        optimizers["g"].zero_grad(set_to_none=True)
        loss_g.backward()
        optimizers["g"].step()
        self.D.requires_grad_(True)
        return {
            "d_loss": loss_d.detach(),
            "g_loss": loss_g.detach(),
            "d_real": torch.sigmoid(d_real.detach()).mean(),
            "d_fake": torch.sigmoid(d_fake.detach()).mean(),
        }

    def graphs(self) -> dict[str, Graph]:
        z = torch.randn(2, self.noise_dim)
        return {
            "generator": Graph.of(
                self, "images", "noise (B, d) -> images (B, C, H, W) in [0, 1]", input=z
            )
        }


def build(cfg: GanModelConfig, data) -> GAN:
    shape = tuple(getattr(data, "shape", None) or MNIST_SHAPE)
    if cfg.arch == "dcgan":
        check_size(shape)
    return GAN(cfg, getattr(data, "mean", None) or 0.5, getattr(data, "std", None) or 0.5, shape)


def upgrade(payload: dict) -> dict:
    """A checkpoint of the GAN's earlier loop (G, D, opt_g, opt_d, iters, failures) in the trainer's layout."""
    if "G" not in payload:
        return payload
    p = {
        k: v
        for k, v in payload.items()
        if k not in ("G", "D", "opt_g", "opt_d", "iters", "failures")
    }
    p["model"] = {
        **{f"G.{k}": v for k, v in payload["G"].items()},
        **{f"D.{k}": v for k, v in payload["D"].items()},
    }
    p["optimizers"] = {"g": payload["opt_g"], "d": payload["opt_d"]}
    p["callbacks"] = {
        "iterations": {"iters": payload["iters"]},
        "failures": payload.get("failures", {}),
    }
    return p


register(
    Family(
        name="gan",
        config=GanModelConfig,
        build=build,
        model=GAN,
        title="GAN",
        description="the report's MLP GAN (or --arch dcgan), trained adversarially",
        train_config=GanTrainConfig,
        # 60 epochs of batch 128 at the report's lr 2e-4 and betas (0.5, 0.999): FID 53.1 on MNIST, with
        # the digit 1 at 16.5-18.2% of samples, just over the class-balance band (docs/gan.md).
        train_defaults={"epochs": 60, "batch_size": 128, "lr": 2e-4, "weight_decay": 0.0},
        data_defaults={"mean": [0.5], "std": [0.5]},
        sections={"checks": GanChecks},
        callbacks=gan_callbacks,
        upgrade=upgrade,
        tiny={"model": {"noise_dim": 16}},
        exempt={
            "two_ranks": "Adam's first step turns the float rounding of G's near-cancelling gradient "
            "sums into steps of up to lr for about 0.02% of G's weights; tests/core/test_distributed.py "
            "checks that 99.9% of them agree to 1e-5 and D's all do"
        },
    )
)
