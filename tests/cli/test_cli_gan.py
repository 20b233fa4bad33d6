"""`udl gan` and `udl sample gan` through the CLI: run folder, progress GIF, resume, Ctrl-C, sampling and one-line errors."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml
from PIL import Image

from udlcli.cli.app import app

QUICK = [
    "--dataset",
    "mnist-sample",
    "--limit",
    "128",
    "--batch-size",
    "64",
    "--device",
    "cpu",
    "-q",
]


def _only_error_line(result) -> str:
    out = result.output.strip()
    assert "Traceback" not in out
    lines = [ln for ln in out.splitlines() if ln.strip()]
    assert lines and lines[-1].startswith("error:"), out
    return lines[-1]


@pytest.fixture(scope="module")
def gan_run(tmp_path_factory) -> Path:
    """A tiny real GAN run: 1 epoch, then --resume to 2 epochs, through the CLI."""
    from typer.testing import CliRunner

    runs = tmp_path_factory.mktemp("gan") / "runs"
    runner = CliRunner()
    r = runner.invoke(app, ["gan", *QUICK, "--epochs", "1", "--out", str(runs)])
    assert r.exit_code == 0, r.output
    run = runs / "gan" / "gan"
    r = runner.invoke(app, ["gan", "--resume", str(run), "--epochs", "2", "-q"])
    assert r.exit_code == 0, r.output
    return run


def test_gan_fills_its_run_folder(gan_run, runner):
    for f in (
        "spec.yaml",
        "metrics.csv",
        "summary.json",
        "weights/last.pt",
        "figures/losses.png",
        "figures/final_samples.png",
        "samples/epoch_000.png",
        "samples/epoch_001.png",
        "samples/epoch_002.png",
        "samples/progress.gif",
    ):
        assert (gan_run / f).is_file() and (gan_run / f).stat().st_size > 0, f
    gif = Image.open(gan_run / "samples" / "progress.gif")
    assert gif.n_frames == 3  # epoch 0 (the untrained G), 1, 2: the resumed epoch was appended
    s = json.loads((gan_run / "summary.json").read_text())
    assert s["status"] == "finished" and s["epochs"] == 2 and s["arch"] == "mlp"
    assert (
        set(s["final"]) == {"d_loss", "g_loss", "d_real", "d_fake", "diversity"}
        and "failure_detected" in s
    )
    assert (
        s["params"]["G"] == 64 * 256 + 256 + 256 * 512 + 512 + 512 * 1024 + 1024 + 1024 * 784 + 784
    )
    rows = (gan_run / "metrics.csv").read_text().strip().splitlines()
    assert rows[0].startswith("epoch,d_loss,g_loss,d_real,d_fake,diversity") and len(rows) == 3
    # spec.yaml is a valid --config, and the report's defaults are in it
    r = runner.invoke(app, ["gan", "--config", str(gan_run / "spec.yaml"), "--print-spec"])
    assert r.exit_code == 0, r.output
    spec = yaml.safe_load(r.output)
    assert (
        spec["train"]["lr"] == 2e-4
        and spec["train"]["beta1"] == 0.5
        and spec["data"]["mean"] == spec["data"]["std"] == [0.5]  # per channel
    )
    again = runner.invoke(app, ["gan", "--resume", str(gan_run), "-q"])
    assert again.exit_code != 0 and "already finished 2/2" in _only_error_line(again)


def test_sample_gan_grid_and_individual(gan_run, runner, tmp_path):
    r = runner.invoke(app, ["sample", "gan", str(gan_run), "--n", "16", "--seed", "3"])
    assert r.exit_code == 0, r.output
    assert (gan_run / "samples" / "gan_samples.png").is_file()
    assert json.loads((gan_run / "samples" / "gan_samples.json").read_text())["seed"] == 3
    pngs = tmp_path / "pngs"
    r = runner.invoke(
        app, ["sample", "gan", str(gan_run), "--n", "5", "--individual", "--to", str(pngs)]
    )
    assert r.exit_code == 0, r.output
    files = sorted(pngs.glob("*.png"))
    assert len(files) == 5 and Image.open(files[0]).size == (28, 28)


def test_generate_gan_is_seeded(gan_run):
    from udlcli.core.generate import generate_run as generate_gan

    a, b, c = (
        generate_gan(gan_run, 20, seed=1),
        generate_gan(gan_run, 20, seed=1),
        generate_gan(gan_run, 20, seed=2),
    )
    assert a.shape == (20, 1, 28, 28) and a.dtype == torch.float32 and a.device.type == "cpu"
    assert 0 <= a.min() and a.max() <= 1
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_bad_input_is_one_line(runner, runs, tmp_path, gan_run):
    for args, expect in (
        (["gan", "--lr", "0"], "train.lr"),
        (["gan", "--arch", "unknown"], "model.arch"),
        (["gan", "--resume", str(gan_run), "--lr", "1e-3"], "only --epochs and --device"),
        (["sample", "gan", str(gan_run), "--n", "0"], "--n 0"),
        (["sample", "gan", "--out", str(tmp_path / "empty")], "make one first (udl train gan)"),
    ):
        r = runner.invoke(app, args)
        assert r.exit_code != 0 and expect in _only_error_line(r), (args, r.output)
    assert not runs.exists()


def test_sample_gan_refuses_a_non_gan_run(runner, runs):
    from udlcli.core.spec import resolve_spec
    from udlcli.data import load_dataset
    from udlcli.tasks.train import RunOptions, train

    spec = resolve_spec(
        "ae",
        None,
        {"model.channels": 4, "train.epochs": 1, "data.dataset": "mnist-sample", "data.limit": 100},
    )
    ae = train(spec, RunOptions(out=runs), data=load_dataset("mnist-sample", limit=100)).run_dir
    r = runner.invoke(app, ["sample", "gan", str(ae)])
    assert r.exit_code != 0 and "is an AE run, not a GAN" in _only_error_line(r)
    r = runner.invoke(app, ["gan", "--resume", str(ae)])
    assert r.exit_code != 0 and "not a GAN" in _only_error_line(r)


@pytest.mark.slow
def test_ctrl_c_saves_and_resumes(tmp_path):
    """SIGINT during epoch 2: exit 130 with one line, last.pt at epoch 1, summary says interrupted; --resume finishes."""
    runs = tmp_path / "runs"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    cmd = [sys.executable, "-m", "udlcli", "gan", *QUICK, "--epochs", "50", "--out", str(runs)]
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    deadline = time.time() + 300
    for line in p.stdout:  # wait for the end of epoch 1
        if line.startswith("epoch 1/50") or time.time() > deadline:
            break
    p.send_signal(signal.SIGINT)
    out, err = p.communicate(timeout=120)
    assert p.returncode == 130, (out, err)
    errs = [ln for ln in err.strip().splitlines() if ln.strip()]
    assert (
        len(errs) == 1
        and "interrupted during epoch" in errs[0]
        and "udl train --resume" in errs[0]  # the GAN is a family of udl train (issue 26)
    ), err
    run = runs / "gan" / "gan"
    from udlcli.core.checkpoint import load_checkpoint

    done = load_checkpoint(run / "weights" / "last.pt")["epoch"]
    assert done >= 1
    assert json.loads((run / "summary.json").read_text())["status"] == "interrupted"
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "udlcli",
            "train",  # what the message says
            "--resume",
            str(run),
            "--epochs",
            str(done + 1),
            "-q",
        ],
        capture_output=True,
        text=True,
        env=env,
    )
    assert r.returncode == 0, r.stderr
    assert json.loads((run / "summary.json").read_text())["epochs"] == done + 1
