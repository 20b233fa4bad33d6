"""The data layer: IDX reading, lookup order, the offline fallback, mnist-sample, image folders, batching."""

from __future__ import annotations

import gzip
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from udlcli.data import load_dataset, resolve_data_dir, sources
from udlcli.errors import DataError


def test_resolve_data_dir_order(monkeypatch, tmp_path):
    monkeypatch.setenv("UDL_DATA_DIR", "/from/env")
    assert resolve_data_dir("/from/cli") == Path("/from/cli")
    assert resolve_data_dir(None) == Path("/from/env")
    monkeypatch.delenv("UDL_DATA_DIR")
    assert resolve_data_dir(None) == tmp_path / "cache" / "udl"


def test_full_mnist_from_gz(mnist_dir):
    ds = load_dataset("mnist", mnist_dir)
    assert ds.name == "mnist"
    assert ds.train.x.shape == (60000, 1, 28, 28) and ds.train.x.dtype == torch.uint8
    assert ds.test.x.shape == (10000, 1, 28, 28) and ds.shape == (1, 28, 28)
    assert ds.stats == (
        [0.1307],
        [0.3081],
    )  # computed from the training split: the report's numbers
    assert ds.train.y[:5].tolist() == [5, 0, 4, 1, 9]  # the canonical first labels
    assert ds.info()["train_size"] == 60000


def test_reading_never_writes_next_to_the_data(mnist_dir):
    before = sorted(p.name for p in (mnist_dir / "MNIST" / "raw").iterdir())
    load_dataset("mnist", mnist_dir)
    assert sorted(p.name for p in (mnist_dir / "MNIST" / "raw").iterdir()) == before


def test_split_is_80_20_and_seeded(mnist_dir):
    ds = load_dataset("mnist", mnist_dir)
    tr, va = ds.split(0.2, seed=0)
    assert (len(tr), len(va)) == (48000, 12000)
    tr2, va2 = ds.split(0.2, seed=0)
    assert torch.equal(va.x, va2.x)
    _, va3 = ds.split(0.2, seed=1)
    assert not torch.equal(va.x, va3.x)


def test_truncated_gz_is_a_clear_error(mnist_dir, tmp_path):
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for f in (mnist_dir / "MNIST" / "raw").glob("*.gz"):
        shutil.copy(f, raw / f.name)
    broken = raw / "t10k-images-idx3-ubyte.gz"
    broken.write_bytes(broken.read_bytes()[:5000])
    with pytest.raises(DataError, match="corrupt or truncated"):
        load_dataset("mnist", tmp_path)


def test_idx_with_short_body_is_detected(tmp_path):
    p = tmp_path / "x.gz"
    header = (
        (0).to_bytes(2, "big")
        + bytes([8, 3])
        + (10).to_bytes(4, "big")
        + (28).to_bytes(4, "big") * 2
    )
    with gzip.open(p, "wb") as f:
        f.write(header + b"\0" * 100)
    with pytest.raises(DataError, match="truncated"):
        sources.read_idx(p)


def test_offline_mnist_falls_back_to_sample(tmp_path, offline, capsys):
    (tmp_path / "empty").mkdir()
    ds = load_dataset("mnist", tmp_path / "empty")
    assert ds.name == "mnist-sample" and ds.requested == "mnist"
    assert (len(ds.train), len(ds.test)) == (4000, 1000)
    assert "using mnist-sample" in capsys.readouterr().out
    assert ds.info()["notes"], "the fallback must be recorded in the run metadata"


def test_offline_other_dataset_is_an_error_naming_the_files(tmp_path, offline):
    (tmp_path / "empty").mkdir()
    with pytest.raises(
        DataError,
        match="fashion-mnist: data not found in .*FashionMNIST.*place train-images-idx3-ubyte.gz",
    ):
        load_dataset("fashion-mnist", tmp_path / "empty")


def test_offline_default_folder_falls_back_but_a_named_missing_one_is_an_error(
    tmp_path, offline, monkeypatch
):
    monkeypatch.delenv("UDL_DATA_DIR", raising=False)
    assert (
        load_dataset("mnist").name == "mnist-sample"
    )  # the default folder (the user cache) need not exist
    with pytest.raises(DataError, match=f"--data-dir {tmp_path / 'typo'} does not exist"):
        load_dataset("mnist", tmp_path / "typo")
    (tmp_path / "a-file").write_text("x")
    with pytest.raises(DataError, match="is a file, not a folder"):
        load_dataset("mnist-sample", tmp_path / "a-file")
    monkeypatch.setenv("UDL_DATA_DIR", str(tmp_path / "typo"))
    with pytest.raises(DataError, match="UDL_DATA_DIR .*typo does not exist"):
        load_dataset("mnist")


