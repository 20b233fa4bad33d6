"""Shared fixtures: the real data folder beside the repo, a runs root per test, and a CLI runner."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

REPO = Path(__file__).resolve().parent.parent
SHARED_DATA = REPO.parent / "shared" / "data"


def full_mnist_dir() -> Path | None:
    """Where full MNIST lives for tests: $UDL_DATA_DIR, else ../shared/data beside the repo."""
    for cand in (os.environ.get("UDL_DATA_DIR"), SHARED_DATA):
        if cand and (Path(cand) / "MNIST" / "raw" / "train-images-idx3-ubyte.gz").is_file():
            return Path(cand)
    return None


@pytest.fixture
def mnist_dir() -> Path:
    d = full_mnist_dir()
    if d is None:
        pytest.skip("full MNIST not found: set UDL_DATA_DIR or put ../shared/data beside the repo")
    return d


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch, tmp_path):
    # Never touch the user's cache, and never download: point the cache at the test's own folder.
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("UDL_DEBUG", raising=False)
    d = full_mnist_dir()
    if d is not None:
        monkeypatch.setenv("UDL_DATA_DIR", str(d))
    else:
        monkeypatch.delenv("UDL_DATA_DIR", raising=False)
    from udlcli import ui

    ui.set_quiet(False)


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


@pytest.fixture
def runs(tmp_path) -> Path:
    return tmp_path / "runs"


@pytest.fixture
def offline(monkeypatch):
    """Downloads fail at once, as they do on a machine with no network (tests never use the network)."""
    from udlcli.data import sources

    monkeypatch.setattr(sources, "download_torchvision", lambda name, root, timeout=15.0: "URLError: offline")


@pytest.fixture(scope="session")
def latent_runs(tmp_path_factory) -> dict[str, Path]:
    """A small real AE (latent 7, 2 epochs on 2,000 mnist-sample digits) and a tiny VAE with a 2-D latent space.

    Trained once per session for the tests of the commands that read a latent space (udl embed, udl sample ae).
    """
    from udlcli.cli.app import app

    root = tmp_path_factory.mktemp("latent_runs")
    tiny = ["--dataset", "mnist-sample", "--channels", "4", "-q", "--out", str(root)]
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("XDG_CACHE_HOME", str(root / "cache"))
        for args in (["ae", "--limit", "2000", "--batch-size", "32", "--epochs", "2"], ["vae", "--latent-dim", "2", "--limit", "300", "--epochs", "1"]):
            r = CliRunner().invoke(app, ["train", *args, *tiny])
            assert r.exit_code == 0, r.output
    return {"root": root, "ae": root / "ae" / "ae", "vae": root / "vae" / "vae"}


def one_error_line(result) -> str:
    """The output of a failed command is exactly one 'error: ...' line with no traceback; returns that line."""
    lines = [l for l in result.output.strip().splitlines() if l.strip()]
    assert "Traceback" not in result.output and lines and lines[-1].startswith("error:"), result.output
    assert not any(l.startswith("error:") for l in lines[:-1]), result.output
    return lines[-1]
