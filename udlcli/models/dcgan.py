"""`udl gan --arch dcgan`: convolutional GANs, a small one for 28-pixel images and DCGAN (Radford et al., 2016) for 32 and 64.

    28x28   G: z -> Linear -> 2n x 7x7 -> ConvT -> n x 14x14 -> ConvT -> C x 28x28, Tanh
            D: the mirror, strided convolutions, batch norm, LeakyReLU(0.2), Linear -> logit
    32x32   G: z -> ConvT(k4, 1) 4n x 4x4 -> 2n x 8x8 -> n x 16x16 -> C x 32x32 (k4 s2 p1, batch norm, ReLU; Tanh)
    64x64   G: z -> 8n x 4x4 -> 4n x 8x8 -> 2n x 16x16 -> n x 32x32 -> C x 64x64 (the paper's generator)
            D (32, 64): the mirror: k4 s2 p1 convolutions (no batch norm on the first), LeakyReLU(0.2),
            then a k4 convolution of the 4x4 map to one logit

n = `model.channels` (64). Weights start from the paper's N(0, 0.02) (batch-norm scales N(1, 0.02)).
"""

from __future__ import annotations

import torch
from torch import nn

from udlcli.errors import SpecError

SIZES = (28, 32, 64)
"""The image sizes --arch dcgan builds networks for."""


class ConvGenerator(nn.Module):
    """28x28: z (B, d) -> Linear -> (B, 2n, 7, 7) -> ConvT -> (B, n, 14, 14) -> ConvT -> (B, C, 28, 28) Tanh."""

    def __init__(self, noise_dim: int = 64, channels: int = 64, image_channels: int = 1):
        super().__init__()
        n = channels
        self.noise_dim = noise_dim
        self.body = nn.Sequential(
            nn.Linear(noise_dim, 2 * n * 7 * 7, bias=False),
            nn.BatchNorm1d(2 * n * 7 * 7),
            nn.ReLU(True),
            nn.Unflatten(1, (2 * n, 7, 7)),
            nn.ConvTranspose2d(2 * n, n, 4, stride=2, padding=1, bias=False),
            nn.BatchNorm2d(n),
            nn.ReLU(True),  # (B, n, 14, 14)
            nn.ConvTranspose2d(n, image_channels, 4, stride=2, padding=1),
            nn.Tanh(),  # (B, C, 28, 28)
        )

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.body(z)


class ConvDiscriminator(nn.Module):
    """28x28: (B, C, 28, 28) -> conv (B, n, 14, 14) -> conv (B, 2n, 7, 7) -> Linear -> logits (B,)."""

    def __init__(self, channels: int = 64, image_channels: int = 1):
        super().__init__()
        n = channels
        self.body = nn.Sequential(
            nn.Conv2d(image_channels, n, 4, stride=2, padding=1),
            nn.LeakyReLU(0.2, True),  # (B, n, 14, 14)
            nn.Conv2d(n, 2 * n, 4, stride=2, padding=1, bias=False),
            nn.BatchNorm2d(2 * n),
            nn.LeakyReLU(0.2, True),  # (B, 2n, 7, 7)
            nn.Flatten(),
            nn.Linear(2 * n * 7 * 7, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x).squeeze(1)


class DCGenerator(nn.Module):
    """32 or 64 pixels: z (B, d) -> (B, d, 1, 1) -> ConvT to 4x4, then doubling ConvTs to (B, C, size, size), Tanh."""

    def __init__(self, noise_dim: int, channels: int, image_channels: int, size: int):
        super().__init__()
        self.noise_dim = noise_dim
        steps = {32: 3, 64: 4}[size]  # doublings from 4x4
        widths = [channels * 2 ** (steps - 1 - i) for i in range(steps)]  # 64: 8n, 4n, 2n, n
        layers: list[nn.Module] = [
            nn.Unflatten(1, (noise_dim, 1, 1)),
            nn.ConvTranspose2d(noise_dim, widths[0], 4, 1, 0, bias=False),
            nn.BatchNorm2d(widths[0]),
            nn.ReLU(True),
        ]
        for a, b in zip(widths, widths[1:]):
            layers += [
                nn.ConvTranspose2d(a, b, 4, 2, 1, bias=False),
                nn.BatchNorm2d(b),
                nn.ReLU(True),
            ]
        layers += [nn.ConvTranspose2d(widths[-1], image_channels, 4, 2, 1, bias=False), nn.Tanh()]
        self.body = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.body(z)


class DCDiscriminator(nn.Module):
    """32 or 64 pixels: (B, C, size, size) -> halving convolutions to (B, ., 4, 4) -> a k4 convolution -> logits (B,)."""

    def __init__(self, channels: int, image_channels: int, size: int):
        super().__init__()
        steps = {32: 3, 64: 4}[size]
        widths = [channels * 2**i for i in range(steps)]  # 64: n, 2n, 4n, 8n
        layers: list[nn.Module] = [
            nn.Conv2d(image_channels, widths[0], 4, 2, 1, bias=False),
            nn.LeakyReLU(0.2, True),
        ]
        for a, b in zip(widths, widths[1:]):
            layers += [
                nn.Conv2d(a, b, 4, 2, 1, bias=False),
                nn.BatchNorm2d(b),
                nn.LeakyReLU(0.2, True),
            ]
        layers += [nn.Conv2d(widths[-1], 1, 4, 1, 0, bias=False), nn.Flatten()]
        self.body = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x).squeeze(1)


def dcgan_init(module: nn.Module) -> None:
    """The DCGAN paper's init: N(0, 0.02) weights, N(1, 0.02) batch-norm scales; it keeps early D and G balanced."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            nn.init.normal_(m.weight, 0.0, 0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
            nn.init.normal_(m.weight, 1.0, 0.02)
            nn.init.zeros_(m.bias)


def check_size(shape) -> None:
    """A one-line SpecError for an image shape DCGAN has no network for (before any run folder exists)."""
    _, h, w = shape
    if h != w or h not in SIZES:
        sizes = ", ".join(map(str, SIZES[:-1])) + f" or {SIZES[-1]}"  # "28, 32 or 64"
        raise SpecError(
            f"--arch dcgan builds networks for {sizes}-pixel square images, not {h}x{w}; "
            f"give --image-size {sizes}, or --arch mlp"
        )


def build_dcgan(noise_dim: int, channels: int, shape) -> tuple[nn.Module, nn.Module]:
    """(G, D) for a (C, size, size) shape; a size DCGAN is not built for is a one-line SpecError."""
    check_size(shape)
    c, h, w = shape
    if h == 28:
        g, d = ConvGenerator(noise_dim, channels, c), ConvDiscriminator(channels, c)
    else:
        g, d = DCGenerator(noise_dim, channels, c, h), DCDiscriminator(channels, c, h)
    dcgan_init(g)
    dcgan_init(d)
    return g, d
