"""A small LeNet-style CNN classifier: the feature network behind `udl evaluate` (FID, balance, confidence).

Layout (n = channels, f = features), for a 1x28x28 input in [0, 1]:

    Normalize -> conv(1->n, k5 p2) ReLU MaxPool2    -> n  x14x14
              -> conv(n->2n, k5) ReLU MaxPool2      -> 2n x 5x 5
              -> flatten -> Linear(50n, f) ReLU     -> f            (the feature space)
              -> Dropout (0 by default) -> Linear(f, classes) -> logits

`features(x)` returns the penultimate layer (after its ReLU, as Inception's pool features are for the
usual FID); dropout sits after it, so features are the same in train and eval mode and never random.

With `reject` (the default) the head has one more output, "not an image of the dataset", trained on
synthetic non-images mixed into every training batch (outlier exposure, Hendrycks et al. 2019):
Gaussian and salt-and-pepper noise, blocky noise and flat images. Without it a classifier has to call
everything one of its classes, and uniform noise came out as a confident "Bag" whose features sat
among real Fashion-MNIST items (docs/evaluate.md). The floor row's pixel-wise uniform noise is not
among the training negatives. `data_probs(x)` gives the probabilities of the real classes only.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn

from udlcli.config import MNIST_SHAPE, Strict
from udlcli.core.contracts import Graph
from udlcli.models.conv import Normalize, data_shape, data_stats
from udlcli.models.registry import Family, register
from udlcli.rows import LOCAL, Rows


class LeNetConfig(Strict):
    name: Literal["lenet"] = "lenet"
    channels: int = Field(16, ge=1, le=512)
    """n: channels of the first convolution (the second has 2n)."""
    features: int = Field(128, ge=64, le=4096)
    """Width of the penultimate layer, the feature space of FID and precision/recall (at least 64)."""
    classes: int = Field(10, ge=2, le=1000)
    """Number of classes (10 for MNIST, Fashion-MNIST and KMNIST)."""
    dropout: float = Field(0.0, ge=0.0, lt=1.0)
    """Dropout between the features and the logits (training only). 0: in a few epochs the net underfits rather than overfits."""
    reject: bool = True
    """An extra output for synthetic non-images, trained on `negatives` of every batch (outlier exposure)."""
    negatives: float = Field(0.1, ge=0.0, le=1.0)
    """With reject: synthetic non-images added to each training batch, as a share of its real images."""


def synthetic_negatives(
    n: int, shape: tuple[int, int, int], device: torch.device | str = "cpu"
) -> torch.Tensor:
    """n images (n, C, H, W) in [0, 1] that are no dataset's: a quarter each of Gaussian noise (random mean and std),
    salt-and-pepper noise (random density), blocky noise (4x4 or 7x7 cells) and flat grey images. Drawn from
    torch's global RNG on `device`, which the trainer checkpoints, so a resumed training draws the same ones."""
    c, h, w = shape
    kind = torch.randint(0, 4, (n, 1, 1, 1), device=device)
    mean, std = (
        torch.rand(n, 1, 1, 1, device=device),
        0.1 + 0.4 * torch.rand(n, 1, 1, 1, device=device),
    )
    gauss = (mean + std * torch.randn(n, c, h, w, device=device)).clamp(0, 1)
    density = torch.rand(n, 1, 1, 1, device=device)
    salt = (
        (torch.rand(n, c, h, w, device=device) < density)
        & (torch.rand(n, c, h, w, device=device) < 0.5)
    ).float()
    cells = 4 if torch.rand(()) < 0.5 else 7
    blocks = F.interpolate(
        torch.rand(n, c, cells, cells, device=device), size=(h, w), mode="nearest"
    )
    flat = torch.rand(n, c, 1, 1, device=device).expand(n, c, h, w)
    return torch.where(
        kind == 0, gauss, torch.where(kind == 1, salt, torch.where(kind == 2, blocks, flat))
    )


