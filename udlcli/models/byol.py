"""BYOL (`udl train byol`, Grill et al. 2020): an online network predicts a slowly moving target network's view of the same image; no negatives.

    online   backbone -> projector -> predictor: p (B, q) for each view
    target   a copy of backbone and projector, never trained by gradients: after every optimiser
             step it moves toward the online weights, target <- tau target + (1 - tau) online, with
             tau from `momentum` (0.99) up to 1 on a cosine over the run (after_step)
    loss     2 - 2 cos(p(view 1), target(view 2)) + the same with the views swapped, averaged

The target lives in the model's state, so checkpoints, resume and several ranks keep it exactly.
"""

from __future__ import annotations

import copy
import math
from typing import Literal

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn

from udlcli.models.backbones import mlp
from udlcli.models.registry import Family, register
from udlcli.models.ssl import SelfSupervised, SSLConfig, SSLSearch, ssl_callbacks
from udlcli.rows import LOCAL, Rows


class BYOLConfig(SSLConfig):
    name: Literal["byol"] = "byol"
    momentum: float = Field(0.99, ge=0.0, lt=1.0)
    """tau at the start: how slowly the target follows the online network (BYOL's 0.996 at batch 4,096)."""
    pred_hidden: int = Field(512, ge=8, le=8192)


class BYOLSearch(SSLSearch):
    """`udl tune byol`: the target's momentum, the optimiser, learning rate and how strong the views are."""

    momentum: tuple[float, float] = (0.9, 0.999)


class BYOL(SelfSupervised):
    def __init__(self, cfg: BYOLConfig, data):
        super().__init__(cfg, data)
        self.base_momentum = cfg.momentum
        # BatchNorm in both heads, as the paper has them: with LayerNorm nothing in the heads
        # compares the images of a batch, and the projections collapsed to one point within ~50
        # steps on digits (the backbone's kNN accuracy ended at or below the untrained network's).
        self.projector = mlp(self.backbone.dim, cfg.proj_hidden, cfg.proj_dim, batch_norm=True)
        self.predictor = mlp(cfg.proj_dim, cfg.pred_hidden, cfg.proj_dim, batch_norm=True)
        self.target = nn.Sequential(copy.deepcopy(self.backbone), copy.deepcopy(self.projector))
        self.target.requires_grad_(False)

    def _online(self) -> list[torch.Tensor]:
        return [*self.backbone.parameters(), *self.projector.parameters()]

    def loss(self, x: torch.Tensor, y: torch.Tensor, rows: Rows = LOCAL) -> dict[str, torch.Tensor]:
        v = torch.cat(self.views(x, rows))  # (2b, C, H, W): view 1, then view 2
        p1, p2 = self.predictor(self.projector(self.backbone(v))).chunk(2)
        with torch.no_grad():
            t1, t2 = self.target(v).chunk(2)
        cos = (
            F.cosine_similarity(p1, t2.detach()).mean()
            + F.cosine_similarity(p2, t1.detach()).mean()
        )
        return {"loss": 2 - cos, "cos": cos / 2}

    @torch.no_grad()
    def after_step(self, progress: float) -> None:
        """Move the target toward the online network; tau rises from `momentum` to 1 over the run."""
        tau = 1 - (1 - self.base_momentum) * (math.cos(math.pi * min(progress, 1.0)) + 1) / 2
        for t, o in zip(self.target.parameters(), self._online()):
            t.lerp_(o, 1 - tau)


HEAD_NORMS = ("projector.1", "predictor.1", "target.1.1")
"""The heads' norm layers (index 1 of each head; the target is Sequential(backbone, projector))."""


def upgrade(payload: dict) -> dict:
    """A checkpoint from before the heads' BatchNorm (their LayerNorm had the same weight and bias):
    the norms get fresh statistics (mean 0, variance 1). The backbone, whose features embed, probe
    and finetune use, is unchanged; the heads relearn their statistics if the run is resumed."""
    for key in ("model", "ema"):
        state = payload.get(key)
        if not isinstance(state, dict):
            continue
        for p in HEAD_NORMS:
            w = state.get(f"{p}.weight")
            if w is not None and f"{p}.running_mean" not in state:
                state[f"{p}.running_mean"] = torch.zeros_like(w)
                state[f"{p}.running_var"] = torch.ones_like(w)
                state[f"{p}.num_batches_tracked"] = torch.tensor(0)
    return payload


def build(cfg: BYOLConfig, data) -> BYOL:
    return BYOL(cfg, data)


register(
    Family(
        name="byol",
        config=BYOLConfig,
        build=build,
        model=BYOL,
        title="BYOL",
        description="BYOL: an online network predicts a moving-average target's view of the same image",
        train_defaults={
            "optimizer": "adamw",
            "lr": 2e-3,
            "weight_decay": 1e-4,
            "batch_size": 256,
            "epochs": 20,
            "scheduler": "cosine",
            "warmup_steps": 100,
            "drop_last": True,
        },
        callbacks=ssl_callbacks,
        search=BYOLSearch,
        upgrade=upgrade,
        exempt={
            "two_ranks": "the heads' BatchNorm normalises over each rank's shard (as DCGAN's does), "
            "so 2 CPU ranks train like one process statistically, not to 1e-5 (SyncBatchNorm needs GPUs)"
        },
        key_metric=("test_knn_acc", "test kNN accuracy", "max"),
        tiny={
            "model": {"channels": 8, "proj_hidden": 32, "proj_dim": 16, "pred_hidden": 32},
            "train": {"batch_size": 64},
        },
    )
)
