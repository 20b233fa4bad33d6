"""Image backbones for the self-supervised families, sized from the image shape: the report's conv encoder and a CIFAR-style ResNet-18.

    conv     the report's encoder layout (udlcli/models/conv.py's plan: k4 s2, then k3 s2 convolutions
             n, 2n, 4n, ... down to at most 4x4), each followed by GroupNorm and ReLU, flattened:
             features (B, 4n x 3 x 3) at 28x28 (1,152 for n = 32)
    resnet   ResNet-18's layout for small images (He et al.; the CIFAR variant): a 3x3 stem of
             width w, no max-pool, four stages of two basic blocks at w, 2w, 4w, 8w (strides 1, 2, 2, 2),
             global average pooling: features (B, 8w) (512 for w = 64, ResNet-18 itself)

Normalisation is GroupNorm, not BatchNorm: batch statistics would differ between one process and
several ranks (and SyncBatchNorm needs GPUs), and udl trains the same on both.
"""

from __future__ import annotations

from typing import Literal

import torch
from pydantic import Field
from torch import nn

from udlcli.config import Strict
from udlcli.models.conv import Normalize, conv_trunk, trunk_shape


class BackboneConfig(Strict):
    backbone: Literal["conv", "resnet"] = "conv"
    """conv: the report's encoder (with GroupNorm); resnet: a CIFAR-style ResNet-18."""
    channels: int = Field(32, ge=8, le=512, multiple_of=8)
    """conv: n, channels of the first convolution (multiples of 8)."""
    width: int = Field(32, ge=8, le=256, multiple_of=8)
    """resnet: w, channels of the first stage (64 is ResNet-18's; multiples of 8)."""


def norm(c: int) -> nn.GroupNorm:
    return nn.GroupNorm(min(8, c), c)


class ConvBackbone(nn.Module):
    """Images in [0, 1] (B, C, H, W) -> the report's conv trunk, flattened (B, conv width)."""

    def __init__(self, channels: int, mean, std, shape):
        super().__init__()
        self.normalize = Normalize(mean, std)
        self.body = nn.Sequential(*conv_trunk(channels, shape, norm), nn.Flatten())
        c, h, w = trunk_shape(channels, shape)
        self.dim = c * h * w

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(self.normalize(x))


class BasicBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int, stride: int):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False),
            norm(c_out),
            nn.ReLU(True),
            nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False),
            norm(c_out),
        )
        self.skip = (
            nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, bias=False), norm(c_out))
            if stride != 1 or c_in != c_out
            else nn.Identity()
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.body(x) + self.skip(x))


class ResNet(nn.Module):
    """Images in [0, 1] (B, C, H, W) -> ResNet-18 (CIFAR stem) pooled features (B, 8w)."""

    def __init__(self, width: int, mean, std, shape):
        super().__init__()
        self.normalize = Normalize(mean, std)
        w = width
        layers: list[nn.Module] = [
            nn.Conv2d(shape[0], w, 3, 1, 1, bias=False),
            norm(w),
            nn.ReLU(True),
        ]
        c = w
        for i, stride in enumerate((1, 2, 2, 2)):
            out = w * 2**i
            layers += [BasicBlock(c, out, stride), BasicBlock(out, out, 1)]
            c = out
        self.body = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.dim = c

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(self.normalize(x))


def build_backbone(cfg: BackboneConfig, mean, std, shape) -> nn.Module:
    if cfg.backbone == "resnet":
        return ResNet(cfg.width, mean, std, shape)
    return ConvBackbone(cfg.channels, mean, std, shape)


def mlp(d_in: int, hidden: int, d_out: int, batch_norm: bool = False) -> nn.Sequential:
    """The projection (and predictor) heads: Linear, LayerNorm (or BatchNorm), ReLU, Linear.

    LayerNorm needs no batch statistics (SimCLR's negatives already compare the images of a
    batch); BYOL has no negatives, and its heads need BatchNorm's batch statistics not to
    collapse to one output for every image (Grill et al. 2020 use BatchNorm there too)."""
    norm = nn.BatchNorm1d(hidden) if batch_norm else nn.LayerNorm(hidden)
    return nn.Sequential(nn.Linear(d_in, hidden), norm, nn.ReLU(True), nn.Linear(hidden, d_out))
