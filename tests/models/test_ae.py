"""The report's conv AE: layer shapes as the report describes them, the loss contract, the registry."""

from __future__ import annotations

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
