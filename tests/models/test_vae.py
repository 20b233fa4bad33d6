"""The conv VAE: the AE's bodies reused, the ELBO terms against their definitions, safe variances, and `udl train vae`."""

from __future__ import annotations

import csv
import json

import torch
import torch.nn.functional as F
from torch.distributions import Normal, kl_divergence

from udlcli.cli.app import app
from udlcli.config import DataConfig
from udlcli.models import get
from udlcli.models.ae import ConvDecoder, ConvEncoder
from udlcli.models.vae import LOGVAR_MAX, LOGVAR_MIN, ConvVAE, VAEConfig

QUICK = [
    "--dataset",
    "mnist-sample",
    "--limit",
    "600",
    "--batch-size",
    "64",
    "--channels",
    "4",
    "-q",
]


def _batch(n: int = 16) -> torch.Tensor:
    g = torch.Generator().manual_seed(1)
    return (torch.rand(n, 1, 28, 28, generator=g) > 0.7).float()  # binary-ish images in [0, 1]


def test_reuses_the_ae_encoder_and_decoder_bodies():
    m = get("vae").build(VAEConfig(channels=6, latent_dim=3), DataConfig())
    assert isinstance(m, ConvVAE) and get("vae").task == "vae"
    assert type(m.encoder) is ConvEncoder and type(m.decoder) is ConvDecoder
    x = _batch(5)
    mu, logvar = m.posterior(x)
    assert mu.shape == logvar.shape == (5, 3)
    assert m.decode(torch.randn(5, 3) * 10).shape == (5, 1, 28, 28)


def test_loss_terms_match_their_definitions():
    torch.manual_seed(0)
    m, x, y = ConvVAE(channels=4, latent_dim=5), _batch(), torch.zeros(16, dtype=torch.long)
    for recon in ("bce", "mse"):
        m.recon = recon
        torch.manual_seed(7)
        out = m.loss(x, y)
        torch.manual_seed(7)  # the same xi as inside loss()
        mu, logvar = m.posterior(x)
        z = mu + (0.5 * logvar).exp() * torch.randn_like(mu)
        xr = m.decode(z)
        per_image = (
            F.binary_cross_entropy(xr, x, reduction="sum")
            if recon == "bce"
            else ((xr - x) ** 2).sum()
        )
        kl = kl_divergence(Normal(mu, (0.5 * logvar).exp()), Normal(0.0, 1.0)).sum() / len(x)
        assert set(out) == {"loss", "recon", "kl"}
        assert torch.allclose(
            out["recon"], per_image / len(x), rtol=1e-4
        )  # summed over pixels, averaged over images
        assert torch.allclose(out["kl"], kl, rtol=1e-4)
        assert torch.allclose(out["loss"], out["recon"] + out["kl"])  # beta = 1: the negative ELBO


def test_beta_weights_the_kl_and_the_elbo_is_still_reported():
    torch.manual_seed(0)
    m = ConvVAE(channels=4, latent_dim=3, beta=4.0)
    out = m.loss(_batch(), torch.zeros(16, dtype=torch.long))
    assert torch.allclose(out["loss"], out["recon"] + 4.0 * out["kl"])
    assert torch.allclose(out["nelbo"], out["recon"] + out["kl"])


def test_extreme_log_variances_are_clamped_and_the_loss_stays_finite():
    m = ConvVAE(channels=4, latent_dim=3)
    x, y = _batch(), torch.zeros(16, dtype=torch.long)
    for bias in (1e4, -1e4):
        torch.nn.init.constant_(m.to_logvar.bias, bias)
        logvar = m.posterior(x)[1].detach()
        assert float(logvar.min()) >= LOGVAR_MIN and float(logvar.max()) <= LOGVAR_MAX
        out = m.loss(x, y)
        assert all(torch.isfinite(v) for v in out.values())
        out["loss"].backward()
        assert all(torch.isfinite(p.grad).all() for p in m.parameters() if p.grad is not None)
        m.zero_grad()


def test_encode_is_the_deterministic_mean_and_reconstruct_decodes_it():
    torch.manual_seed(0)
    m = ConvVAE(channels=4, latent_dim=3).train()
    x = _batch(4)
    assert torch.equal(m.encode(x), m.encode(x))
    assert torch.equal(m.encode(x), m.posterior(x)[0])
    assert torch.allclose(m.reconstruct(x), m.decode(m.posterior(x)[0]))


def test_train_vae_logs_all_three_terms_and_learns(runner, runs):
    r = runner.invoke(
        app,
        [
            "train",
            "vae",
            *QUICK,
            "--epochs",
            "2",
            "--latent-dim",
            "2",
            "--recon",
            "mse",
            "--out",
            str(runs),
        ],
    )
    assert r.exit_code == 0, r.output
    run = runs / "vae" / "vae"
    rows = list(csv.DictReader(open(run / "metrics.csv")))
    for split in ("train", "val"):
        for term in ("loss", "recon", "kl"):
            assert f"{split}_{term}" in rows[0], rows[0].keys()
        # the loss is the negative ELBO: recon + kl, every epoch
        for row in rows:
            assert abs(
                float(row[f"{split}_loss"])
                - float(row[f"{split}_recon"])
                - float(row[f"{split}_kl"])
            ) < 1e-3 * float(row[f"{split}_loss"])
    assert float(rows[1]["val_loss"]) < float(rows[0]["val_loss"])  # it learns
    s = json.loads((run / "summary.json").read_text())
    assert set(s["test"]) == {"loss", "recon", "kl"} and s["test"]["kl"] > 0
    assert 0 < s["test_mse"] < 0.3
    spec = (run / "spec.yaml").read_text()
    assert "name: vae" in spec and "recon: mse" in spec and "latent_dim: 2" in spec
    for f in (
        "loss.png",
        "reconstructions.png",
        "reconstruction_progress.png",
        "prior_samples_progress.png",
    ):
        assert (run / "figures" / f).stat().st_size > 0, f


def test_bad_vae_options_are_one_line_errors(runner, runs):
    for args, needle in (
        (["--beta", "-1"], "model.beta"),
        (["--recon", "l1"], "model.recon"),
    ):
        r = runner.invoke(app, ["train", "vae", *QUICK, *args, "--out", str(runs)])
        assert r.exit_code == 2, r.output
        lines = [ln for ln in r.output.strip().splitlines() if ln.strip()]
        assert (
            "Traceback" not in r.output and lines[-1].startswith("error:") and needle in lines[-1]
        ), r.output
    assert not runs.exists()
