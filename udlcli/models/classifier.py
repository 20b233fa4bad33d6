"""The report's fine-tuning classifier: the AE's encoder with a small MLP head, and its registry entry.

Layout (n = channels, d = latent_dim, h = hidden), for a 1x28x28 input:

    encoder      the AE's ConvEncoder and to_latent (udlcli.models.ae), weights copied from an AE run
    features     what the head sees (`features`): latent, the code (B, d) (the report's); hidden, the
                 encoder's 64-unit layer (B, 64); conv, the flattened conv trunk (B, 36n for 1x28x28)
    standardize  each feature minus its mean, over its std, both fixed from the training split
    head         Linear(f, h) ReLU Dropout(p) Linear(h, classes) -> logits (B, classes)

The report's tuned head: h 928, p 0.104258, Adam, lr 0.001839, weight decay 5.81e-5. By default
the encoder is frozen: it stays in eval mode, its weights get no gradients and run under
torch.no_grad(), so only the head trains; its features never change, so the engine may compute them
once and train on `classify(features)` alone. With `unfreeze` the encoder trains too, with its own
learning rate (encoder_lr, by default the head's) given to the trainer through param_groups().
"""

from __future__ import annotations

from typing import Literal, Optional

import torch
import torch.nn.functional as F
from pydantic import Field, model_validator
from torch import nn

from udlcli.config import Strict, TrainConfig
from udlcli.models.ae import HIDDEN, MNIST_SHAPE, ConvEncoder, conv_width, data_shape, data_stats
from udlcli.models.registry import ModelEntry, register

Features = Literal["latent", "hidden", "conv"]
UNFROZEN_SHIFT = 2
"""--unfreeze's default augmentation: random shifts of up to 2 pixels (99.3% on MNIST, docs/finetune.md)."""


class HeadConfig(Strict):
    """The head and how the encoder is treated: the fields `udl finetune` and its YAML `finetune:` section share."""

    hidden: int = Field(928, ge=1, le=65_536)
    """Units of the head's hidden layer (the report's tuned 928)."""
    dropout: float = Field(0.104258, ge=0.0, lt=1.0)
    """Dropout p between the hidden and the output layer (the report's tuned 0.104258)."""
    features: Features = "latent"
    """What the head sees: latent (the code, the report's), hidden (the encoder's 64-unit layer), conv (the flattened conv trunk)."""
    standardize: bool = True
    """Scale each feature to zero mean and unit variance over the training split (fixed numbers, stored with the weights)."""
    unfreeze: bool = False
    """Train the encoder too (fine-tuning); by default it is frozen and only the head trains."""
    encoder_lr: Optional[float] = Field(None, gt=0.0, le=10.0)
    """Learning rate of the encoder when unfrozen; None uses the head's lr."""
    shift: Optional[int] = Field(None, ge=0, le=4)
    """With unfreeze: shift each training image by up to this many pixels (augmentation); None: 2 with unfreeze, else 0."""

    @model_validator(mode="after")
    def _shift_needs_images(self) -> HeadConfig:
        # A frozen encoder's features are computed once, so there are no images left to shift.
        if self.shift and not self.unfreeze:
            raise ValueError(
                "shift augments the images the encoder sees; it needs unfreeze (--unfreeze)"
            )
        if self.shift is None:
            self.shift = UNFROZEN_SHIFT if self.unfreeze else 0
        return self


class ClassifierConfig(HeadConfig):
    """What rebuilds a classifier from its checkpoint: the encoder's architecture plus the head."""

    name: Literal["classifier"] = "classifier"
    channels: int = Field(12, ge=1, le=512)
    """n of the encoder, copied from the AE run the classifier was built on."""
    latent_dim: int = Field(7, ge=1, le=4096)
    """d of the encoder, copied from the AE run."""
    classes: int = Field(10, ge=2, le=100_000)


