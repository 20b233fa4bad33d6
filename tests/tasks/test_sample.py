"""`udl sample ae`: samples from the fitted latent density, the evaluator's generator, interpolation, and one-line errors."""

from __future__ import annotations

import json

import numpy as np
import torch
from conftest import one_error_line

from udlcli.cli.app import app
from udlcli.core.generate import generate_run as generate_ae
from udlcli.core.latent import encode, run_dataset
from udlcli.core.loading import load_run
from udlcli.models.ae import LatentDensity


def test_sample_grid_gaussian_and_mixture(runner, latent_runs):
    r = runner.invoke(
        app, ["sample", "ae", "--out", str(latent_runs["root"]), "--n", "16", "--seed", "3"]
    )  # newest AE run
    assert r.exit_code == 0, r.output
    out = latent_runs["ae"] / "samples"
    assert (out / "ae_samples.png").stat().st_size > 5_000
    gauss = json.loads((out / "ae_samples.json").read_text())
    assert (
        gauss["n"] == 16
        and gauss["components"] == 1
        and gauss["seed"] == 3
        and gauss["train_codes"] == 2000
    )
    r = runner.invoke(app, ["sample", "ae", str(latent_runs["ae"]), "--gmm", "10", "-q"])
    assert r.exit_code == 0, r.output
    mix = json.loads((out / "ae_samples_gmm10.json").read_text())
    assert mix["n"] == 64 and mix["components"] == 10 and (out / "ae_samples_gmm10.png").is_file()
    # The documented reason for --gmm: digits form clusters, so a mixture explains held-out test codes better.
    assert mix["test_code_loglik"] > gauss["test_code_loglik"]


def test_generate_ae_is_seeded_and_in_range(latent_runs):
    a = generate_ae(latent_runs["ae"], 8, seed=1)
    assert a.shape == (8, 1, 28, 28) and a.dtype == torch.float32 and a.device.type == "cpu"
    assert 0 <= float(a.min()) and float(a.max()) <= 1
    assert torch.equal(a, generate_ae(latent_runs["ae"], 8, seed=1))
    assert not torch.equal(a, generate_ae(latent_runs["ae"], 8, seed=2))


def test_gaussian_has_the_mean_and_covariance_of_the_training_codes(latent_runs):
    loaded = load_run(latent_runs["ae"])
    codes = encode(loaded.model, run_dataset(loaded).train, torch.device("cpu")).astype(
        np.float64
    )  # (2000, 7)
    z = LatentDensity(codes.astype(np.float32), k=1, seed=0).draw(20_000).astype(np.float64)
    std = codes.std(0)
    assert np.all(np.abs(z.mean(0) - codes.mean(0)) < 0.05 * std)
    corr_codes, corr_z = np.corrcoef(codes.T), np.corrcoef(z.T)
    assert (
        np.abs(corr_z - corr_codes).max() < 0.05
    )  # full covariance: the correlations between dimensions are kept
    assert np.allclose(z.std(0), std, rtol=0.05)


def test_interpolate_by_class_and_by_index(runner, latent_runs):
    test_y = run_dataset(load_run(latent_runs["ae"])).test.y.numpy()
    r = runner.invoke(app, ["sample", "ae", str(latent_runs["ae"]), "--interpolate", "3,8", "-q"])
    assert r.exit_code == 0, r.output
    out = latent_runs["ae"] / "samples"
    info = json.loads((out / "ae_interpolate_3_8.json").read_text())
    i, j = info["test_indices"]
    assert (
        test_y[i] == 3 and test_y[j] == 8 and info["labels"] == ["3", "8"] and info["steps"] == 10
    )
    assert (out / "ae_interpolate_3_8.png").stat().st_size > 5_000
    r = runner.invoke(
        app, ["sample", "ae", str(latent_runs["ae"]), "--interpolate-index", "5,7", "-q"]
    )
    assert r.exit_code == 0, r.output
    assert json.loads((out / "ae_interpolate_index_5_7.json").read_text())["test_indices"] == [5, 7]


def test_bad_input_is_one_line_and_writes_nothing(runner, latent_runs):
    vae, ae = str(latent_runs["vae"]), str(latent_runs["ae"])
    cases = {
        "a VAE run": (["ae", vae], "is a VAE run, not an AE run"),
        "class that does not exist": (
            ["ae", ae, "--interpolate", "3,12"],
            "class '12' does not exist in mnist-sample",
        ),
        "one class only": (
            ["ae", ae, "--interpolate", "3"],
            "expected two values separated by a comma",
        ),
        "index outside the test split": (
            ["ae", ae, "--interpolate-index", "0,1000"],
            "indices must be in 0..999",
        ),
        "--gmm with --interpolate": (
            ["ae", ae, "--gmm", "3", "--interpolate", "3,8"],
            "--gmm applies to random samples",
        ),
        "--n 0": (["ae", ae, "--n", "0"], "--n 0: draw between 1 and"),
        "unknown kind": (["pixelcnn"], "choose one of: ae"),
    }
    before = (
        sorted(p.name for p in (latent_runs["ae"] / "samples").glob("*"))
        if (latent_runs["ae"] / "samples").exists()
        else []
    )
    for label, (args, needle) in cases.items():
        r = runner.invoke(app, ["sample", *args])
        assert r.exit_code != 0, label
        assert needle in one_error_line(r), (label, r.output)
    assert not (latent_runs["vae"] / "samples" / "ae_samples.png").exists()
    after = (
        sorted(p.name for p in (latent_runs["ae"] / "samples").glob("*"))
        if (latent_runs["ae"] / "samples").exists()
        else []
    )
    assert after == before


def test_help_of_sample_and_embed_does_not_import_torch():
    import subprocess
    import sys

    code = (
        "import sys\nfrom typer.main import get_command\nfrom udlcli.cli.app import app\n"
        "for args in (['sample', '--help'], ['embed', '--help']):\n"
        "    try:\n        get_command(app).main(args, standalone_mode=False)\n    except SystemExit:\n        pass\n"
        "assert 'torch' not in sys.modules and 'openTSNE' not in sys.modules and 'sklearn' not in sys.modules\nprint('ok')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.strip().endswith("ok"), out.stderr
