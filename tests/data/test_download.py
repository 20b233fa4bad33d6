"""Downloads through torchvision, against a local HTTP server (tests never use the network).

The server hands out a real CIFAR-10-layout archive of photo patches, slowly or not at all, so the
progress watch of download.download_torchvision and the safe CIFAR path are exercised for real.
"""

from __future__ import annotations

import hashlib
import http.server
import tarfile
import threading
import time

import numpy as np
import pytest
from photos import patches, write_cifar

from udlcli.data import load_dataset
from udlcli.errors import DataError


def _archive(tmp_path):
    x, y, classes = patches(32, 4, seed=3)  # 36 patches, 9 classes
    write_cifar(tmp_path / "src", x[12:], y[12:], x[:12], y[:12], classes)
    tgz = tmp_path / "cifar-10-python.tar.gz"
    with tarfile.open(tgz, "w:gz") as t:
        t.add(tmp_path / "src" / "cifar-10-batches-py", arcname="cifar-10-batches-py")
    return tgz.read_bytes(), x, y


def _serve(body: bytes, chunk_delay: float, stall_after: int | None = None):
    """A local server sending body in 8 kB chunks, chunk_delay s apart; after stall_after bytes it goes silent."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 (http.server's name)
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            for i in range(0, len(body), 8192):
                if stall_after is not None and i >= stall_after:
                    time.sleep(30)  # silent, connection open: a dead network
                    return
                self.wfile.write(body[i : i + 8192])
                self.wfile.flush()
                time.sleep(chunk_delay)

        def log_message(self, *a):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}/cifar-10-python.tar.gz"


@pytest.fixture
def cifar_server(tmp_path, monkeypatch):
    import torchvision.datasets as tvd

    body, x, y = _archive(tmp_path)
    monkeypatch.setattr(tvd.CIFAR10, "tgz_md5", hashlib.md5(body).hexdigest())
    monkeypatch.setenv("UDL_CACHE_DIR", str(tmp_path / "cache"))

    def never(*a, **k):
        raise AssertionError("torchvision's CIFAR10 class (plain pickle) was constructed")

    monkeypatch.setattr(tvd.CIFAR10, "__init__", never)
    started = []

    def start(chunk_delay=0.0, stall_after=None):
        server, url = _serve(body, chunk_delay, stall_after)
        started.append(server)
        monkeypatch.setattr(tvd.CIFAR10, "url", url)
        return len(body)

    yield start, x, y
    for s in started:
        s.shutdown()


def test_a_slow_download_that_keeps_coming_finishes_and_is_read_safely(cifar_server, tmp_path):
    start, x, y = cifar_server
    size = start(chunk_delay=0.4)  # longer in all than the timeout, but never silent for long
    data = tmp_path / "data"
    data.mkdir()
    t0 = time.monotonic()
    ds = load_dataset("cifar10", data, download_timeout=2)
    assert time.monotonic() - t0 > 2 and size > 8192 * 5  # it outlived the timeout
    assert ds.shape == (3, 32, 32) and len(ds.test) == 12
    assert np.array_equal(ds.test.x.numpy(), x[:12])  # udl's own reader, not torchvision's class
    assert list(data.iterdir()) == []  # the data folder is not written: downloads go to the cache
    assert (tmp_path / "cache" / "cifar-10-batches-py" / "test_batch").is_file()


def test_a_download_that_goes_silent_gives_up_and_leaves_nothing(cifar_server, tmp_path):
    start, _, _ = cifar_server
    start(stall_after=16384)
    data = tmp_path / "data"
    data.mkdir()
    t0 = time.monotonic()
    with pytest.raises(DataError, match="cifar10: data not found") as e:
        load_dataset("cifar10", data, download_timeout=2)
    assert time.monotonic() - t0 < 20
    assert "cifar-10-batches-py" in str(e.value)  # names the files to place
    cache = tmp_path / "cache"
    assert not cache.exists() or not [p for p in cache.rglob("*") if p.is_file()]
