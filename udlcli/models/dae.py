"""The denoising autoencoder: the report's conv AE trained to map noisy inputs back to clean images.

The architecture is the AE's (udlcli.models.ae.ConvAE, the report's "same architecture of the best
Convolutional AutoEncoder"); only the loss differs. Under the trainer's loss contract the batch x is
the clean image: loss() corrupts it on the device with the configured noise (udlcli.data.noise) and
returns the MSE of the reconstruction of the noisy copy against the clean x.

In training mode the noise comes from torch's global RNG, which the trainer checkpoints, so a resumed
run sees the same noise. In eval mode (validation) it comes from a fixed-seed generator, so the
validation loss is a function of the weights alone and best-checkpoint selection compares like with like.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F

from udlcli.config import MNIST_SHAPE
from udlcli.data.noise import NoiseConfig, add_noise
from udlcli.models.ae import TRAIN_DEFAULTS as AE_TRAIN_DEFAULTS
from udlcli.models.ae import AEConfig, ConvAE
from udlcli.models.conv import data_shape, data_stats
from udlcli.models.registry import Family, register
from udlcli.rows import LOCAL, Rows

VAL_NOISE_SEED = 1234
"""Seed of the validation noise (eval mode); training noise uses the run's seeded global RNG."""


class DAEConfig(AEConfig, NoiseConfig):
    """The AE's architecture fields (channels, latent_dim) plus the training noise (noise, sigma, p, salt)."""

    name: Literal["dae"] = "dae"  # type: ignore[assignment]

    def noise_config(self) -> NoiseConfig:
        return NoiseConfig(**{k: getattr(self, k) for k in NoiseConfig.model_fields})


class DenoisingAE(ConvAE):
    """ConvAE whose loss is MSE(reconstruct(noisy x), x); encode/decode/reconstruct are the AE's (clean pass)."""

    # A DAE maps noisy images to clean ones; it has no distribution to sample from, so it does not
    # take the AE's sampler (None removes a capability: `udl sample` and `udl evaluate` refuse it).
    fit_sampler = None
    generate = None

    def __init__(
        self,
        channels: int,
        latent_dim: int,
        noise: NoiseConfig,
        mean=0.1307,
        std=0.3081,
        shape=MNIST_SHAPE,
    ):
        super().__init__(channels, latent_dim, mean, std, shape)
        self.noise = noise
        # The Normalize std per channel: turns the normalised sigma into pixel units, channel by channel.
        self.std = std

    def corrupt(
        self,
        x: torch.Tensor,
        generator: torch.Generator | None = None,
        kind: str | None = None,
        rows: Rows = LOCAL,
    ) -> torch.Tensor:
        """A noisy copy of x (B, C, H, W) in [0, 1], with the configured noise unless `kind` names another."""
        return add_noise(x, self.noise, self.std, generator, kind, rows)

    def denoise(self, noisy: torch.Tensor) -> torch.Tensor:
        """Noisy images (B, 1, 28, 28) in [0, 1] -> cleaned images in [0, 1]."""
        return self.reconstruct(noisy)

    def loss(self, x: torch.Tensor, y: torch.Tensor, rows: Rows = LOCAL) -> dict[str, torch.Tensor]:
        """The trainer's contract: x is clean; the loss is pixel MSE of the denoised noisy copy against it."""
        gen = None
        if not self.training:
            gen = torch.Generator(device=x.device).manual_seed(VAL_NOISE_SEED)
        noisy = self.corrupt(x, gen, rows=rows)
        return {"loss": F.mse_loss(self.reconstruct(noisy), x)}


def build_dae(cfg: DAEConfig, data) -> DenoisingAE:
    return DenoisingAE(
        cfg.channels, cfg.latent_dim, cfg.noise_config(), *data_stats(data), data_shape(data)
    )


# The AE's tuned optimiser, with the budget udl denoise was measured at (docs/denoise.md): 20 epochs of
# batch 128 and no schedule. (The AE itself now trains longer, for the frozen classifier's sake.)
register(
    Family(
        name="dae",
        config=DAEConfig,
        build=build_dae,
        model=DenoisingAE,
        title="DAE",
        task="denoise",
        command="denoise",
        description="the report's conv autoencoder trained to denoise (MSE against the clean image)",
        train_defaults={**AE_TRAIN_DEFAULTS, "batch_size": 128, "epochs": 20, "scheduler": "none"},
        tiny={"model": {"channels": 4}},
    )
)
