"""The report's convolutional bodies, sized from the image shape: Normalize, the encoder and decoder, their init.

Layout (n = channels, d = latent_dim) for an image (C, H, W) with 28 <= H, W <= 64:

    encoder  conv(C->n, k4 s2 p1) ReLU                   halves the size
             conv(k3 s2) ReLU, channels 2n, 4n, 8n, ...  each halves it (rounding down), until at most 4x4
             flatten -> Linear(., 64) ReLU               (a head on top maps these 64 features to the code)
    decoder  Linear(d, 64) ReLU Linear(64, .) ReLU, then the exact mirror of the convolutions
             (transposed, back to H x W), ending in a Sigmoid: pixels in [0, 1].

For the report's 1x28x28 that is conv k4 (n x 14x14), conv k3 p1 (2n x 7x7), conv k3 p0 (4n x 3x3),
Linear(36n, 64). The report's text gives padding 1 for the third convolution, but that yields a
4x4 map, not the 3x3 map (and 3*3*4n flattened units) it describes; halving with rounding down
(padding 1 for even sizes, 0 for odd) gives its 3x3. 3x32x32 and 3x64x64 take three and four
convolutions down to 4x4. The AE, VAE, DAE and the classifier's and self-supervised backbones share these.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from udlcli.config import MNIST_SHAPE

HIDDEN = 64  # the report's second linear layer
Shape = tuple[int, int, int]


def conv_plan(
    h: int, w: int
) -> list[tuple[tuple[int, int], tuple[int, int], int, tuple[int, int]]]:
    """The encoder's convolutions for an H x W image: [((in_h, in_w), (out_h, out_w), kernel, (pad_h, pad_w))].

    A k4 s2 p1 convolution, then k3 s2 ones with padding 1 on an even size and 0 on an odd one (each
    halves the size, rounding down) while a side is over 4. All strides are 2.
    """
    plan = [((h, w), (h // 2, w // 2), 4, (1, 1))]
    while max(plan[-1][1]) > 4:
        a = plan[-1][1]
        pad = tuple(1 if s % 2 == 0 else 0 for s in a)
        plan.append((a, (a[0] // 2, a[1] // 2), 3, pad))
    return plan


def trunk_shape(channels: int, shape: Sequence[int]) -> Shape:
    """(channels, h, w) of the last convolution's output: the conv trunk before it is flattened."""
    plan = conv_plan(shape[1], shape[2])
    return channels * 2 ** (len(plan) - 1), *plan[-1][1]


def conv_width(channels: int, shape: Sequence[int] = MNIST_SHAPE) -> int:
    """Width of the flattened conv trunk: 4n x 3 x 3 = 36n for 1x28x28."""
    c, h, w = trunk_shape(channels, shape)
    return c * h * w


class Normalize(nn.Module):
    """Normalize(mean, std) per channel, applied per batch on the device, as the encoder's first step."""

    def __init__(self, mean: float | Sequence[float], std: float | Sequence[float]):
        super().__init__()
        as_vec = lambda v: torch.tensor(
            [float(v)] if isinstance(v, (int, float)) else [float(x) for x in v]
        )  # noqa: E731
        self.register_buffer("mean", as_vec(mean))  # (C,)
        self.register_buffer("std", as_vec(std))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean.view(1, -1, 1, 1)) / self.std.view(1, -1, 1, 1)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # Checkpoints from before colour images hold one number each (shape ()): the same for every channel.
        for key in ("mean", "std"):
            v = state_dict.get(prefix + key)
            if v is not None and v.ndim == 0:
                state_dict[prefix + key] = v.reshape(1).expand_as(getattr(self, key)).clone()
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)


def conv_trunk(channels: int, shape: Sequence[int], norm=None) -> list[nn.Module]:
    """The encoder's convolutions for an image shape, each followed by norm(width) (when given) and ReLU."""
    layers: list[nn.Module] = []
    c_in = shape[0]
    for i, (_, _, k, pad) in enumerate(conv_plan(shape[1], shape[2])):
        c_out = channels * 2**i
        # No bias before a norm: the norm removes it, and Adam would step its zero gradient's rounding noise.
        conv = nn.Conv2d(c_in, c_out, k, stride=2, padding=pad if k == 3 else 1, bias=norm is None)
        layers.append(conv)
        layers += [norm(c_out)] if norm is not None else []
        layers.append(nn.ReLU(True))
        c_in = c_out
    return layers


