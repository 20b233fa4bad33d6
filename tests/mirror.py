"""A local HTTP mirror standing in for the internet: each named dataset's files in their real layout, served from 127.0.0.1, well or badly.

point_downloads_at() points every dataset's torchvision URLs (and CelebA's Google Drive stand-in)
at BASE/<dataset>/<file>; conftest points them at a closed local port for every test, so no test
ever reaches another host. serve_files() builds what a dataset's host serves: the canonical MNIST
and Fashion-MNIST files (their md5s are the ones torchvision checks), or small real files in each
layout, in which case the md5s torchvision checks are set to theirs.
"""

from __future__ import annotations

import gzip
import hashlib
import http.server
import io
import pickle
import shutil
import socket
import struct
import tarfile
import threading
import zipfile
from pathlib import Path

import numpy as np
from photos import patches, write_cifar, write_svhn

MNIST_FAMILY = {"mnist": "MNIST", "fashion-mnist": "FashionMNIST", "kmnist": "KMNIST"}
ARCHIVES = {"cifar10": "CIFAR10", "cifar100": "CIFAR100", "stl10": "STL10"}


class Mirror:
    """A threaded HTTP server on 127.0.0.1 serving files by path; it logs every request.

    mode: "ok"; "stall" (headers and the first stall_after bytes, then silence, the connection
    open: a dead network); "wrong" (one byte changed: a checksum mismatch). It sends chunk bytes
    at a time, chunk_delay seconds apart: a download that is slow but keeps coming.
    """

    def __init__(self, files: dict[str, bytes]):
        self.files, self.requests = dict(files), []
        self.mode, self.stall_after, self.chunk, self.chunk_delay = "ok", 16384, 1 << 16, 0.0
        self._closing = threading.Event()
        mirror = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 (http.server's name)
                mirror.requests.append(self.path)
                body = mirror.files.get(self.path.lstrip("/"))
                if body is None:
                    self.send_error(404)
                    return
                if mirror.mode == "wrong":
                    body = bytes([body[0] ^ 1]) + body[1:]
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                for i in range(0, len(body), mirror.chunk):
                    if mirror.mode == "stall" and i >= mirror.stall_after:
                        mirror._closing.wait(60)
                        return
                    self.wfile.write(body[i : i + mirror.chunk])
                    self.wfile.flush()
                    if mirror.chunk_delay:
                        mirror._closing.wait(mirror.chunk_delay)

            def log_message(self, *a):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def close(self) -> None:
        self._closing.set()
        self.server.shutdown()
        self.server.server_close()


def closed_port() -> tuple[socket.socket, str]:
    """A port on 127.0.0.1 that refuses every connection (bound, never listening), and its URL; keep the socket."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    return s, f"http://127.0.0.1:{s.getsockname()[1]}"


def point_downloads_at(monkeypatch, base: str) -> None:
    """Every named dataset's download from base/<dataset>/<file> (CelebA: base/celeba/<Drive id>)."""
    import torchvision.datasets as tvd

    from udlcli.data import download

    for name, cls in MNIST_FAMILY.items():
        monkeypatch.setattr(getattr(tvd, cls), "mirrors", [f"{base}/{name}/"])
    for name, cls in ARCHIVES.items():
        cls = getattr(tvd, cls)
        monkeypatch.setattr(cls, "url", f"{base}/{name}/{cls.filename}")
    split_list = {k: [f"{base}/svhn/{f}", f, md5] for k, (_, f, md5) in tvd.SVHN.split_list.items()}
    monkeypatch.setattr(tvd.SVHN, "split_list", split_list)
    monkeypatch.setattr(download, "drive_download", _drive_stand_in(base))


def _drive_stand_in(base: str):
    """What gdown does for udl, from the local mirror: Google Drive itself cannot be pointed elsewhere."""

    def fetch(file_id: str, dest: Path) -> None:
        import urllib.request

        from udlcli.data.download import DownloadFailed

        try:
            with urllib.request.urlopen(f"{base}/celeba/{file_id}", timeout=5) as r:
                with open(dest, "wb") as f:
                    shutil.copyfileobj(r, f)
        except OSError as e:
            raise DownloadFailed(f"network error: Google Drive (stand-in at {base}): {e}") from None

    return fetch


# ---------------------------------------------------------------- what each host serves


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def serve_files(monkeypatch, tmp_path: Path, name: str, shared: Path | None = None) -> dict:
    """The files name's host serves, by path on the mirror; small real ones (their md5s set in torchvision), or shared's canonical ones."""
    import torchvision.datasets as tvd

    if name in MNIST_FAMILY:
        cls = getattr(tvd, MNIST_FAMILY[name])
        raw = shared / MNIST_FAMILY[name] / "raw" if shared else None
        if raw is not None and raw.is_dir():  # the canonical bytes: torchvision's md5s as they are
            return {f"{name}/{f}": (raw / f).read_bytes() for f, _ in cls.resources}
        files = _idx_files(seed=len(name))
        monkeypatch.setattr(cls, "resources", [(f, md5(b)) for f, b in files.items()])
        return {f"{name}/{f}": b for f, b in files.items()}
    if name == "svhn":
        x, y, _ = patches(32, 2, seed=5)
        write_svhn(tmp_path / "layout", x[6:], y[6:] % 10, x[:6], y[:6] % 10)
        mats = {f: (tmp_path / "layout" / "SVHN" / f).read_bytes() for f in _SVHN}
        lists = {
            k: [u, f, md5(mats[f])] for k, (u, f, _) in tvd.SVHN.split_list.items() if f in mats
        }
        monkeypatch.setattr(tvd.SVHN, "split_list", {**tvd.SVHN.split_list, **lists})
        return {f"svhn/{f}": b for f, b in mats.items()}
    if name == "celeba":
        return _celeba(monkeypatch, tmp_path / "layout")
    cls = getattr(tvd, ARCHIVES[name])
    folder = {"cifar10": _cifar10, "cifar100": _cifar100, "stl10": _stl10}[name](
        tmp_path / "layout"
    )
    _set_inner_md5s(monkeypatch, cls, folder)
    tgz = io.BytesIO()
    with tarfile.open(fileobj=tgz, mode="w:gz") as t:
        t.add(folder, arcname=folder.name)
    monkeypatch.setattr(cls, "tgz_md5", md5(tgz.getvalue()))
    return {f"{name}/{cls.filename}": tgz.getvalue()}


_SVHN = ("train_32x32.mat", "test_32x32.mat")


def _idx(arr: np.ndarray) -> bytes:
    header = struct.pack(">HBB", 0, 0x08, arr.ndim) + struct.pack(f">{arr.ndim}I", *arr.shape)
    return gzip.compress(header + arr.astype(np.uint8).tobytes(), mtime=0)


def _idx_files(seed: int) -> dict[str, bytes]:
    """120 train and 30 test 28x28 images with labels, as the four .gz IDX files."""
    rng = np.random.default_rng(seed)
    out = {}
    for split, n in (("train", 120), ("t10k", 30)):
        out[f"{split}-images-idx3-ubyte.gz"] = _idx(rng.integers(0, 256, (n, 28, 28)))
        out[f"{split}-labels-idx1-ubyte.gz"] = _idx(np.arange(n) % 10)
    return out


def _cifar10(root: Path) -> Path:
    x, y, classes = patches(32, 4, seed=3)
    return write_cifar(root, x[12:], y[12:], x[:12], y[:12], classes) / "cifar-10-batches-py"


def _cifar100(root: Path) -> Path:
    x, y, _ = patches(32, 3, seed=4)
    d = root / "cifar-100-python"
    d.mkdir(parents=True)
    for split, idx in (("train", slice(9, None)), ("test", slice(0, 9))):
        obj = {b"data": x[idx].reshape(len(x[idx]), -1), b"fine_labels": [int(v) for v in y[idx]]}
        (d / split).write_bytes(pickle.dumps(obj, protocol=2))
    (d / "meta").write_bytes(pickle.dumps({b"fine_label_names": [b"c%d" % i for i in range(100)]}))
    return d


def write_stl10(root: Path, x96: np.ndarray, y: np.ndarray, unlabeled=None) -> Path:
    """root/stl10_binary/ as STL-10's binary version has it: the first four images are the test split."""
    d = root / "stl10_binary"
    d.mkdir(parents=True)
    # STL-10 stores each image column-major: (N, 3, W, H) on disk.
    for name, arr in (("train", x96[4:]), ("test", x96[:4])):
        arr.transpose(0, 1, 3, 2).tofile(d / f"{name}_X.bin")
    (y[4:] + 1).astype(np.uint8).tofile(d / "train_y.bin")
    (y[:4] + 1).astype(np.uint8).tofile(d / "test_y.bin")
    if unlabeled is not None:
        unlabeled.transpose(0, 1, 3, 2).tofile(d / "unlabeled_X.bin")
    (d / "class_names.txt").write_text("\n".join(f"c{i}" for i in range(10)))
    return d


def _stl10(root: Path) -> Path:
    x96, y, _ = patches(96, 1, seed=2)
    return write_stl10(root, x96, y, unlabeled=x96[:6])


def _set_inner_md5s(monkeypatch, cls, folder: Path) -> None:
    """The md5s torchvision lists for the files inside an archive (udl data verify reads them), set to the small files'."""
    for attr in ("train_list", "test_list"):
        rows = [[f, md5((folder / f).read_bytes())] for f, _ in getattr(cls, attr)]
        monkeypatch.setattr(cls, attr, rows)
    if isinstance(getattr(cls, "meta", None), dict):
        meta = {**cls.meta, "md5": md5((folder / cls.meta["filename"]).read_bytes())}
        monkeypatch.setattr(cls, "meta", meta)


def celeba_faces(folder: Path, n: int = 8) -> list[str]:
    """n real 178x218 'faces' (photo patches, as CelebA's aligned size) and the partition lines: 6 train/valid, the rest test."""
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    x, _, _ = patches(178, 1, seed=6)
    lines = []
    for i in range(n):
        img = np.concatenate([x[i % len(x)], x[(i + 1) % len(x)][:, :40]], axis=1)  # 218 high
        Image.fromarray(img.transpose(1, 2, 0)).save(folder / f"{i + 1:06d}.jpg", quality=90)
        lines.append(f"{i + 1:06d}.jpg {0 if i < 5 else 1 if i < 6 else 2}")
    return lines


def _celeba(monkeypatch, root: Path) -> dict:
    import torchvision.datasets as tvd

    lines = celeba_faces(root / "img_align_celeba")
    partition = ("\n".join(lines) + "\n").encode()
    z = io.BytesIO()
    with zipfile.ZipFile(z, "w") as zf:
        for f in sorted((root / "img_align_celeba").iterdir()):
            zf.write(f, f"img_align_celeba/{f.name}")
    served = {"img_align_celeba.zip": z.getvalue(), "list_eval_partition.txt": partition}
    rows = [(fid, md5(served[f]) if f in served else h, f) for fid, h, f in tvd.CelebA.file_list]
    monkeypatch.setattr(tvd.CelebA, "file_list", rows)
    return {f"celeba/{fid}": served[f] for fid, _, f in rows if f in served}