class Standardize(nn.Module):
    """(x - mean) / std per feature, with mean and std buffers fixed by fit() (saved in checkpoints, never trained)."""

    def __init__(self, width: int):
        super().__init__()
        self.register_buffer("mean", torch.zeros(width))
        self.register_buffer("std", torch.ones(width))

    @torch.no_grad()
    def fit(self, features: torch.Tensor) -> None:
        """Set mean and std from features (N, width); a constant feature keeps std 1."""
        sd = features.std(0)
        self.mean.copy_(features.mean(0))
        self.std.copy_(torch.where(sd > 1e-6, sd, torch.ones_like(sd)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


class Classifier(nn.Module):
    """Encoder (frozen or not) + MLP head on the chosen features; loss() is cross-entropy and also reports accuracy."""

    def __init__(self, cfg: ClassifierConfig, mean=0.1307, std=0.3081, shape=MNIST_SHAPE):
        super().__init__()
        self.cfg = cfg
        self.frozen = not cfg.unfreeze
        # The same modules (and parameter names) as ConvAE, so an AE's weights load by name.
        self.encoder = ConvEncoder(cfg.channels, mean, std, shape)
        self.to_latent = nn.Linear(HIDDEN, cfg.latent_dim)
        width = {
            "latent": cfg.latent_dim,
            "hidden": HIDDEN,
            "conv": conv_width(cfg.channels, shape),
        }[cfg.features]
        self.standardize = Standardize(width)
        self.head = nn.Sequential(
            nn.Linear(width, cfg.hidden),
            nn.ReLU(True),  # (B, h)
            nn.Dropout(cfg.dropout),
            nn.Linear(cfg.hidden, cfg.classes),  # (B, classes) logits
        )
        if self.frozen:
            for p in self.encoder_parameters():
                p.requires_grad_(False)

    def encoder_parameters(self) -> list[nn.Parameter]:
        return [*self.encoder.parameters(), *self.to_latent.parameters()]

    def load_encoder(self, ae: nn.Module) -> None:
        """Copy encoder and to_latent weights from a trained AE (any model with those two modules)."""
        self.encoder.load_state_dict(ae.encoder.state_dict())
        self.to_latent.load_state_dict(ae.to_latent.state_dict())

    def train(self, mode: bool = True) -> Classifier:
        super().train(mode)
        if self.frozen:  # a frozen encoder always runs as at inference, whatever the head does
            self.encoder.eval()
            self.to_latent.eval()
        return self

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 1, 28, 28) in [0, 1] -> the head's input features (B, f), before standardising; no graph through a frozen encoder."""
        with torch.set_grad_enabled(torch.is_grad_enabled() and not self.frozen):
            if self.cfg.features == "conv":
                return self.encoder.conv_features(x)  # (B, 36n)
            h = self.encoder(x)  # (B, 64)
            return h if self.cfg.features == "hidden" else self.to_latent(h)  # (B, 64) or (B, d)

    def classify(self, features: torch.Tensor) -> torch.Tensor:
        """Features (B, f) from encode() -> logits (B, classes): the head alone, for features computed once."""
        return self.head(self.standardize(features))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Images (B, 1, 28, 28) in [0, 1] -> logits (B, classes)."""
        return self.classify(self.encode(x))

    def loss(self, x: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
        """The trainer's contract on images: cross-entropy to minimise, and accuracy to log."""
        if self.training and self.cfg.shift:
            x = random_shift(x, self.cfg.shift)
        return self._scores(self(x), y)

    def feature_loss(self, f: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
        """The same contract on features computed once by a frozen encoder (see engine/finetune.py's FeatureHead)."""
        return self._scores(self.classify(f), y)

    @staticmethod
    def _scores(logits: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"loss": F.cross_entropy(logits, y), "acc": (logits.argmax(1) == y).float().mean()}

    def param_groups(self, cfg: TrainConfig) -> list[dict]:
        """The head at the run's lr; an unfrozen encoder at encoder_lr (default: the same lr)."""
        groups = [{"params": list(self.head.parameters()), "lr": cfg.lr}]
        if not self.frozen:
            enc_lr = self.cfg.encoder_lr if self.cfg.encoder_lr is not None else cfg.lr
            groups.append({"params": self.encoder_parameters(), "lr": enc_lr})
        return groups

    def trainable_parameters(self) -> int:
        return sum(p.numel() for g in self.param_groups(TrainConfig()) for p in g["params"])


def random_shift(x: torch.Tensor, pixels: int) -> torch.Tensor:
    """Translate each image (B, 1, H, W) by its own whole-pixel offset in [-pixels, pixels]; the border fills with 0 (background)."""
    b, _, h, w = x.shape
    d = torch.randint(-pixels, pixels + 1, (b, 2), device=x.device).to(
        x.dtype
    )  # (B, 2): dx, dy in pixels
    theta = torch.zeros(b, 2, 3, device=x.device, dtype=x.dtype)
    theta[:, 0, 0] = theta[:, 1, 1] = 1.0
    theta[:, 0, 2], theta[:, 1, 2] = (
        -2 * d[:, 0] / w,
        -2 * d[:, 1] / h,
    )  # a grid shifted by -d samples the image moved by +d
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="nearest", padding_mode="zeros", align_corners=False)


def build_classifier(cfg: ClassifierConfig, data) -> Classifier:
    return Classifier(cfg, *data_stats(data), data_shape(data))


register(
    ModelEntry(
        name="classifier",
        config=ClassifierConfig,
        build=build_classifier,
        task="finetune",
        description="the report's fine-tuning classifier: an AE's encoder with an MLP head (cross-entropy)",
        # The report's optuna result for the head: Adam, lr 0.001839, weight decay 5.81e-5; a cosine schedule
        # (docs/finetune.md). The epochs depend on --unfreeze: see engine/finetune.py's FinetuneSpec.
        train_defaults={
            "optimizer": "adam",
            "lr": 1.839e-3,
            "weight_decay": 5.81e-5,
            "batch_size": 128,
            "scheduler": "cosine",
        },
    )
)
