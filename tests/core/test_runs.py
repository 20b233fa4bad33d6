"""Run folders: auto-incremented names, newest-run lookup, run-or-checkpoint resolution."""

from __future__ import annotations

import os
import time

import pytest
import torch

from udlcli.core.runs import new_run_dir, newest_run, resolve_checkpoint, write_metrics
from udlcli.errors import CheckpointError


def test_names_increment(tmp_path):
    a = new_run_dir(tmp_path, "ae")
    b = new_run_dir(tmp_path, "ae")
    c = new_run_dir(tmp_path, "ae", name="exp")
    d = new_run_dir(tmp_path, "ae", name="exp")
    assert [p.name for p in (a, b, c, d)] == ["ae", "ae2", "exp", "exp2"]
    assert (a / "weights").is_dir() and (a / "figures").is_dir()


def test_newest_run_and_resolution(tmp_path):
    with pytest.raises(CheckpointError, match="no ae run"):
        newest_run(tmp_path, "ae")
    a, b = new_run_dir(tmp_path, "ae"), new_run_dir(tmp_path, "ae")
    for r in (a, b):
        (r / "weights" / "last.pt").write_bytes(b"x")
    (b / "weights" / "best.pt").write_bytes(b"x")
    old = time.time() - 100
    os.utime(a / "weights", (old, old))
    assert newest_run(tmp_path, "ae") == b
    assert resolve_checkpoint(None, tmp_path, "ae") == (b, b / "weights" / "best.pt")
    assert resolve_checkpoint(a, tmp_path, "ae") == (a, a / "weights" / "last.pt")
    assert resolve_checkpoint(b / "weights" / "last.pt", tmp_path, "ae") == (
        b,
        b / "weights" / "last.pt",
    )
    with pytest.raises(CheckpointError, match="no such run folder"):
        resolve_checkpoint(tmp_path / "nope", tmp_path, "ae")


def test_metrics_csv_has_every_column(tmp_path):
    write_metrics(
        tmp_path,
        [
            {"epoch": 1, "epochs": 2, "train_loss": 0.5},
            {"epoch": 2, "epochs": 2, "train_loss": 0.25, "val_loss": 0.3},
        ],
    )
    lines = (tmp_path / "metrics.csv").read_text().splitlines()
    assert lines[0] == "epoch,train_loss,val_loss"
    assert lines[2] == "2,0.25,0.3"


def test_load_run_checks_the_kind(tmp_path):
    from udlcli.core.loading import load_run
    from udlcli.core.spec import resolve_spec
    from udlcli.tasks import train as engine

    spec = resolve_spec(
        "ae",
        sets=["data.dataset=mnist-sample", "data.limit=500", "train.epochs=1", "model.channels=4"],
    )
    r = engine.train(spec, engine.RunOptions(out=tmp_path))
    loaded = load_run(None, tmp_path, family="ae")
    assert loaded.run_dir == r.run_dir and loaded.kind == "ae" and not loaded.model.training
    assert loaded.model.encode(torch.zeros(2, 1, 28, 28)).shape == (2, 7)
    with pytest.raises(CheckpointError, match="is an AE run, not a VAE run; try udl sample ae"):
        load_run(r.run_dir, tmp_path, family="vae", hint="try udl sample ae")


def test_messages_are_cut_at_a_word_and_name_kinds_properly():
    from udlcli.errors import shorten
    from udlcli.models.registry import a_kind

    text = (
        "Weights only load failed. This file can still be loaded, to do so you have two options, do those steps only if you trust the source. "
        * 2
    )
    cut = shorten(text, 120)
    assert (
        len(cut) <= 122
        and cut.endswith(" …")
        and text.startswith(cut[:-2])
        and text[len(cut) - 2] == " "
    )
    assert [a_kind(k) for k in ("ae", "vae", "dae", "gan", "classifier", "lenet", None)] == [
        "an AE",
        "a VAE",
        "a DAE",
        "a GAN",
        "a classifier",
        "a LeNet",
        "an unknown",
    ]


def test_a_corrupt_checkpoint_is_one_line_ending_in_a_whole_word(tmp_path, runner):
    import torch

    from udlcli.cli.app import app

    run = tmp_path / "runs" / "ae" / "ae"
    (run / "weights").mkdir(parents=True)
    torch.save(
        {"format": "x", "obj": object()}, run / "weights" / "best.pt"
    )  # a pickle weights_only refuses
    r = runner.invoke(app, ["embed", str(run)])
    assert r.exit_code == 1
    line = r.output.strip().splitlines()[-1]
    assert line.startswith("error:") and "not a readable udl checkpoint" in line
    assert line.endswith((")", "…)")), line  # never "...If yo"
