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


# ---------------------------------------------------------------- --precision auto


class _Cfg:
    def __init__(self, precision):
        self.precision, self.compile = precision, False


def _models():
    """The model classes of the AE, flow, GAN and SimCLR families, as the registry has them."""
    from udlcli.models import get

    return tuple(get(name).model for name in ("ae", "flow", "gan", "simclr"))


@pytest.mark.parametrize("units", ["AMX", "AVX512-BF16", None])
def test_auto_chooses_bf16_where_the_cpu_has_units_and_the_model_gains(monkeypatch, units):
    from udlcli.core import fastpath

    AE, Flow, GAN, SimCLR = _models()
    monkeypatch.setattr(fastpath, "cpu_bf16_units", lambda: units)
    cpu = torch.device("cpu")
    for model, gains in ((Flow, True), (SimCLR, True), (AE, False), (GAN, False)):
        precision, why = fastpath.choose(_Cfg("auto"), cpu, model)
        assert precision == ("bf16" if units and gains else "32"), (model, units, why)
        assert why.startswith("auto")
        if units and gains:
            assert units in why
    assert "no bfloat16 units" in fastpath.choose(_Cfg("auto"), cpu, Flow)[1] or units
    for forced in ("32", "bf16", "16-mixed"):  # asked for: never changed
        assert fastpath.choose(_Cfg(forced), cpu, Flow) == (forced, "asked for (--precision)")


def test_auto_on_a_cuda_device_follows_its_bf16_support(monkeypatch):
    from udlcli.core import fastpath

    AE, Flow, GAN, SimCLR = _models()
    cuda = torch.device("cuda")
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda *a: "A GPU")
    for supported, want in ((True, "bf16"), (False, "32")):
        monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda s=supported: s)
        precision, why = fastpath.choose(_Cfg("auto"), cuda, Flow)
        assert precision == want and ("A GPU" in why) == supported, why
    assert fastpath.choose(_Cfg("auto"), torch.device("mps"), Flow)[0] == "32"


def test_the_cpu_units_are_read_from_torchs_capabilities(monkeypatch):
    from udlcli.core import fastpath

    for caps, want in (
        ({"amx_bf16": True, "avx512_bf16": True}, "AMX"),
        ({"amx_bf16": False, "avx512_bf16": True}, "AVX512-BF16"),
        ({"avx2": True}, None),
    ):
        monkeypatch.setattr(torch.cpu, "get_capabilities", lambda c=caps: c, raising=False)
        assert fastpath.cpu_bf16_units() == want


@pytest.mark.parametrize("units", ["AMX", None])
def test_a_run_records_what_auto_chose_and_why(runs, monkeypatch, units):
    """A tiny flow run under auto: spec.yaml keeps the precision it trained in, its meta why."""
    import yaml

    from udlcli.core import fastpath

    monkeypatch.setattr(fastpath, "cpu_bf16_units", lambda: units)
    sets = ["data.dataset=mnist-sample", "data.limit=200", "train.epochs=1", "train.n_fixed=4"]
    sets += ["model.width=8", "model.blocks=1", "model.attention=false", "train.device=cpu"]
    r = engine.train(resolve_spec("flow", sets=sets), engine.RunOptions(out=runs, name="auto"))
    spec = yaml.safe_load((r.run_dir / "spec.yaml").read_text())
    want = "bf16" if units else "32"
    assert spec["train"]["precision"] == want
    assert spec["meta"]["precision"].startswith(f"{want} (auto: ")
    assert ("AMX" in spec["meta"]["precision"]) == bool(units)
    ck = load_checkpoint(r.run_dir / "weights" / "last.pt")
    assert ck["spec"]["train"]["precision"] == want  # a resume trains in the same precision