class LeNet(nn.Module):
    """Classifier over images in [0, 1] (B, C, H, W); `features` gives the (B, f) penultimate layer."""

    def __init__(
        self,
        channels: int = 16,
        features: int = 128,
        classes: int = 10,
        dropout: float = 0.0,
        mean=0.1307,
        std=0.3081,
        reject: bool = False,
        negatives: float = 0.1,
        shape=MNIST_SHAPE,
    ):
        super().__init__()
        n, (c, h, w) = channels, shape
        # conv 5 (padding 2) keeps the size, each pool halves it, conv 5 (no padding) takes 4 off: 28 -> 14 -> 10 -> 5.
        fh, fw = (h // 2 - 4) // 2, (w // 2 - 4) // 2
        self.shape = tuple(shape)
        self.n_features, self.n_classes, self.reject, self.negatives = (
            features,
            classes,
            reject,
            negatives,
        )
        self.normalize = Normalize(mean, std)
        self.body = nn.Sequential(
            nn.Conv2d(c, n, 5, padding=2),
            nn.ReLU(True),
            nn.MaxPool2d(2),  # (B, n, 14, 14)
            nn.Conv2d(n, 2 * n, 5),
            nn.ReLU(True),
            nn.MaxPool2d(2),  # (B, 2n, 5, 5)
            nn.Flatten(),
            nn.Linear(2 * n * fh * fw, features),
            nn.ReLU(True),  # (B, f)
        )
        self.head = nn.Sequential(
            nn.Dropout(dropout), nn.Linear(features, classes + int(reject))
        )  # the last: "not data"

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 1, 28, 28) in [0, 1] -> (B, f) penultimate activations."""
        return self.body(self.normalize(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 1, 28, 28) -> logits (B, classes), or (B, classes + 1) with the reject output last."""
        return self.head(self.features(x))

    # The Classifies contract (udlcli.load's classify). Its features are udl evaluate's yardstick, not
    # an encoder to map or fine-tune, so it does not offer them as Encodes.
    encode = features

    def classify(self, features: torch.Tensor) -> torch.Tensor:
        """Penultimate features (B, f) -> logits of the dataset's classes (B, classes), the reject output left out."""
        return self.head(features)[:, : self.n_classes]

    def graphs(self) -> dict[str, Graph]:
        x = torch.rand(2, *self.shape)
        return {
            "classifier": Graph.of(
                self, "forward", "images -> logits (B, classes[+1 reject])", input=x
            )
        }

    def data_probs(self, features: torch.Tensor) -> torch.Tensor:
        """Penultimate features (B, f) -> probabilities of the dataset's classes (B, classes), in float64.

        With a reject output they sum to 1 - P(not data): low for anything the network does not take for the data.
        """
        return torch.softmax(self.head(features).double(), dim=1)[:, : self.n_classes]

    def loss(self, x: torch.Tensor, y: torch.Tensor, rows: Rows = LOCAL) -> dict[str, torch.Tensor]:
        """The trainer's contract: cross-entropy to minimise, accuracy (on the real images) logged beside it.

        In training mode with reject, synthetic non-images labelled `classes` join the batch; validation
        and test batches are the real images alone, so val_loss picks the epoch that classifies them best.
        """
        logits = self(x)
        acc = (logits[:, : self.n_classes].argmax(1) == y).float().mean()
        if self.training and self.reject and self.negatives > 0:
            k = max(1, round(len(x) * self.negatives))
            neg = synthetic_negatives(k, tuple(x.shape[1:]), x.device)
            logits = torch.cat([logits, self(neg)])
            y = torch.cat([y, torch.full((k,), self.n_classes, dtype=y.dtype, device=y.device)])
        return {"loss": F.cross_entropy(logits, y), "acc": acc}


def build_lenet(cfg: LeNetConfig, data) -> LeNet:
    return LeNet(
        cfg.channels,
        cfg.features,
        cfg.classes,
        cfg.dropout,
        *data_stats(data),
        cfg.reject,
        cfg.negatives,
        data_shape(data),
    )


register(
    Family(
        name="lenet",
        config=LeNetConfig,
        build=build_lenet,
        model=LeNet,
        title="LeNet",
        description="a LeNet-style CNN classifier (udl evaluate's feature network)",
        # 3 epochs of batch 128 with dropout 0.25 reached only 98.90% MNIST test accuracy (underfitting:
        # train accuracy 98.7%); 4 epochs of batch 64 without dropout reached 99.22% (docs/evaluate.md).
        train_defaults={
            "optimizer": "adam",
            "lr": 1e-3,
            "weight_decay": 0.0,
            "batch_size": 64,
            "epochs": 4,
            "scheduler": "cosine",
        },
        tiny={"model": {"channels": 4, "features": 64}},
        exempt={
            "two_ranks": "its synthetic negatives (outlier exposure) are drawn per rank, so 2 ranks "
            "train on other non-images than 1 process does"
        },
    )
)
