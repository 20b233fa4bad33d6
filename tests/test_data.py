"""The data layer: IDX reading, lookup order, the offline fallback, mnist-sample, image folders, batching."""

from __future__ import annotations

import gzip
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from udlcli.data import load_dataset, resolve_data_dir
from udlcli.data import sources
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
    assert ds.train.x.shape == (60000, 28, 28) and ds.train.x.dtype == torch.uint8
    assert ds.test.x.shape == (10000, 28, 28)
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
    header = (0).to_bytes(2, "big") + bytes([8, 3]) + (10).to_bytes(4, "big") + (28).to_bytes(4, "big") * 2
    with gzip.open(p, "wb") as f:
        f.write(header + b"\0" * 100)
    with pytest.raises(DataError, match="truncated"):
        sources.read_idx(p)


def test_offline_mnist_falls_back_to_sample(tmp_path, offline, capsys):
    ds = load_dataset("mnist", tmp_path / "empty")
    assert ds.name == "mnist-sample" and ds.requested == "mnist"
    assert (len(ds.train), len(ds.test)) == (4000, 1000)
    assert "using mnist-sample" in capsys.readouterr().out
    assert ds.info()["notes"], "the fallback must be recorded in the run metadata"


def test_offline_other_dataset_is_an_error(tmp_path, offline):
    with pytest.raises(DataError, match="fashion-mnist: data not found in .*FashionMNIST"):
        load_dataset("fashion-mnist", tmp_path / "empty")


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
    assert ds.train.x.shape[1:] == (28, 28)
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
