"""The report's MLP GAN (generator and discriminator), a small DCGAN alternative, and their typed config.

The report's networks (noise size 64, images 28x28 normalised to [-1, 1]):

    generator      z (B, 64) -> Linear 256 -> Linear 512 -> Linear 1024, each + LeakyReLU(0.2)
                   -> Linear 784 -> Tanh -> (B, 1, 28, 28) in [-1, 1]
    discriminator  x (B, 1, 28, 28) -> flatten 784 -> Linear 1024 -> Linear 512 -> Linear 256,
                   each + LeakyReLU(0.2) + Dropout(0.3) -> Linear 1 -> Sigmoid

The discriminator's forward() returns the pre-sigmoid logit, so training can use the numerically
stable BCE-with-logits (the same model as Sigmoid + BCE); its Sigmoid is kept for inference in
probability(). The GAN does not follow the trainer's loss contract (two networks, two optimisers),
so it is not in the model registry: `udl gan` has its own loop (udlcli/engine/gan.py).
"""

from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn

from udlcli.config import MNIST_SHAPE, Strict
from udlcli.core import distributed
from udlcli.models.dcgan import build_dcgan


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


def leaky(n_in: int, n_out: int, dropout: float = 0.0) -> list[nn.Module]:
    """Linear + LeakyReLU(0.2) (+ Dropout): one hidden layer of the report's networks."""
    layers: list[nn.Module] = [nn.Linear(n_in, n_out), nn.LeakyReLU(0.2, inplace=True)]
    return layers + ([nn.Dropout(dropout)] if dropout > 0 else [])


class Discriminator(nn.Module):
    """Shared inference side of both discriminators: forward() gives logits (B,), probability() applies the Sigmoid."""

    def __init__(self) -> None:
        super().__init__()
        self.sigmoid = nn.Sigmoid()

    @torch.no_grad()
    def probability(self, x: torch.Tensor) -> torch.Tensor:
        """P(real) for normalised images (B, C, H, W) in [-1, 1] -> (B,)."""
        return self.sigmoid(self(x))


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


def build_generator(cfg: GanModelConfig, shape=MNIST_SHAPE) -> nn.Module:
    """The generator alone (sampling and evaluation need no discriminator)."""
    return build_gan(cfg, shape)[0]


class GAN(nn.Module):
    """Generator and discriminator as one module, trained through train_step (the Adversarial contract).

    Its state_dict holds G.* and D.*; `d_steps` and one-sided `label_smoothing` are the report's
    training knobs, `mean` and `std` the normalisation of the real images (0.5, 0.5: [-1, 1] like G's Tanh).
    """

    def __init__(
        self,
        cfg: GanModelConfig,
        d_steps: int = 1,
        label_smoothing: float = 0.0,
        mean=0.5,
        std=0.5,
        shape=MNIST_SHAPE,
    ):
        super().__init__()
        self.G, self.D = build_gan(cfg, shape)
        self.shape = tuple(shape)
        self.noise_dim, self.d_steps, self.label_smoothing = cfg.noise_dim, d_steps, label_smoothing
        # Per-channel numbers, kept as plain floats (not buffers: the state is G's and D's alone).
        as_list = lambda v: [float(v)] if isinstance(v, (int, float)) else [float(t) for t in v]  # noqa: E731
        self.mean, self.std = as_list(mean), as_list(std)

    @staticmethod
    def _per_channel(values: list[float], x: torch.Tensor):
        """One number as it is, several as (1, C, 1, 1) to broadcast over a batch."""
        return (
            values[0]
            if len(values) == 1
            else torch.tensor(values, device=x.device, dtype=x.dtype).view(1, -1, 1, 1)
        )

    def configure_optimizers(self, cfg) -> dict[str, torch.optim.Optimizer]:
        """Adam for G at lr and for D at lr_d (default lr), both with the report's betas."""
        betas = (cfg.beta1, cfg.beta2)
        return {
            "g": torch.optim.Adam(self.G.parameters(), lr=cfg.lr, betas=betas),
            "d": torch.optim.Adam(self.D.parameters(), lr=cfg.lr_d or cfg.lr, betas=betas),
        }

    def to_pixels(self, g: torch.Tensor) -> torch.Tensor:
        """Generator output in normalised space -> images in [0, 1]."""
        return (g * self._per_channel(self.std, g) + self._per_channel(self.mean, g)).clamp(0, 1)

    def train_step(
        self, x: torch.Tensor, y: torch.Tensor, optimizers: dict[str, torch.optim.Optimizer]
    ) -> dict[str, torch.Tensor]:
        """One iteration on real images x (B, C, H, W) in [0, 1]: d_steps D updates, then one G update."""
        real = (x - self._per_channel(self.mean, x)) / self._per_channel(
            self.std, x
        )  # (B, C, H, W) in [-1, 1]
        b, dev = len(real), real.device
        real_target = torch.full((b,), 1.0 - self.label_smoothing, device=dev)
        ones, zeros = torch.ones(b, device=dev), torch.zeros(b, device=dev)
        for _ in range(self.d_steps):
            fake = self.G(distributed.draw_rows(torch.randn, (b, self.noise_dim), dev)).detach()
            d_real, d_fake = self.D(real), self.D(fake)  # logits (B,)
            loss_d = F.binary_cross_entropy_with_logits(
                d_real, real_target
            ) + F.binary_cross_entropy_with_logits(d_fake, zeros)
            optimizers["d"].zero_grad(set_to_none=True)
            loss_d.backward()
            optimizers["d"].step()
        self.D.requires_grad_(False)  # the G step needs gradients through D, not for D's weights
        loss_g = F.binary_cross_entropy_with_logits(
            self.D(self.G(distributed.draw_rows(torch.randn, (b, self.noise_dim), dev))), ones
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