def test_a_failed_download_leaves_nothing_behind(tmp_path, monkeypatch):
    """The download really runs and fails half-way: a local mirror serves KMNIST's first file, then has no second one.

    The error must name that cause (so the download got as far as the second request), and the
    first file, written before the failure, must be gone with the rest: nothing in the cache.
    """
    from mirror import Mirror, point_downloads_at, serve_files

    files = serve_files(monkeypatch, tmp_path, "kmnist")
    del files["kmnist/train-labels-idx1-ubyte.gz"]
    mirror = Mirror(files)
    point_downloads_at(monkeypatch, mirror.url)
    cache = tmp_path / "cache" / "udl"
    data = tmp_path / "data"
    data.mkdir()
    try:
        with pytest.raises(DataError) as e:
            load_dataset("kmnist", data, download_timeout=10)
    finally:
        mirror.close()
    assert mirror.requests == [
        "/kmnist/train-images-idx3-ubyte.gz",
        "/kmnist/train-labels-idx1-ubyte.gz",
    ]
    assert re.search(
        r"kmnist: data not found .* could not be downloaded \(network error: 127\.0\.0\.1:\d+: "
        r"HTTP 404 Not Found for train-labels-idx1-ubyte\.gz\)",
        str(e.value),
    ), str(e.value)
    assert list(data.iterdir()) == []
    assert cache.is_dir() and [p for p in cache.rglob("*")] == []  # the scratch folder went too


def test_downloads_go_to_the_user_cache_and_are_found_there(tmp_path, mnist_dir, monkeypatch):
    """A dataset missing from the data folder but present in the cache (where downloads land) is read from the cache."""
    cache = tmp_path / "cache" / "udl"
    shutil.copytree(mnist_dir / "MNIST", cache / "MNIST")
    empty = tmp_path / "data"
    empty.mkdir()
    ds = load_dataset("mnist", empty, download=False)
    assert ds.name == "mnist" and ds.source == str(cache / "MNIST" / "raw")
    monkeypatch.setenv("UDL_CACHE_DIR", str(tmp_path / "own-cache"))
    assert sources.default_cache_dir() == tmp_path / "own-cache"


def test_limit_is_stratified_and_seeded():
    a = load_dataset("mnist-sample", limit=1000)
    assert (
        np.bincount(a.train.y.numpy()).tolist() == [100] * 10
    )  # all ten digits, not the first three
    b = load_dataset("mnist-sample", limit=1000)
    assert torch.equal(a.train.x, b.train.x)
    odd = load_dataset("mnist-sample", limit=37)
    counts = np.bincount(odd.train.y.numpy(), minlength=10)
    assert counts.sum() == 37 and counts.max() - counts.min() <= 1


def test_stratified_indices_keep_class_shares():
    from udlcli.data import stratified_indices

    y = np.array([0] * 900 + [1] * 100)
    idx = stratified_indices(y, 50, seed=3)
    assert len(idx) == 50 and (np.diff(idx) > 0).all()
    assert np.bincount(y[idx]).tolist() == [45, 5]
    assert not np.array_equal(idx, stratified_indices(y, 50, seed=4))
    assert len(stratified_indices(np.full(10, -1), 4, seed=0)) == 4  # unlabelled: a random subset


def test_mnist_sample_test_split_is_not_sorted_by_label():
    from udlcli.data import showcase_indices

    y = load_dataset("mnist-sample").test.y
    assert len(set(y[:20].tolist())) >= 5  # "the first test images" are a mix
    idx = showcase_indices(y, 20)
    assert sorted(y[idx].tolist()) == sorted(list(range(10)) * 2)


def test_mnist_sample_is_stratified_and_fixed():
    a = load_dataset("mnist-sample")
    b = load_dataset("mnist-sample")
    assert torch.equal(a.test.x, b.test.x)
    assert np.bincount(a.test.y.numpy()).tolist() == [100] * 10
    assert np.bincount(a.train.y.numpy()).tolist() == [400] * 10
    assert a.train.x.float().mean() > 20  # real digits, not blanks