def autoencoder_graphs(model: nn.Module, codes: str) -> dict:
    """An autoencoder's ONNX graphs (core/contracts.py's Graph): encoder (images -> codes) and decoder."""
    from udlcli.core.contracts import Graph

    x = torch.rand(2, *model.shape)
    with torch.no_grad():
        z = model.encode(x)
    return {
        "encoder": Graph.of(
            model, "encode", f"images (B, C, H, W) in [0, 1] -> {codes} (B, d)", input=x
        ),
        "decoder": Graph.of(
            model, "decode", "codes (B, d) -> images in [0, 1]", clamp=True, input=z
        ),
    }


class ConvEncoder(nn.Module):
    """Image in [0, 1] (B, C, H, W) -> features (B, 64); a head on top maps them to the latent space."""

    def __init__(self, channels: int, mean=0.1307, std=0.3081, shape: Sequence[int] = MNIST_SHAPE):
        super().__init__()
        self.normalize = Normalize(mean, std)
        layers = conv_trunk(channels, shape)
        self.trunk_end = (
            len(layers) + 1
        )  # body[:trunk_end] is the conv trunk, up to and including the Flatten
        self.body = nn.Sequential(
            *layers, nn.Flatten(), nn.Linear(conv_width(channels, shape), HIDDEN), nn.ReLU(True)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(self.normalize(x))

    def conv_features(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) -> the flattened conv trunk (B, conv_width), before the 64-unit layer."""
        return self.body[: self.trunk_end](self.normalize(x))


class ConvDecoder(nn.Module):
    """Latent (B, d) -> image in [0, 1] (B, C, H, W): the encoder's exact mirror."""

    def __init__(self, channels: int, latent_dim: int, shape: Sequence[int] = MNIST_SHAPE):
        super().__init__()
        plan = conv_plan(shape[1], shape[2])
        top = trunk_shape(channels, shape)
        layers: list[nn.Module] = [
            nn.Linear(latent_dim, HIDDEN),
            nn.ReLU(True),
            nn.Linear(HIDDEN, conv_width(channels, shape)),
            nn.ReLU(True),
            nn.Unflatten(1, top),
        ]
        for i in reversed(range(len(plan))):
            (a, b, k, pad) = plan[i]
            pad = pad if k == 3 else (1, 1)
            # output_padding makes each transposed convolution land exactly on the encoder's input size.
            extra = tuple(a[j] - ((b[j] - 1) * 2 - 2 * pad[j] + k) for j in range(2))
            c_in, c_out = channels * 2**i, (channels * 2 ** (i - 1) if i else shape[0])
            layers += [
                nn.ConvTranspose2d(c_in, c_out, k, stride=2, padding=pad, output_padding=extra)
            ]
            layers += [nn.ReLU(True)] if i else [nn.Sigmoid()]
        self.body = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.body(z)


def he_init(module: nn.Module) -> None:
    """He (Kaiming) normal init for every conv and linear layer, zero biases.

    With PyTorch's default init the signal shrinks through the 10 ReLU layers and training from
    some seeds sits for ~2 epochs on a plateau where every output is the mean digit (MSE 0.112);
    He init keeps activations at unit scale and left the plateau in the first epoch for every seed
    we tried (docs/models.md).
    """
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
            nn.init.zeros_(m.bias)


def data_shape(data) -> Shape:
    """The (C, H, W) a data section describes (1x28x28 until the data is loaded)."""
    return tuple(getattr(data, "shape", None) or MNIST_SHAPE)


def data_stats(data) -> tuple:
    """(mean, std) of a data section, the report's MNIST values until they are computed."""
    mean, std = getattr(data, "mean", None), getattr(data, "std", None)
    return (0.1307 if mean is None else mean), (0.3081 if std is None else std)


def conv_layers(channels: int, latent_dim: int, shape: Sequence[int]) -> dict[str, int]:
    """The feature layers of a conv encoder with a code head, and their widths (the code first: the default)."""
    return {"latent": latent_dim, "hidden": HIDDEN, "conv": conv_width(channels, shape)}


class ConvFeatures(nn.Module):
    """Images (B, C, H, W) in [0, 1] -> one layer of a conv encoder, sharing its weights:
    latent, the code head's output (B, d); hidden, the 64-unit layer (B, 64); conv, the flattened trunk (B, 36n at 28x28)."""

    def __init__(self, encoder: ConvEncoder, to_latent: nn.Module, layer: str = "latent"):
        super().__init__()
        self.encoder, self.to_latent, self.layer = encoder, to_latent, layer

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.layer == "conv":
            return self.encoder.conv_features(x)
        h = self.encoder(x)
        return h if self.layer == "hidden" else self.to_latent(h)
