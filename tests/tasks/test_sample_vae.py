"""`udl sample vae`: the latent grid, prior samples, interpolation, the evaluator's generator, and one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy.stats import norm
from typer.testing import CliRunner

from udlcli.cli.app import app
from udlcli.core.generate import generate_run as generate_vae
from udlcli.tasks.sample.grid import grid_values

TINY = [
    "--dataset",
    "mnist-sample",
    "--limit",
    "300",
    "--batch-size",
    "64",
    "--channels",
    "4",
    "--epochs",
    "1",
    "-q",
]


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> dict[str, Path]:
    """One tiny real VAE (latent 3) and one tiny AE, trained once for every test here."""
    root = tmp_path_factory.mktemp("runs")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("XDG_CACHE_HOME", str(root / "cache"))
        runner = CliRunner()
        for args in (["vae", "--latent-dim", "3"], ["ae"]):
            r = runner.invoke(app, ["train", *args, *TINY, "--out", str(root)])
            assert r.exit_code == 0, r.output
    return {"root": root, "vae": root / "vae" / "vae", "ae": root / "ae" / "ae"}


def test_grid_values_are_normal_quantiles_or_an_even_range():
    v = grid_values(15)
    assert np.allclose(v, norm.ppf(np.linspace(0.05, 0.95, 15)))
    assert v[7] == pytest.approx(0.0, abs=1e-12) and np.all(np.diff(v) > 0)
    assert np.allclose(grid_values(5, 2.5), [-2.5, -1.25, 0, 1.25, 2.5])


def test_grid_writes_the_figure_with_its_values(runner, trained):
    r = runner.invoke(
        app, ["sample", "vae", "--grid", "--out", str(trained["root"])]
    )  # the newest VAE run
    assert r.exit_code == 0, r.output
    out = trained["vae"] / "samples"
    info = json.loads((out / "vae_grid.json").read_text())
    assert info["dims"] == [0, 1] and info["anchor"] is None and len(info["values"]) == 15
    first = (out / "vae_grid.png").read_bytes()
    r = runner.invoke(
        app,
        [
            "sample",
            "vae",
            str(trained["vae"]),
            "--grid",
            "--size",
            "5",
            "--dims",
            "2,0",
            "--range",
            "2.5",
            "--anchor",
            "3",
        ],
    )
    assert r.exit_code == 0, r.output
    info = json.loads((out / "vae_grid.json").read_text())
    assert (
        info["dims"] == [2, 0]
        and info["anchor"] == 3
        and info["values"] == [-2.5, -1.25, 0.0, 1.25, 2.5]
    )
    assert (out / "vae_grid.png").read_bytes() != first


def test_prior_samples_and_interpolation(runner, trained):
    r = runner.invoke(app, ["sample", "vae", str(trained["vae"]), "--n", "16", "--seed", "3"])
    assert r.exit_code == 0, r.output
    assert json.loads((trained["vae"] / "samples" / "vae_samples.json").read_text())["n"] == 16
    r = runner.invoke(app, ["sample", "vae", str(trained["vae"]), "--interpolate", "1,7"])
    assert r.exit_code == 0, r.output
    assert (trained["vae"] / "samples" / "vae_interpolate_1_7.png").stat().st_size > 0


def test_generate_vae_is_seeded_prior_samples_in_unit_range(trained):
    a = generate_vae(trained["vae"], 50, seed=0)
    assert a.shape == (50, 1, 28, 28) and a.dtype == torch.float32 and a.device.type == "cpu"
    assert float(a.min()) >= 0 and float(a.max()) <= 1
    assert torch.equal(a, generate_vae(trained["vae"], 50, seed=0))
    assert not torch.equal(a, generate_vae(trained["vae"], 50, seed=1))
    assert float((a - a.mean(0)).abs().mean()) > 1e-3  # different z give different images


def test_bad_sample_options_are_one_line_errors_that_write_nothing(runner, trained, tmp_path):
    vae = str(trained["vae"])
    cases = [
        (["--grid", "--dims", "0,3"], "dimension 3 is out of range"),
        (["--grid", "--dims", "1,1"], "must differ"),
        (["--grid", "--size", "0"], "--size 0"),
        (["--grid", "--range", "0"], "--range 0"),
        (["--grid", "--anchor", "100000"], "--anchor 100000"),
        (["--dims", "0,1"], "--dims applies to --grid only"),
        (["--grid", "--n", "4"], "drop --n"),
        (["--gmm", "2"], "--gmm does not apply to udl sample vae"),
    ]
    for extra, needle in cases:
        r = runner.invoke(app, ["sample", "vae", vae, *extra])
        lines = [ln for ln in r.output.strip().splitlines() if ln.strip()]
        assert r.exit_code != 0 and "Traceback" not in r.output, (extra, r.output)
        assert lines[-1].startswith("error:") and needle in lines[-1], (extra, r.output)
    # --grid takes no value: "--grid 0" reads 0 as the run and says how to set the size
    r = runner.invoke(app, ["sample", "vae", "--grid", "0", "--out", str(trained["root"])])
    assert r.exit_code != 0 and "--size K" in r.output
    r = runner.invoke(app, ["sample", "vae", str(trained["ae"])])
    assert r.exit_code != 0 and "udl sample ae" in r.output.strip().splitlines()[-1]
    assert not (trained["ae"] / "samples").exists()
