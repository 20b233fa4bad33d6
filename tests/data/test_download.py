"""Every named dataset's download, end to end against a local HTTP mirror on 127.0.0.1 (tests never use the network).

The mirror serves each dataset's files in the layout and under the names torchvision's URLs give,
checked against the md5s torchvision lists: the canonical MNIST and Fashion-MNIST files as they
are, small real files in the other layouts (their md5s set in torchvision for the test). CelebA is
on Google Drive, which cannot be pointed at another server: everything up to the gdown call is
tested, with a stand-in gdown that reads the mirror.
"""

from __future__ import annotations

import io
import re
import sys
import time
import types

import pytest
from conftest import full_mnist_dir
from mirror import closed_port, point_downloads_at
from rich.console import Console

from udlcli import ui
from udlcli.data import download, load_dataset
from udlcli.errors import DataError

REAL_DRIVE = download.drive_download  # as imported: conftest puts a stand-in in its place per test

# name -> (train, test) sizes as served: the canonical files where shared/data has them
SERVED = {
    "mnist": (60000, 10000),
    "fashion-mnist": (60000, 10000),
    "kmnist": (120, 30),
    "cifar10": (24, 12),
    "cifar100": (18, 9),
    "svhn": (12, 6),
    "stl10": (5, 4),
    "stl10-unlabeled": (6, 4),
    "celeba": (6, 2),
}
FOLDERS = {"mnist": "MNIST", "fashion-mnist": "FashionMNIST", "kmnist": "KMNIST"}


def _empty(tmp_path):
    d = tmp_path / "data"
    d.mkdir(exist_ok=True)
    return d


def _files_under(folder):
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())


@pytest.mark.parametrize("name", list(SERVED))
def test_every_dataset_downloads_whole_into_the_cache_once(serve, tmp_path, name):
    if name == "fashion-mnist" and full_mnist_dir() is None:
        pytest.skip("the canonical Fashion-MNIST files are in ../shared/data")
    mirror = serve(name)
    data = _empty(tmp_path)
    ds = load_dataset(name, data, download_timeout=5)
    assert ds.name == name and (len(ds.train), len(ds.test)) == SERVED[name]
    cache = tmp_path / "cache" / "udl"
    assert ds.source.startswith(str(cache))
    assert list(data.iterdir()) == []  # downloads go to the cache, never into the data folder
    assert not [p for p in cache.iterdir() if p.name.startswith(".download-")]  # no scratch left
    asked = len(mirror.requests)
    assert asked == {"cifar10": 1, "cifar100": 1, "stl10": 1, "stl10-unlabeled": 1}.get(
        name, 4 if name in FOLDERS else 2
    )
    again = load_dataset(name, data)  # the second load reads the cache and asks for nothing
    assert len(mirror.requests) == asked and len(again.train) == len(ds.train)


def test_the_canonical_mnist_files_pass_torchvisions_own_md5s(serve, tmp_path, mnist_dir):
    import torchvision.datasets as tvd

    serve("mnist")
    assert download.download_torchvision("mnist", tmp_path / "cache" / "udl") is None
    got = {
        p.name: download.md5_of(p) for p in (tmp_path / "cache" / "udl" / "MNIST" / "raw").iterdir()
    }
    assert got == dict(tvd.MNIST.resources)  # the md5s torchvision ships, not ones set by a test


def _cache_is_empty(cache) -> bool:
    return not cache.exists() or _files_under(cache) == []


@pytest.mark.parametrize(
    "mode,message",
    [
        (
            "stall",
            r"network error: 127\.0\.0\.1:\d+: no data for 2 s after [\d,]+ bytes of train-images",
        ),
        (
            "wrong",
            r"checksum mismatch: train-images-idx3-ubyte\.gz from 127\.0\.0\.1:\d+ has md5 \w+, torchvision expects",
        ),
        ("refuse", r"network error: 127\.0\.0\.1:\d+: connection refused"),
        ("unwritable", r"cannot write to .*a-file/udl: Not a directory"),
    ],
)
def test_a_failed_download_leaves_nothing_and_says_why_in_one_line(
    serve, tmp_path, monkeypatch, mode, message
):
    mirror = serve(
        "kmnist", mode="stall" if mode == "stall" else "wrong" if mode == "wrong" else "ok"
    )
    cache = tmp_path / "cache" / "udl"
    if mode == "refuse":
        sock, url = closed_port()
        point_downloads_at(monkeypatch, url)
    if (
        mode == "unwritable"
    ):  # root runs the tests, so a read-only folder would not stop it: a file does
        (tmp_path / "a-file").write_text("x")
        cache = tmp_path / "a-file" / "udl"
    t0 = time.monotonic()
    why = download.download_torchvision("kmnist", cache, timeout=2)
    assert why is not None and "\n" not in why
    assert re.fullmatch(message + ".*", why), why
    assert time.monotonic() - t0 < 10
    assert _cache_is_empty(cache)
    if mode in ("stall", "wrong"):
        assert mirror.requests  # it really asked
    if mode == "refuse":
        sock.close()


def test_load_dataset_names_the_real_cause_in_its_fallback_line(serve, tmp_path, capsys):
    serve("mnist", mode="wrong")
    ds = load_dataset("mnist", _empty(tmp_path), limit=100)
    assert ds.name == "mnist-sample"
    warning = [ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("warning:")]
    assert len(warning) == 1 and "checksum mismatch: train-images-idx3-ubyte.gz" in warning[0]


