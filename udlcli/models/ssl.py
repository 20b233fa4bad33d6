"""What the self-supervised families (SimCLR, BYOL) share: a backbone, two augmented views, the features they offer, a kNN monitor.

views      two random views of each image (udlcli/data/augment.py), on the device, drawn
           through the trainer's Rows so several ranks draw what one process would
features   `backbone` (the representation, the default) and `projection` (the head's output):
           what `udl embed`, `udl finetune` and `udlcli.load(run).encode` use; `udl export`
           writes the backbone
KNNMonitor after every epoch, the weighted kNN accuracy (cosine, k = 200) of the validation
           split against the training split's features, as lightly and solo-learn report it
           (metrics.csv's knn_acc); at the end, the test split's (summary.json's test_knn_acc);
           before the first epoch, figures/views.png: one batch's two views side by side
"""

from __future__ import annotations

from typing import ClassVar, Literal

import torch
from pydantic import Field
from torch import nn

from udlcli import metrics, plots
from udlcli.core.callbacks import Callback
from udlcli.core.contracts import Graph, layer_of
from udlcli.data.augment import AugmentConfig, augment, flips_for
from udlcli.models.backbones import BackboneConfig, build_backbone, mlp
from udlcli.models.conv import data_shape, data_stats
from udlcli.rows import LOCAL, Rows
from udlcli.search import Optimizer, Search

BANK = 10_000
"""Training images whose features the per-epoch kNN monitor compares with (seeded); the test's uses all."""


class SSLConfig(BackboneConfig):
    augment: AugmentConfig = AugmentConfig()
    proj_hidden: int = Field(512, ge=8, le=8192)
    proj_dim: int = Field(128, ge=2, le=4096)
    """Width of the projection head's output (what the loss compares)."""


class SSLSearch(Search):
    """What `udl tune simclr|byol` scores: the validation kNN accuracy, maximised. The pretext loss
    would reward a low temperature, weak views and (BYOL) collapse, not better features."""

    metric: ClassVar[str] = "validation kNN accuracy"
    monitor: ClassVar[str] = "knn_acc"
    direction: ClassVar[Literal["minimize", "maximize"]] = "maximize"
    optimizer: list[Optimizer] = ["adamw", "adam", "sgd"]
    """The families' own AdamW first (their train default), then Adam and SGD with momentum."""
    strength: tuple[float, float] = (0.5, 1.5)
    """How strong the views are (augment.strength)."""


class SelfSupervised(nn.Module):
    """A backbone, its projection head, and the two views of a batch; each family adds its loss."""

    bf16_pays = True
    """--precision auto trains it in bf16 where the device has bf16 units: a SimCLR step ran 1.43x
    as fast on an Intel Xeon with AMX (issue #34)."""

    def __init__(self, cfg: SSLConfig, data):
        super().__init__()
        self.shape = data_shape(data)
        self.backbone = build_backbone(cfg, *data_stats(data), self.shape)
        self.projector = mlp(self.backbone.dim, cfg.proj_hidden, cfg.proj_dim)
        self.aug, self.proj_dim = cfg.augment, cfg.proj_dim
        self.flip = flips_for(cfg.augment, getattr(data, "dataset", "") or "")

    def views(self, x: torch.Tensor, rows: Rows = LOCAL) -> tuple[torch.Tensor, torch.Tensor]:
        return augment(x, self.aug, self.flip, rows), augment(x, self.aug, self.flip, rows)

    def feature_layers(self) -> dict[str, int]:
        return {"backbone": self.backbone.dim, "projection": self.proj_dim}

    def feature_extractor(self, layer: str | None = None) -> nn.Module:
        layer = layer_of(self.feature_layers(), layer, "a self-supervised model")
        return (
            self.backbone if layer == "backbone" else nn.Sequential(self.backbone, self.projector)
        )

    def graphs(self) -> dict[str, Graph]:
        x = torch.rand(2, *self.shape)
        return {"backbone": Graph(self.backbone, {"input": x}, "images -> features (B, d)")}


@torch.no_grad()
def features(model: SelfSupervised, split, device, limit: int | None = None, seed: int = 0):
    """(features (N, d), labels (N,)) of a split's images through the backbone, in eval mode."""
    was = model.training
    model.eval()
    idx = torch.arange(len(split))
    if limit is not None and limit < len(split):
        idx = torch.randperm(len(split), generator=torch.Generator().manual_seed(seed))[:limit]
    sub = split.subset(idx.to(split.x.device))
    out = torch.cat([model.backbone(x.to(device)).float() for x, _ in sub.batches(1024)])
    model.train(was)
    return out, sub.y.to(out.device)


class KNNMonitor(Callback):
    """kNN accuracy of the backbone's features: the validation split's each epoch, the test split's at the end."""

    def __init__(self, ctx):
        self.ctx, self.val = ctx, ctx.val
        # Labels are what kNN predicts: data without them (CelebA, a flat folder) gets no monitor.
        self.labelled = not ctx.data.why_unlabelled()

    def on_start(self, trainer) -> None:
        if self.ctx.run_dir is None:  # a tuning trial: no run folder, no figure
            return
        x = self.ctx.train.images(
            torch.arange(min(8, len(self.ctx.train))).to(self.ctx.train.x.device)
        )
        v1, v2 = trainer.model.views(x)
        plots.image_rows(
            [x, v1, v2],
            ["image", "view 1", "view 2"],
            self.ctx.run_dir / "figures" / "views.png",
            title="One batch's two augmented views (what the loss sees)",
        )

    def on_epoch(self, trainer, row: dict) -> None:
        if self.val is None or not len(self.val) or not self.labelled:
            return
        with trainer.averaged():
            bank, bank_y = features(trainer.model, self.ctx.train, self.ctx.device, BANK)
            q, q_y = features(trainer.model, self.val, self.ctx.device)
        row["knn_acc"] = metrics.knn_accuracy(bank, bank_y, q, q_y)

    def on_end(self, trainer, summary: dict) -> None:
        if summary.get("status") != "finished" or not self.labelled:
            return
        bank, bank_y = features(trainer.model, self.ctx.train, self.ctx.device)
        q, q_y = features(trainer.model, self.ctx.test, self.ctx.device)
        summary["test_knn_acc"] = metrics.knn_accuracy(bank, bank_y, q, q_y)
        if trainer.history and "knn_acc" in trainer.history[-1]:
            summary["knn_acc"] = trainer.history[-1]["knn_acc"]


def ssl_callbacks(ctx) -> list[Callback]:
    """The self-supervised families' callbacks (registry.Family.callbacks); ctx is core.lifecycle.FitContext."""
    return [KNNMonitor(ctx)]
