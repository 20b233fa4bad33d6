"""The report's fine-tuning classifier (`udl finetune`): a head on the features of any run that encodes images.

Layout (f = the chosen layer's width, h = hidden):

    backbone     the feature extractor of the run it was built on (core/contracts.py's Encodes): an
                 AE's code (latent, the report's), its 64-unit layer (hidden) or its conv trunk
                 (conv); a self-supervised encoder's backbone; ... weights copied from that run
    standardize  each feature minus its mean, over its std, both fixed from the training split
    head         Linear(f, h) ReLU Dropout(p) Linear(h, classes) -> logits (B, classes)

The report's tuned head: h 928, p 0.104258, Adam, lr 0.001839, weight decay 5.81e-5. By default
the backbone is frozen: it stays in eval mode, its weights get no gradients and run under
torch.no_grad(), so only the head trains; its features never change, so the engine may compute them
once and train on `classify(features)` alone. With `unfreeze` the backbone trains too, with its own
learning rate (encoder_lr, by default the head's) given to the trainer through param_groups().
"""

from __future__ import annotations

from typing import Any, Literal, Optional

import torch
import torch.nn.functional as F
from pydantic import Field, model_validator
from torch import nn

from udlcli.config import Strict, TrainConfig, validate
from udlcli.core.contracts import Graph
from udlcli.models.conv import data_shape
from udlcli.models.registry import Family, get, register
from udlcli.rows import LOCAL, Rows

UNFROZEN_SHIFT = 2
"""--unfreeze's default augmentation: random shifts of up to 2 pixels (99.3% on MNIST, docs/finetune.md)."""


class HeadConfig(Strict):
    """The head and how the backbone is treated: the fields `udl finetune` and its YAML `finetune:` section share."""

    hidden: int = Field(928, ge=1, le=65_536)
    """Units of the head's hidden layer (the report's tuned 928)."""
    dropout: float = Field(0.104258, ge=0.0, lt=1.0)
    """Dropout p between the hidden and the output layer (the report's tuned 0.104258)."""
    features: Optional[str] = None
    """The backbone's layer the head sees: an AE's latent (the code, the report's), hidden or conv;
    a self-supervised encoder's backbone or projection. None: the backbone's first (default) layer."""
    standardize: bool = True
    """Scale each feature to zero mean and unit variance over the training split (fixed numbers, stored with the weights)."""
    unfreeze: bool = False
    """Train the backbone too (fine-tuning); by default it is frozen and only the head trains."""
    encoder_lr: Optional[float] = Field(None, gt=0.0, le=10.0)
    """Learning rate of the backbone when unfrozen; None uses the head's lr."""
    shift: Optional[int] = Field(None, ge=0, le=4)
    """With unfreeze: shift each training image by up to this many pixels (augmentation); None: 2 with unfreeze, else 0."""

    @model_validator(mode="after")
    def _shift_needs_images(self) -> HeadConfig:
        # A frozen backbone's features are computed once, so there are no images left to shift.
        if self.shift and not self.unfreeze:
            raise ValueError(
                "shift augments the images the encoder sees; it needs unfreeze (--unfreeze)"
            )
        if self.shift is None:
            self.shift = UNFROZEN_SHIFT if self.unfreeze else 0
        return self


