"""The denoising AE: the AE's architecture and weights, a loss that corrupts the input, and its registry entry."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from udlcli.config import DataConfig
from udlcli.data.noise import NoiseConfig, add_noise
from udlcli.models import REGISTRY, get
from udlcli.models.ae import ConvAE
from udlcli.models.dae import DAEConfig, DenoisingAE

_DIGITS: list[torch.Tensor] = []


def digits(n: int = 16) -> torch.Tensor:
    """The first n real test digits (n, 1, 28, 28), read once."""
    if not _DIGITS:
        from udlcli.data import load_dataset

        _DIGITS.append(load_dataset("mnist-sample").test.images(torch.arange(16)))
    return _DIGITS[0][:n]


def test_config_is_the_aes_architecture_plus_the_noise():
    cfg = DAEConfig()
    assert (cfg.channels, cfg.latent_dim) == (12, 7)  # the report's best AE
    assert (cfg.noise, cfg.sigma, cfg.p, cfg.salt) == ("mix", 1.0, 0.2, 0.5)
    assert cfg.noise_config() == NoiseConfig()


def test_registered_under_the_denoise_task_with_the_aes_training_defaults():
    entry = get("dae")
    assert entry.task == "denoise" and entry.config is DAEConfig
    ae = REGISTRY["ae"].train_defaults
    assert {k: entry.train_defaults[k] for k in ("optimizer", "lr", "weight_decay")} == {
        k: ae[k] for k in ("optimizer", "lr", "weight_decay")
    }
    # the budget udl denoise was measured at, not the AE's longer one
    assert (
        entry.train_defaults["batch_size"],
        entry.train_defaults["epochs"],
        entry.train_defaults["scheduler"],
    ) == (128, 20, "none")


def test_it_is_the_ae_so_ae_weights_load_into_it():
    torch.manual_seed(0)
    ae = ConvAE(channels=4, latent_dim=3)
    dae = get("dae").build(DAEConfig(channels=4, latent_dim=3), DataConfig())
    assert isinstance(dae, ConvAE)
    dae.load_state_dict(ae.state_dict())  # strict: exactly the same parameters
    x = digits(4)
    assert torch.equal(dae.reconstruct(x), ae.reconstruct(x))  # reconstruct is the clean pass


def test_training_loss_is_mse_of_the_denoised_noisy_input_against_the_clean_one():
    model = DenoisingAE(4, 3, NoiseConfig(noise="saltpepper"))
    x = digits()
    torch.manual_seed(7)
    out = model.loss(x, torch.zeros(len(x)))
    torch.manual_seed(7)
    noisy = add_noise(
        x, NoiseConfig(noise="saltpepper")
    )  # the same global-RNG draws the trainer checkpoints
    assert set(out) == {"loss"}
    assert torch.allclose(out["loss"], F.mse_loss(model.reconstruct(noisy), x))
    assert not torch.allclose(
        out["loss"], F.mse_loss(model.reconstruct(x), x)
    )  # the input really was corrupted


def test_validation_noise_is_fixed_so_val_loss_depends_on_the_weights_only():
    model = DenoisingAE(4, 3, NoiseConfig()).eval()
    x = digits()
    a = model.loss(x, None)["loss"]
    torch.rand(100)  # move the global RNG: eval-mode noise must not follow it
    assert torch.equal(a, model.loss(x, None)["loss"])
    model.train()
    torch.manual_seed(1)
    b = model.loss(x, None)["loss"]
    torch.manual_seed(2)
    assert not torch.equal(b, model.loss(x, None)["loss"])  # training noise is fresh each step


def test_no_noise_makes_it_a_plain_ae():
    torch.manual_seed(0)
    model = DenoisingAE(4, 3, NoiseConfig(noise="none"))
    x = digits()
    assert torch.equal(model.loss(x, None)["loss"], ConvAE.loss(model, x, None)["loss"])


def test_spec_accepts_dae_with_noise_fields_and_rejects_bad_ones():
    from udlcli.core.spec import resolve_spec
    from udlcli.errors import SpecError

    spec = resolve_spec("dae", None, {"model.sigma": 0.5, "model.noise": "gaussian"})
    assert spec.model.name == "dae" and spec.model.sigma == 0.5 and spec.train.batch_size == 128
    with pytest.raises(SpecError, match=r"model\.(dae\.)?p: .*less than or equal to 1"):
        resolve_spec("dae", None, {"model.p": 1.5})
