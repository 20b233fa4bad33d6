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