class ClassifierConfig(HeadConfig):
    """What rebuilds a classifier from its checkpoint: the backbone's model section plus the head."""

    name: Literal["classifier"] = "classifier"
    backbone: Optional[dict[str, Any]] = None
    """The model section of the run the backbone comes from (its family's config), rebuilt through the registry."""
    channels: Optional[int] = Field(None, ge=1, le=512, exclude=True)
    latent_dim: Optional[int] = Field(None, ge=1, le=4096, exclude=True)
    """Runs written before backbones were general named an AE's n and d here; read as backbone: {name: ae, ...}."""
    classes: int = Field(10, ge=2, le=100_000)

    @model_validator(mode="after")
    def _an_ae_by_default(self) -> ClassifierConfig:
        if self.backbone is None:
            self.backbone = {
                "name": "ae",
                "channels": self.channels or 12,
                "latent_dim": self.latent_dim or 7,
            }
        return self


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
    """Backbone (frozen or not) + MLP head on its features; loss() is cross-entropy and also reports accuracy."""

    def __init__(self, cfg: ClassifierConfig, backbone: nn.Module, width: int, shape=(1, 28, 28)):
        super().__init__()
        self.cfg, self.shape = cfg, tuple(shape)
        self.frozen = not cfg.unfreeze
        self.backbone = backbone  # images (B, C, H, W) -> features (B, width)
        self.standardize = Standardize(width)
        self.head = nn.Sequential(
            nn.Linear(width, cfg.hidden),
            nn.ReLU(True),  # (B, h)
            nn.Dropout(cfg.dropout),
            nn.Linear(cfg.hidden, cfg.classes),  # (B, classes) logits
        )
        if self.frozen:
            self.backbone.requires_grad_(False)

    def load_backbone(self, model: nn.Module) -> None:
        """Copy the backbone's weights from a trained model of the backbone's family (its feature extractor)."""
        self.backbone.load_state_dict(model.feature_extractor(self.cfg.features).state_dict())

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # Classifiers written before backbones were general kept an AE's encoder and to_latent at the top.
        for key in [
            k for k in state_dict if k.startswith((prefix + "encoder.", prefix + "to_latent."))
        ]:
            state_dict[prefix + "backbone." + key[len(prefix) :]] = state_dict.pop(key)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def train(self, mode: bool = True) -> Classifier:
        super().train(mode)
        if self.frozen:  # a frozen backbone always runs as at inference, whatever the head does
            self.backbone.eval()
        return self

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) in [0, 1] -> the head's input features (B, f), before standardising; no graph through a frozen backbone."""
        with torch.set_grad_enabled(torch.is_grad_enabled() and not self.frozen):
            return self.backbone(x)

    def classify(self, features: torch.Tensor) -> torch.Tensor:
        """Features (B, f) from encode() -> logits (B, classes): the head alone, for features computed once."""
        return self.head(self.standardize(features))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Images (B, C, H, W) in [0, 1] -> logits (B, classes)."""
        return self.classify(self.encode(x))

    def loss(self, x: torch.Tensor, y: torch.Tensor, rows: Rows = LOCAL) -> dict[str, torch.Tensor]:
        """The trainer's contract on images: cross-entropy to minimise, and accuracy to log."""
        if self.training and self.cfg.shift:
            x = random_shift(x, self.cfg.shift)
        return self._scores(self(x), y)

    def feature_loss(self, f: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
        """The same contract on features computed once by a frozen backbone (tasks/finetune's FeatureHead)."""
        return self._scores(self.classify(f), y)

    @staticmethod
    def _scores(logits: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"loss": F.cross_entropy(logits, y), "acc": (logits.argmax(1) == y).float().mean()}

    def param_groups(self, cfg: TrainConfig) -> list[dict]:
        """The head at the run's lr; an unfrozen backbone at encoder_lr (default: the same lr)."""
        groups = [{"params": list(self.head.parameters()), "lr": cfg.lr}]
        if not self.frozen:
            enc_lr = self.cfg.encoder_lr if self.cfg.encoder_lr is not None else cfg.lr
            groups.append({"params": list(self.backbone.parameters()), "lr": enc_lr})
        return groups

    def trainable_parameters(self) -> int:
        return sum(p.numel() for g in self.param_groups(TrainConfig()) for p in g["params"])

    def graphs(self) -> dict[str, Graph]:
        x = torch.rand(2, *self.shape)
        return {"classifier": Graph.of(self, "forward", "images -> logits (B, classes)", input=x)}


def random_shift(x: torch.Tensor, pixels: int) -> torch.Tensor:
    """Translate each image (B, C, H, W) by its own whole-pixel offset in [-pixels, pixels]; the border fills with 0 (background)."""
    b, _, h, w = x.shape
    d = torch.randint(-pixels, pixels + 1, (b, 2), device=x.device).to(x.dtype)  # (B, 2): dx, dy
    theta = torch.zeros(b, 2, 3, device=x.device, dtype=x.dtype)
    theta[:, 0, 0] = theta[:, 1, 1] = 1.0
    # A grid shifted by -d samples the image moved by +d.
    theta[:, 0, 2], theta[:, 1, 2] = -2 * d[:, 0] / w, -2 * d[:, 1] / h
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="nearest", padding_mode="zeros", align_corners=False)


def backbone_model(cfg: ClassifierConfig, data) -> nn.Module:
    """A fresh model of the backbone's family, built from its stored model section and the data section."""
    family = get(cfg.backbone["name"])
    model_cfg = validate(family.config, cfg.backbone, source="the classifier's backbone section")
    return family.build(model_cfg, data)


def build_classifier(cfg: ClassifierConfig, data) -> Classifier:
    # The backbone's weights come from its run; a fresh one is drawn by its own layers'
    # reset_parameters, in order, so the head's initial weights follow the same random stream
    # whatever else the backbone's family builds (an AE's decoder is not part of it).
    with torch.random.fork_rng():
        model = backbone_model(cfg, data)
    layers = model.feature_layers()
    if cfg.features is None:
        cfg.features = next(iter(layers))
    extractor = model.feature_extractor(cfg.features)
    for m in extractor.modules():
        if hasattr(m, "reset_parameters"):
            m.reset_parameters()
    return Classifier(cfg, extractor, layers[cfg.features], data_shape(data))


register(
    Family(
        name="classifier",
        config=ClassifierConfig,
        build=build_classifier,
        model=Classifier,
        title="classifier",
        task="finetune",
        command="finetune",
        description="the report's fine-tuning classifier: an MLP head on a trained encoder's features (cross-entropy)",
        # The report's optuna result for the head: Adam, lr 0.001839, weight decay 5.81e-5; a cosine schedule
        # (docs/finetune.md). The epochs depend on --unfreeze: see tasks/finetune/spec.py's FinetuneSpec.
        train_defaults={
            "optimizer": "adam",
            "lr": 1.839e-3,
            "weight_decay": 5.81e-5,
            "batch_size": 128,
            "scheduler": "cosine",
        },
        key_metric=("test_accuracy", "test accuracy", "max"),
        tiny={"model": {"hidden": 16, "dropout": 0.0}},  # no dropout: its masks are drawn per rank
    )
)
