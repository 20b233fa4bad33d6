"""The report's conv AE: layer shapes as the report describes them, the loss contract, the registry."""

from __future__ import annotations

import pytest
import torch

from udlcli.models import REGISTRY, get
from udlcli.models.ae import AEConfig, ConvAE


def test_encoder_reaches_the_reports_3x3_map():
    m = ConvAE(channels=12, latent_dim=7)
    x = torch.rand(5, 1, 28, 28)
    feats = m.encoder.body[:6](m.encoder.normalize(x))  # the three convolutions with their ReLUs
    assert feats.shape == (5, 48, 3, 3)  # 4n channels on a 3x3 map: 3*3*4*n flattened units
    assert m.encode(x).shape == (5, 7)


def test_decoder_outputs_pixels_in_unit_range():
    m = ConvAE(channels=4, latent_dim=2)
    out = m.decode(torch.randn(3, 2) * 10)
    assert out.shape == (3, 1, 28, 28)
    assert out.min() >= 0 and out.max() <= 1


def test_loss_contract_is_mse_against_the_clean_image():
    torch.manual_seed(0)
    m = ConvAE()
    x = torch.rand(8, 1, 28, 28)
    out = m.loss(x, torch.zeros(8, dtype=torch.long))
    assert set(out) == {"loss"}
    assert torch.allclose(out["loss"], ((m(x) - x) ** 2).mean())


def test_encoder_normalises_its_input():
    m = ConvAE()
    assert torch.allclose(
        m.encoder.normalize(torch.full((1, 1, 2, 2), 0.1307)), torch.zeros(1, 1, 2, 2), atol=1e-6
    )


def test_registry_maps_name_to_config_and_builder():
    entry = get("ae")
    assert entry.config is AEConfig and "ae" in REGISTRY
    from udlcli.config import DataConfig

    model = entry.build(AEConfig(channels=6, latent_dim=3), DataConfig())
    assert isinstance(model, ConvAE) and model.latent_dim == 3


def test_the_reports_mnist_ae_is_pinned_at_83184_parameters():
    m = ConvAE(channels=12, latent_dim=7)
    assert sum(p.numel() for p in m.parameters()) == 83_184
    convs = [(k, tuple(v.shape)) for k, v in m.state_dict().items() if v.ndim == 4]
    assert convs[:3] == [
        ("encoder.body.0.weight", (12, 1, 4, 4)),
        ("encoder.body.2.weight", (24, 12, 3, 3)),
        ("encoder.body.4.weight", (48, 24, 3, 3)),
    ]


@pytest.mark.parametrize(
    "shape,trunk",
    [
        ((1, 28, 28), (48, 3, 3)),
        ((3, 32, 32), (48, 4, 4)),
        ((3, 64, 64), (96, 4, 4)),
        ((3, 48, 48), (96, 3, 3)),
        ((1, 40, 56), (96, 2, 3)),
    ],
)
def test_any_shape_goes_down_to_at_most_4x4_and_back(shape, trunk):
    from udlcli.models.ae import trunk_shape

    assert trunk_shape(12, shape) == trunk
    m = ConvAE(channels=12, latent_dim=7, shape=shape, mean=[0.5] * shape[0], std=[0.25] * shape[0])
    x = torch.rand(2, *shape)
    assert m.encode(x).shape == (2, 7)
    assert m(x).shape == (2, *shape)  # the decoder mirrors the encoder exactly back to H x W
