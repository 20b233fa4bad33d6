"""The report's fine-tuning classifier: the AE's encoder with a small MLP head, and its registry entry.

Layout (n = channels, d = latent_dim, h = hidden), for a 1x28x28 input:

    encoder   the AE's ConvEncoder and to_latent (udlcli.models.ae), weights copied from an AE run
              -> codes (B, d)
    head      Linear(d, h) ReLU Dropout(p) Linear(h, classes) -> logits (B, classes)

The report's tuned head: h 928, p 0.104258, Adam, lr 0.001839, weight decay 5.81e-5. By default
the encoder is frozen: it stays in eval mode, its weights get no gradients and run under
torch.no_grad(), so only the head trains; its codes never change, so the engine may compute them
once and feed the head codes (B, d) instead of images (forward() takes either). With `unfreeze` the encoder trains too, with its own
learning rate (encoder_lr) given to the trainer through param_groups().
"""

from __future__ import annotations

from typing import Literal, Optional

import torch
import torch.nn.functional as F
from pydantic import Field, model_validator
from torch import nn

from udlcli.config import Strict, TrainConfig
from udlcli.models.ae import HIDDEN, ConvEncoder
from udlcli.models.registry import ModelEntry, register


class HeadConfig(Strict):
    """The head and how the encoder is treated: the fields `udl finetune` and its YAML `finetune:` section share."""

    hidden: int = Field(928, ge=1, le=65_536)
    """Units of the head's hidden layer (the report's tuned 928)."""
    dropout: float = Field(0.104258, ge=0.0, lt=1.0)
    """Dropout p between the hidden and the output layer (the report's tuned 0.104258)."""
    unfreeze: bool = False
    """Train the encoder too (fine-tuning); by default it is frozen and only the head trains."""
    encoder_lr: Optional[float] = Field(None, gt=0.0, le=10.0)
    """Learning rate of the encoder when unfrozen; None uses a tenth of the head's lr."""
    shift: int = Field(0, ge=0, le=4)
    """With unfreeze: shift each training image by up to this many pixels (augmentation); 0 is off."""

    @model_validator(mode="after")
    def _shift_needs_images(self) -> "HeadConfig":
        # A frozen encoder's codes are computed once, so there are no images left to shift.
        if self.shift and not self.unfreeze:
            raise ValueError("shift augments the images the encoder sees; it needs unfreeze (--unfreeze)")
        return self


class ClassifierConfig(HeadConfig):
    """What rebuilds a classifier from its checkpoint: the encoder's architecture plus the head."""

    name: Literal["classifier"] = "classifier"
    channels: int = Field(12, ge=1, le=512)
    """n of the encoder, copied from the AE run the classifier was built on."""
    latent_dim: int = Field(7, ge=1, le=4096)
    """d of the encoder, copied from the AE run."""
    classes: int = Field(10, ge=2, le=100_000)


class Classifier(nn.Module):
    """Encoder (frozen or not) + MLP head; loss() is cross-entropy and also reports accuracy."""

    def __init__(self, cfg: ClassifierConfig, mean: float = 0.1307, std: float = 0.3081):
        super().__init__()
        self.cfg = cfg
        self.frozen = not cfg.unfreeze
        # The same modules (and parameter names) as ConvAE, so an AE's weights load by name.
        self.encoder = ConvEncoder(cfg.channels, mean, std)
        self.to_latent = nn.Linear(HIDDEN, cfg.latent_dim)
        self.head = nn.Sequential(
            nn.Linear(cfg.latent_dim, cfg.hidden), nn.ReLU(True),  # (B, h)
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

    def train(self, mode: bool = True) -> "Classifier":
        super().train(mode)
        if self.frozen:  # a frozen encoder always runs as at inference, whatever the head does
            self.encoder.eval()
            self.to_latent.eval()
        return self

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 1, 28, 28) in [0, 1] -> codes (B, d); no graph is built through a frozen encoder."""
        with torch.set_grad_enabled(torch.is_grad_enabled() and not self.frozen):
            return self.to_latent(self.encoder(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Images (B, 1, 28, 28), or codes (B, d) already computed by the frozen encoder -> logits (B, classes)."""
        return self.head(x if x.ndim == 2 else self.encode(x))

    def loss(self, x: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
        """The trainer's contract: cross-entropy to minimise, and accuracy to log."""
        if self.training and self.cfg.shift and x.ndim == 4:
            x = random_shift(x, self.cfg.shift)
        logits = self(x)
        return {"loss": F.cross_entropy(logits, y), "acc": (logits.argmax(1) == y).float().mean()}

    def param_groups(self, cfg: TrainConfig) -> list[dict]:
        """The head at the run's lr; an unfrozen encoder at encoder_lr (default lr / 10)."""
        groups = [{"params": list(self.head.parameters()), "lr": cfg.lr}]
        if not self.frozen:
            enc_lr = self.cfg.encoder_lr if self.cfg.encoder_lr is not None else cfg.lr / 10
            groups.append({"params": self.encoder_parameters(), "lr": enc_lr})
        return groups

    def trainable_parameters(self) -> int:
        return sum(p.numel() for g in self.param_groups(TrainConfig()) for p in g["params"])


def random_shift(x: torch.Tensor, pixels: int) -> torch.Tensor:
    """Translate each image (B, 1, H, W) by its own whole-pixel offset in [-pixels, pixels]; the border fills with 0 (background)."""
    b, _, h, w = x.shape
    d = torch.randint(-pixels, pixels + 1, (b, 2), device=x.device).to(x.dtype)  # (B, 2): dx, dy in pixels
    theta = torch.zeros(b, 2, 3, device=x.device, dtype=x.dtype)
    theta[:, 0, 0] = theta[:, 1, 1] = 1.0
    theta[:, 0, 2], theta[:, 1, 2] = -2 * d[:, 0] / w, -2 * d[:, 1] / h  # a grid shifted by -d samples the image moved by +d
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="nearest", padding_mode="zeros", align_corners=False)


def build_classifier(cfg: ClassifierConfig, data) -> Classifier:
    return Classifier(cfg, data.mean, data.std)


register(
    ModelEntry(
        name="classifier",
        config=ClassifierConfig,
        build=build_classifier,
        task="finetune",
        description="the report's fine-tuning classifier: an AE's encoder with an MLP head (cross-entropy)",
        # The report's optuna result for the head: Adam, lr 0.001839, weight decay 5.81e-5.
        train_defaults={"optimizer": "adam", "lr": 1.839e-3, "weight_decay": 5.81e-5, "batch_size": 128, "epochs": 20},
    )
)
