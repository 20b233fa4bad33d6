"""SimCLR (`udl train simclr`, Chen et al. 2020): two augmented views of each image, pulled together against every other image of the batch.

    z = normalise(projector(backbone(view)))                     (B, p) for each of the two views
    NT-Xent   for each of the 2B views, a softmax over the 2B - 1 others at temperature tau; the
              other view of the same image is the right answer. Every rank's views are gathered
              (with their gradients) before the softmax, so the negatives are the global batch's
              and 2 ranks train as 1 process (udlcli.rows.Rows.gather).

The representation is the backbone's output (`backbone`), the projection head's is `projection`.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from pydantic import Field

from udlcli.errors import SpecError
from udlcli.models.registry import Family, register
from udlcli.models.ssl import SelfSupervised, SSLConfig, SSLSearch, ssl_callbacks
from udlcli.rows import LOCAL, Rows


class SimCLRConfig(SSLConfig):
    name: Literal["simclr"] = "simclr"
    temperature: float = Field(0.5, gt=0.0, le=10.0)
    """tau of NT-Xent (0.5 suits small batches; SimCLR used 0.1 at batch 4,096)."""


class SimCLRSearch(SSLSearch):
    """`udl tune simclr`: the temperature, the optimiser, learning rate and how strong the views are."""

    temperature: tuple[float, float] = (0.1, 1.0)


class SimCLR(SelfSupervised):
    def __init__(self, cfg: SimCLRConfig, data):
        super().__init__(cfg, data)
        self.temperature = cfg.temperature

    def loss(self, x: torch.Tensor, y: torch.Tensor, rows: Rows = LOCAL) -> dict[str, torch.Tensor]:
        v1, v2 = self.views(x, rows)
        z = F.normalize(self.projector(self.backbone(torch.cat([v1, v2]))), dim=1)
        z1, z2 = z.chunk(2)  # (b, p) each: this rank's rows
        g1, g2 = rows.gather(z1), rows.gather(z2)  # (B, p): the global batch's
        b, n, s = len(z1), len(g1), rows.start
        mine = torch.arange(s, s + b, device=x.device)
        logits = torch.cat([z1, z2]) @ torch.cat([g1, g2]).T / self.temperature  # (2b, 2B)
        rows_ = torch.arange(2 * b, device=x.device)
        logits[rows_, torch.cat([mine, n + mine])] = float("-inf")  # not itself
        target = torch.cat([n + mine, mine])  # the other view of the same image
        return {
            "loss": F.cross_entropy(logits, target),
            "acc": (logits.argmax(1) == target).float().mean(),  # the other view is the nearest
        }


def check(spec) -> list[str]:
    """A batch of one has no negatives: NT-Xent would train on nothing, for hours, without a word."""
    if spec.train.batch_size < 2:
        raise SpecError(
            f"--batch-size {spec.train.batch_size}: SimCLR contrasts each image with the other images "
            "of its batch, so a batch needs at least 2 (the default is 256)"
        )
    return []


def build(cfg: SimCLRConfig, data) -> SimCLR:
    return SimCLR(cfg, data)


register(
    Family(
        name="simclr",
        config=SimCLRConfig,
        build=build,
        model=SimCLR,
        title="SimCLR",
        description="SimCLR: two augmented views of each image pulled together against the batch (NT-Xent)",
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
        search=SimCLRSearch,
        check=check,
        key_metric=("test_knn_acc", "test kNN accuracy", "max"),
        tiny={
            "model": {"channels": 8, "proj_hidden": 32, "proj_dim": 16},
            "train": {"batch_size": 64},
        },
    )
)