def test_mirrors_are_tried_in_turn(serve, tmp_path, monkeypatch):
    import torchvision.datasets as tvd

    mirror = serve("kmnist")
    sock, dead = closed_port()
    monkeypatch.setattr(tvd.KMNIST, "mirrors", [f"{dead}/kmnist/", f"{mirror.url}/kmnist/"])
    assert download.download_torchvision("kmnist", tmp_path / "cache" / "udl") is None
    mirror.mode = "wrong"
    why = download.download_torchvision("kmnist", tmp_path / "other")
    sock.close()
    # Both mirrors failed: one line saying what each did.
    assert re.fullmatch(
        r"network error: 127.0.0.1:\d+: connection refused; checksum mismatch: .*", why
    )


def test_a_slow_download_that_keeps_coming_finishes_and_is_read_safely(
    serve, tmp_path, monkeypatch
):
    import torchvision.datasets as tvd

    def never(*a, **k):
        raise AssertionError("torchvision's CIFAR10 class (plain pickle) was constructed")

    monkeypatch.setattr(tvd.CIFAR10, "__init__", never)
    serve("cifar10", chunk=8192, chunk_delay=0.3)  # 3 s in all, never silent for 1 s
    data = _empty(tmp_path)
    t0 = time.monotonic()
    ds = load_dataset("cifar10", data, download_timeout=1)
    assert time.monotonic() - t0 > 2  # it outlived the timeout
    assert ds.shape == (3, 32, 32) and len(ds.test) == 12
    assert (tmp_path / "cache" / "udl" / "cifar-10-batches-py" / "test_batch").is_file()


def test_a_download_that_goes_silent_gives_up_and_the_error_names_the_files(serve, tmp_path):
    serve("cifar10", mode="stall")
    with pytest.raises(
        DataError, match=r"cifar10: data not found.*\(network error: 127.0.0.1:\d+: no data for 2 s"
    ) as e:
        load_dataset("cifar10", _empty(tmp_path), download_timeout=2)
    assert "cifar-10-batches-py" in str(e.value)  # names the files to place
    assert _cache_is_empty(tmp_path / "cache" / "udl")


def test_progress_quiet_or_piped_is_one_line_at_each_end(serve, tmp_path, capsys):
    serve("svhn")
    ui.set_quiet(True)
    assert download.download_torchvision("svhn", tmp_path / "cache" / "udl") is None
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 2, lines
    assert lines[0].startswith("svhn: downloading 2 files from 127.0.0.1:")
    assert lines[1].startswith("svhn: ") and "stored in" in lines[1] and "B/s" in lines[1]


def test_progress_on_a_terminal_is_a_bar_with_bytes_rate_and_eta(serve, tmp_path, monkeypatch):
    out = io.StringIO()
    monkeypatch.setattr(
        ui, "console", Console(file=out, force_terminal=True, width=120, soft_wrap=True)
    )
    monkeypatch.delenv("CI", raising=False)
    serve("cifar10", chunk=8192, chunk_delay=0.1)  # a second: the bar is drawn a few times
    assert download.download_torchvision("cifar10", tmp_path / "cache" / "udl") is None
    text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", out.getvalue())  # without the colours
    assert "cifar-10-python.tar.gz" in text and "eta" in text
    assert re.search(r"[\d.]+/88\.\d kB", text) and re.search(
        r"[\d.]+ kB/s", text
    )  # bytes of all, rate
    assert "%|" not in text  # no tqdm bar from torchvision


def _fake_gdown(monkeypatch, mirror_url: str | None) -> list[dict]:
    """A gdown module that reads the local mirror (None: one that sends nothing, as over quota); returns its calls."""
    import shutil
    import urllib.request

    calls = []

    def download_(id, output, quiet=False, user_agent=None):  # noqa: A002 (gdown's name)
        calls.append({"id": id, "output": output, "quiet": quiet})
        if mirror_url is None:
            return None
        with urllib.request.urlopen(f"{mirror_url}/celeba/{id}") as r, open(output, "wb") as f:
            shutil.copyfileobj(r, f)
        return output

    monkeypatch.setitem(sys.modules, "gdown", types.SimpleNamespace(download=download_))
    monkeypatch.setattr(download, "drive_download", REAL_DRIVE)
    return calls


def test_celeba_through_gdown_up_to_google_drive(serve, tmp_path, monkeypatch):
    import torchvision.datasets as tvd

    mirror = serve("celeba")
    calls = _fake_gdown(monkeypatch, mirror.url)
    ds = load_dataset("celeba", _empty(tmp_path), image_size=32)
    assert (len(ds.train), len(ds.test)) == (6, 2)
    ids = {f: fid for fid, _, f in tvd.CelebA.file_list}
    assert [c["id"] for c in calls] == [ids[f] for f in download.CELEBA_FILES]
    assert all(c["quiet"] for c in calls)  # gdown's own tqdm bar stays off: udl shows progress
    folder = tmp_path / "cache" / "udl" / "celeba"
    assert not (folder / "img_align_celeba.zip").exists()  # unpacked, then deleted


def test_celeba_when_drive_sends_nothing_or_gdown_is_missing(tmp_path, monkeypatch):
    _fake_gdown(monkeypatch, None)
    why = download.download_torchvision("celeba", tmp_path / "cache" / "udl", timeout=2)
    assert why.startswith("network error: Google Drive sent no file for img_align_celeba.zip")
    monkeypatch.setitem(sys.modules, "gdown", None)  # as if not installed
    why = download.download_torchvision("celeba", tmp_path / "cache" / "udl", timeout=2)
    assert (
        why
        == "CelebA's files are on Google Drive, which needs the gdown package: pip install gdown"
    )
    assert _cache_is_empty(tmp_path / "cache" / "udl")
