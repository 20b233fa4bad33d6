"""--precision and --compile on the CPU, on real digits: they train to the float32 eager numbers, and fail in one line."""

from __future__ import annotations

import pytest
import torch
from conftest import one_error_line

from udlcli.cli.app import app
from udlcli.core.checkpoint import load_checkpoint
from udlcli.core.spec import resolve_spec
from udlcli.tasks import train as engine

TINY = ["data.dataset=mnist-sample", "data.limit=600", "train.batch_size=100", "model.channels=4"]


def _train(runs, name, *sets):
    spec = resolve_spec("ae", sets=[*TINY, "train.epochs=2", "train.scheduler=none", *sets])
    return engine.train(spec, engine.RunOptions(out=runs, name=name))


@pytest.mark.parametrize("precision", ["bf16", "16-mixed"])
def test_mixed_precision_trains_to_about_the_float32_loss(runs, precision):
    ref = _train(runs, "fp32")
    amp = _train(runs, precision.replace("-", ""), f"train.precision={precision}")
    a, b = ref.summary["test"]["loss"], amp.summary["test"]["loss"]
    assert b == pytest.approx(a, rel=0.05)  # low-precision arithmetic, same training
    assert a != b  # and it really ran in another precision
    ck = load_checkpoint(amp.run_dir / "weights" / "last.pt")
    assert all(v.dtype == torch.float32 for v in ck["model"].values() if v.is_floating_point())
    assert ("scaler" in ck) == (precision == "16-mixed")  # the loss scale resumes with the run
    assert ck["spec"]["train"]["precision"] == precision


def test_compile_gives_the_eager_numbers(runs):
    eager = _train(runs, "eager", "train.epochs=1")
    comp = _train(runs, "compiled", "train.epochs=1", "train.compile=true")
    assert comp.summary["test"]["loss"] == pytest.approx(eager.summary["test"]["loss"], rel=1e-4)
    w = load_checkpoint(comp.run_dir / "weights" / "last.pt")["model"]
    assert not any(k.startswith("_orig_mod") for k in w)  # checkpoints load into a plain model


def test_compile_unavailable_and_a_bad_precision_are_one_line(runner, runs, monkeypatch):
    def broken(*a, **k):
        raise RuntimeError("Compiler: cc is not found")

    monkeypatch.setattr(torch, "compile", broken)
    base = ["train", "ae", "--dataset", "mnist-sample", "--limit", "200", "--out", str(runs), "-q"]
    r = runner.invoke(app, [*base, "--compile"])
    assert r.exit_code != 0
    assert "--compile" in one_error_line(r) and "without --compile" in one_error_line(r)
    r = runner.invoke(app, [*base, "--precision", "8"])
    assert r.exit_code != 0 and "precision" in one_error_line(r)
    assert not runs.exists()  # nothing written
