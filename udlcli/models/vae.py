"""The report's convolutional VAE: the AE's encoder and decoder bodies, Gaussian heads, the ELBO loss, its registry entry.

    x (B, 1, 28, 28) -> ConvEncoder -> h (B, 64) -> mu (B, d), log sigma^2 (B, d)      q(z|x) = N(mu, sigma^2)
    z = mu + sigma * xi,  xi ~ N(0, I)                                                 the reparametrisation trick
    z (B, d) -> ConvDecoder -> x~ (B, 1, 28, 28) in [0, 1]

The loss is the report's ||x - x~||^2 + KL(N(mu, sigma) || N(0, I)), the reconstruction term summed
over the C x H x W pixels (784 for MNIST) and everything averaged over the batch, so it reads as nats per image:

    recon = mse: sum of squared errors, the negative log-likelihood of a Gaussian decoder with
                 variance 1/2 up to the constant 392 log(pi) (the report's loss);
    recon = bce: the Bernoulli decoder's negative log-likelihood, sum of per-pixel cross-entropies.
    loss  = recon + beta * kl. With beta = 1 this is the negative ELBO per image; for beta != 1 the
            negative ELBO itself is reported beside it as "nelbo".
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn

from udlcli.config import MNIST_SHAPE, Strict
from udlcli.core.contracts import Graph, layer_of
from udlcli.models.ae import TRAIN_DEFAULTS as AE_TRAIN_DEFAULTS
from udlcli.models.conv import (
    HIDDEN,
    ConvDecoder,
    ConvEncoder,
    ConvFeatures,
    autoencoder_graphs,
    conv_layers,
    data_shape,
    data_stats,
    he_init,
)
from udlcli.models.registry import Family, register
from udlcli.rows import LOCAL, Rows

# log sigma^2 is clamped to this range. Unclamped, one bad step can push it to ~+90, where
# exp() overflows float32 and the KL becomes inf, or to -inf, where the KL's -log sigma^2 term
# does. A clamp keeps the value and gradient exact everywhere the model works (trained posteriors
# have sigma between ~0.01 and 1, log sigma^2 in [-9, 0]); softplus(sigma^2) would instead bend the
# whole small-variance range and make the KL's closed form no longer use log sigma^2 directly.
# sigma spans [e^-6, e^3] = [0.0025, 20]: far below the finest posterior and above the prior's 1.
LOGVAR_MIN, LOGVAR_MAX = -12.0, 6.0


class VAEConfig(Strict):
    name: Literal["vae"] = "vae"
    channels: int = Field(12, ge=1, le=512)
    """n: channels of the first convolution (the AE's value, 12)."""
    latent_dim: int = Field(7, ge=1, le=4096)
    """Size of the latent code; 7 as the AE, so their samples compare at the same size."""
    recon: Literal["mse", "bce"] = "bce"
    """Reconstruction term: bce (Bernoulli decoder) or mse (the report's squared error)."""
    beta: float = Field(1.0, ge=0.0, le=1000.0)
    """Weight of the KL term (1: the ELBO; larger: a smoother, blurrier latent space)."""


class ConvVAE(nn.Module):
    """Convolutional VAE with a diagonal Gaussian posterior (the trainer's loss contract, core/contracts.py)."""

    def __init__(
        self,
        channels: int = 12,
        latent_dim: int = 7,
        recon: str = "bce",
        beta: float = 1.0,
        mean=0.1307,
        std=0.3081,
        shape=MNIST_SHAPE,
    ):
        super().__init__()
        self.channels, self.latent_dim, self.shape = channels, latent_dim, tuple(shape)
        self.recon, self.beta = recon, beta
        self.encoder = ConvEncoder(channels, mean, std, shape)
        self.to_mu = nn.Linear(HIDDEN, latent_dim)
        self.to_logvar = nn.Linear(HIDDEN, latent_dim)
        self.decoder = ConvDecoder(channels, latent_dim, shape)
        he_init(self)
        # Every posterior starts as the prior's sigma = 1, so the first steps' KL is small and finite.
        nn.init.zeros_(self.to_logvar.weight)

    # ------------------------------------------------------------ encoder and decoder

    def posterior(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, C, H, W) in [0, 1] -> mu (B, d), log sigma^2 (B, d) (clamped, see LOGVAR_MIN)."""
        h = self.encoder(x)
        return self.to_mu(h), self.to_logvar(h).clamp(LOGVAR_MIN, LOGVAR_MAX)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """The posterior mean mu (B, d): deterministic, so `udl embed` and interpolations see one code per image."""
        return self.posterior(x)[0]

    def decode_logits(self, z: torch.Tensor) -> torch.Tensor:
        """(B, d) -> pixel logits (B, C, H, W): the decoder body without its final Sigmoid."""
        return self.decoder.body[:-1](z)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """(B, d) -> images in [0, 1] (B, C, H, W)."""
        return self.decoder(z)

    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        """decode(mu): the most likely reconstruction, without sampling noise."""
        return self.decode(self.encode(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.reconstruct(x)

    @torch.no_grad()
    def sample_prior(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """n images (n, C, H, W) decoded from z ~ N(0, I); z is drawn on the CPU so a seeded generator gives the same z on any device."""
        z = torch.randn(n, self.latent_dim, generator=generator)
        return self.decode(z.to(self.to_mu.weight.device))

    @torch.no_grad()
    def generate(
        self, n: int, generator: torch.Generator | None = None, batch: int = 2048
    ) -> torch.Tensor:
        """New images: prior samples, z drawn at once on the CPU, decoded in batches."""
        z = torch.randn(n, self.latent_dim, generator=generator).to(self.to_mu.weight.device)
        return torch.cat([self.decode(z[i : i + batch]).clamp(0, 1) for i in range(0, n, batch)])

    def feature_layers(self) -> dict[str, int]:
        return conv_layers(self.channels, self.latent_dim, self.shape)

    def feature_extractor(self, layer: str | None = None) -> nn.Module:
        """Its features: the posterior mean mu (latent, the default), or the encoder's hidden or conv layer."""
        return ConvFeatures(
            self.encoder, self.to_mu, layer_of(self.feature_layers(), layer, "a VAE")
        )

    def graphs(self) -> dict[str, Graph]:
        return autoencoder_graphs(self, "posterior means")

    # ------------------------------------------------------------ the loss contract

    def loss(self, x: torch.Tensor, y: torch.Tensor, rows: Rows = LOCAL) -> dict[str, torch.Tensor]:
        """Batch means of the per-image terms: loss (minimised), recon, kl, and nelbo when beta != 1.

        z is sampled in eval mode too: the validation and test figures are the usual one-sample
        Monte-Carlo estimates of the negative ELBO, not the optimistic decode(mu) error.
        """
        mu, logvar = self.posterior(x)
        eps = rows.randn(tuple(mu.shape), mu.device, mu.dtype)
        z = mu + torch.exp(0.5 * logvar) * eps  # (B, d), differentiable in mu and sigma
        logits = self.decode_logits(z)
        if self.recon == "bce":
            # With logits the cross-entropy stays exact where the sigmoid saturates.
            rec = F.binary_cross_entropy_with_logits(logits, x, reduction="none")
        else:
            rec = (torch.sigmoid(logits) - x) ** 2
        recon = rec.flatten(1).sum(1).mean()  # summed over pixels, averaged over the batch
        kl = (
            (0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar)).sum(1).mean()
        )  # closed form against N(0, I)
        out = {"loss": recon + self.beta * kl, "recon": recon, "kl": kl}
        if self.beta != 1.0:
            out["nelbo"] = recon + kl
        return out


def build_vae(cfg: VAEConfig, data) -> ConvVAE:
    return ConvVAE(
        cfg.channels, cfg.latent_dim, cfg.recon, cfg.beta, *data_stats(data), data_shape(data)
    )


# The AE's optimiser settings (the report's optuna result) and its budget: 40 epochs of batch 64 with a
# cosine schedule take FID from 196 (30 epochs of 128, no schedule) to 164, past the default AE's 179
# (docs/vae.md).
register(
    Family(
        name="vae",
        config=VAEConfig,
        build=build_vae,
        model=ConvVAE,
        title="VAE",
        description="convolutional variational autoencoder (the AE's layers, Gaussian latent)",
        train_defaults=AE_TRAIN_DEFAULTS,
        tiny={"model": {"channels": 4}},
    )
)