def _write_png(path: Path, size=(28, 28), value=200):
    path.parent.mkdir(parents=True, exist_ok=True)
    arr = np.zeros(size[::-1], dtype=np.uint8)
    arr[size[1] // 4 : size[1] // 2, :] = value
    Image.fromarray(arr).convert("RGB").save(path)


def test_folder_with_classes_and_resizing(tmp_path, capsys):
    for i in range(6):
        _write_png(tmp_path / "imgs" / "cat" / f"{i}.png")
        _write_png(tmp_path / "imgs" / "dog" / f"{i}.png", size=(40, 32))
    ds = load_dataset(f"folder:{tmp_path / 'imgs'}")
    assert ds.classes == ["cat", "dog"]
    assert len(ds.train) + len(ds.test) == 12
    assert set(torch.cat([ds.train.y, ds.test.y]).tolist()) == {0, 1}
    assert ds.train.x.shape[1:] == (1, 28, 28)  # gray, and mixed sizes resized to 28x28
    assert "6 image(s)" in capsys.readouterr().out


def test_empty_folder_is_an_error(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no images found"):
        load_dataset(f"folder:{tmp_path / 'empty'}")
    (tmp_path / "text").mkdir()
    (tmp_path / "text" / "a.txt").write_text("hello")
    with pytest.raises(DataError, match="no images found"):
        load_dataset(f"folder:{tmp_path / 'text'}")
    with pytest.raises(DataError, match="no such folder"):
        load_dataset(f"folder:{tmp_path / 'missing'}")


def test_batches_cover_every_image_once():
    ds = load_dataset("mnist-sample", limit=1000)
    seen = []
    for x, y in ds.train.batches(256, torch.Generator().manual_seed(0)):
        assert x.dtype == torch.float32 and x.shape[1:] == (1, 28, 28)
        assert 0.0 <= x.min() and x.max() <= 1.0
        seen.append(y)
    assert sum(len(s) for s in seen) == 1000
    assert sorted(torch.cat(seen).tolist()) == sorted(ds.train.y.tolist())


def _snapshot(folder: Path) -> dict:
    return {
        str(p.relative_to(folder)): (
            p.stat().st_size,
            p.stat().st_mtime_ns,
            p.read_bytes() if p.is_file() else b"",
        )
        for p in sorted(folder.rglob("*"))
    }


def test_commands_never_write_into_a_read_only_data_folder(tmp_path, mnist_dir, offline, runner):
    """train, evaluate and a dataset missing offline, all against a read-only copy of a data folder: nothing in it changes."""
    from udlcli.cli.app import app

    ro = tmp_path / "ro-data"
    shutil.copytree(mnist_dir / "MNIST", ro / "MNIST")
    for p in [*ro.rglob("*"), ro]:
        p.chmod(0o555 if p.is_dir() else 0o444)
    before = _snapshot(ro)
    runs = tmp_path / "runs"
    try:
        r = runner.invoke(
            app,
            [
                "train",
                "ae",
                "--data-dir",
                str(ro),
                "--limit",
                "500",
                "--epochs",
                "1",
                "--channels",
                "4",
                "--out",
                str(runs),
                "-q",
            ],
        )
        assert r.exit_code == 0, r.output
        r = runner.invoke(
            app, ["evaluate", str(runs / "ae" / "ae"), "--n", "200", "--data-dir", str(ro), "-q"]
        )
        assert r.exit_code == 0, r.output
        r = runner.invoke(
            app,
            ["train", "ae", "--dataset", "kmnist", "--data-dir", str(ro), "--out", str(runs), "-q"],
        )
        assert r.exit_code == 1 and "kmnist: data not found" in r.output
    finally:
        after = _snapshot(ro)
        for p in [ro, *ro.rglob("*")]:
            p.chmod(0o755 if p.is_dir() else 0o644)
    assert after == before


def test_every_dataset_name_has_a_source_and_a_row_in_the_docs():
    # The names a spec accepts (config), the readers (sources) and docs/data.md's table agree.
    from conftest import REPO

    from udlcli.config import DATASET_NAMES
    from udlcli.data.sources import SOURCES

    assert set(DATASET_NAMES) == set(SOURCES) | {"mnist-sample"}
    table = (REPO / "docs" / "data.md").read_text()
    assert all(f"| `{name}`" in table for name in DATASET_NAMES)
