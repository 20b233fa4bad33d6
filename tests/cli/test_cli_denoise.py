"""`udl denoise` bad input: one-line errors, non-zero exits, nothing written (no training needed)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from conftest import (
    one_error_line as _only_error_line,  # the suite's check: one error line, no traceback
)

from udlcli.cli.app import app
from udlcli.core.checkpoint import save_checkpoint


@pytest.fixture
def ae_run(tmp_path) -> Path:
    """A real (untrained) AE run folder as udl train writes its checkpoint: kind ae, its spec and weights."""
    from udlcli.config import DataConfig
    from udlcli.core.spec import resolve_spec, spec_to_dict
    from udlcli.models import get

    spec = resolve_spec("ae", None, {"model.channels": 2, "model.latent_dim": 2})
    model = get("ae").build(spec.model, DataConfig())
    run = tmp_path / "runs" / "ae" / "ae"
    save_checkpoint(
        run / "weights" / "best.pt",
        {"kind": "ae", "spec": spec_to_dict(spec), "model": model.state_dict(), "epoch": 1},
    )
    return run


@pytest.fixture
def bad_inputs(tmp_path, ae_run):
    (tmp_path / "scans").mkdir()
    (tmp_path / "scans" / "a.png").write_bytes(b"")
    return {
        "--p 1.5": (["--p", "1.5"], "model.p", 2),
        "--sigma -1": (["--sigma", "-1"], "model.sigma", 2),
        "--salt 2": (["--salt", "2"], "model.salt", 2),
        "unknown noise": (["--noise", "pink"], "model.noise", 2),
        "--eval on an AE run": (["--eval", str(ae_run)], "is an AE run, not a DAE run", 1),
        "--eval on a missing run": (["--eval", str(tmp_path / "nope")], "no such run folder", 1),
        "--eval --sigma -1": (["--eval", str(ae_run), "--sigma", "-1"], "sigma", 2),
        "--compare with a DAE-less folder": (
            ["--compare", str(tmp_path / "nope")],
            "no such run folder",
            1,
        ),
        "--input matching no file": (
            ["--input", str(tmp_path / "scans" / "*.jpg"), "--out", str(tmp_path / "o")],
            "matches no file",
            1,
        ),
        "--input missing file": (
            ["--input", str(tmp_path / "missing.png"), "--out", str(tmp_path / "o")],
            "no such file",
            1,
        ),
        "--input without --out": (["--input", str(tmp_path / "scans" / "a.png")], "needs --out", 2),
        "--input into its own folder": (
            ["--input", str(tmp_path / "scans" / "a.png"), "--out", str(tmp_path / "scans")],
            "is the folder of the input",
            2,
        ),
        "--input with training flags": (
            ["--input", "x.png", "--out", "o", "--epochs", "3"],
            "--epochs",
            2,
        ),
        "--eval with training flags": (
            ["--eval", str(ae_run), "--noise", "gaussian"],
            "--noise",
            2,
        ),
        "stray argument": (["scan.png"], "unexpected argument", 2),
        "--like a missing run": (["--like", str(tmp_path / "nope")], "no such run folder", 1),
    }


def test_bad_input_is_one_line_and_writes_nothing(runner, tmp_path, bad_inputs):
    for label, (args, needle, code) in bad_inputs.items():
        out = tmp_path / f"runs_{abs(hash(label))}"
        full = ["denoise", *args] if "--out" in args else ["denoise", *args, "--out", str(out)]
        if "--input" in args and "--out" not in args:
            full = ["denoise", *args]
        r = runner.invoke(app, full)
        assert r.exit_code == code, (label, r.exit_code, r.output)
        assert needle in _only_error_line(r), (label, r.output)
        assert not out.exists(), f"{label}: a run folder was created"
    assert not (tmp_path / "o").exists()
    assert [p.name for p in (tmp_path / "scans").iterdir()] == ["a.png"]


def test_input_without_a_dae_run_fails_clearly(runner, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    r = runner.invoke(app, ["denoise", "--input", "x.png", "--out", "clean"])
    assert r.exit_code == 1 and "no such file" in _only_error_line(r)
    (tmp_path / "x.png").write_bytes(b"")
    r = runner.invoke(app, ["denoise", "--input", "x.png", "--out", "clean"])
    assert r.exit_code == 1 and "no denoise run" in _only_error_line(r)  # no runs/denoise/ here
    assert not (tmp_path / "clean").exists()


def test_help_does_not_import_torch():
    code = (
        "import sys\nfrom typer.main import get_command\nfrom udlcli.cli.app import app\n"
        "try:\n    get_command(app).main(['denoise', '--help'], standalone_mode=False)\nexcept SystemExit:\n    pass\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\nprint('ok')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.strip().endswith("ok"), out.stderr
