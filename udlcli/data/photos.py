"""Readers for the colour datasets in torchvision's layouts: CIFAR-10/100, SVHN, STL-10 and CelebA.

Each reader takes the folder torchvision would download into and returns
{"train": (x, y), "test": (x, y)} with x uint8 (N, 3, H, W) and y int64 (N,) (-1: unlabelled),
or None when the files are not there. A file that is there but unreadable is a one-line DataError.

Nothing on disk runs as code: CIFAR's batches are Python pickles, and they are read by an
unpickler that builds only the few numpy types the format holds (torchvision's own CIFAR class
uses plain pickle, which runs whatever a file asks it to). SVHN's .mat files are read with
scipy.io.loadmat, STL-10's binaries with numpy and CelebA's JPEGs with PIL.
"""

from __future__ import annotations

import io
import pickle
from pathlib import Path

import numpy as np

from udlcli.errors import DataError

# ---------------------------------------------------------------- CIFAR: pickles without code


class Refused(pickle.UnpicklingError):
    """The pickle asked for something a CIFAR file never holds."""


class SafeUnpickler(pickle.Unpickler):
    """Unpickles only what CIFAR's batch files hold: dicts, lists, bytes, numbers and numpy arrays.

    A pickle names every class it builds; find_class is asked for each one. Anything but numpy's
    array reconstruction is refused, so a file that asks for os.system (or any other callable) is an
    error before anything is called.
    """

    ALLOWED = {
        (
            "numpy.core.multiarray",
            "_reconstruct",
        ),  # how a pickled ndarray is rebuilt (numpy 1.x names)
        ("numpy._core.multiarray", "_reconstruct"),  # ... and numpy 2.x's
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        # Python 3 writing protocol 2 (CIFAR's) stores bytes as _codecs.encode(text, "latin1"): it only encodes.
        ("_codecs", "encode"),
    }

    def find_class(self, module: str, name: str):
        if (module, name) not in self.ALLOWED:
            raise Refused(f"refused to load {module}.{name}: CIFAR files hold only numpy arrays")
        return super().find_class(module, name)


def _unpickle(path: Path) -> dict:
    try:
        with open(path, "rb") as f:
            obj = SafeUnpickler(io.BytesIO(f.read()), encoding="bytes").load()
    except Refused as e:
        raise DataError(
            f"{path}: {e}; this is not a CIFAR batch file (replace it with a good copy)"
        ) from None
    except Exception as e:  # a damaged pickle fails in many ways (LookupError, MemoryError, ...): all mean "bad file"
        raise DataError(
            f"{path} is corrupt or truncated ({e.__class__.__name__}); replace it with a good copy"
        ) from None
    if not isinstance(obj, dict):
        raise DataError(
            f"{path}: not a CIFAR batch (a dict of data and labels); replace it with a good copy"
        )
    return {k.decode() if isinstance(k, bytes) else k: v for k, v in obj.items()}


def _cifar_batch(path: Path, label_key: str) -> tuple[np.ndarray, np.ndarray]:
    d = _unpickle(path)
    data, labels = d.get("data"), d.get(label_key)
    if (
        not isinstance(data, np.ndarray)
        or data.dtype != np.uint8
        or data.ndim != 2
        or data.shape[1] != 3072
        or labels is None
    ):
        raise DataError(
            f"{path}: expected 'data' uint8 (N, 3072) and '{label_key}'; the file is not a CIFAR batch or is damaged"
        )
    try:
        y = np.asarray(labels, dtype=np.int64).reshape(-1)
    except (TypeError, ValueError):
        y = None
    if y is None or y.min(initial=0) < 0:
        raise DataError(f"{path}: '{label_key}' are not class numbers; replace it with a good copy")
    if len(y) != len(data):
        raise DataError(
            f"{path} holds {len(data)} images but {len(y)} labels: the file is truncated; replace it"
        )
    return data.reshape(-1, 3, 32, 32), y


def _names(path: Path, key: str, n_classes: int) -> list[str]:
    """The class names, which must cover every label (the largest label is n_classes - 1)."""
    names = _unpickle(path).get(key)
    if not isinstance(names, list) or len(names) < n_classes:
        raise DataError(
            f"{path}: '{key}' must list a name for each of the {n_classes} classes; replace it with a good copy"
        )
    return [n.decode(errors="replace") if isinstance(n, bytes) else str(n) for n in names]


def read_cifar10(root: Path) -> tuple[dict, list[str]] | None:
    """root/cifar-10-batches-py/: data_batch_1..5, test_batch, batches.meta."""
    d = root / "cifar-10-batches-py"
    files = [d / f"data_batch_{i}" for i in range(1, 6)] + [d / "test_batch", d / "batches.meta"]
    if not all(f.is_file() for f in files):
        return None
    parts = [_cifar_batch(f, "labels") for f in files[:5]]
    train = (np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]))
    test = _cifar_batch(files[5], "labels")
    n_classes = int(max(train[1].max(initial=0), test[1].max(initial=0))) + 1
    return {"train": train, "test": test}, _names(files[6], "label_names", n_classes)


def read_cifar100(root: Path) -> tuple[dict, list[str]] | None:
    """root/cifar-100-python/: train, test, meta (the 100 fine classes)."""
    d = root / "cifar-100-python"
    files = [d / "train", d / "test", d / "meta"]
    if not all(f.is_file() for f in files):
        return None
    train, test = _cifar_batch(files[0], "fine_labels"), _cifar_batch(files[1], "fine_labels")
    n_classes = int(max(train[1].max(initial=0), test[1].max(initial=0))) + 1
    return {"train": train, "test": test}, _names(files[2], "fine_label_names", n_classes)


# ---------------------------------------------------------------- SVHN (.mat)


def _svhn(path: Path) -> tuple[np.ndarray, np.ndarray]:
    from scipy.io import loadmat

    try:
        m = loadmat(str(path))
        x, y = m["X"], m["y"]
    except Exception as e:  # scipy raises ValueError, TypeError or its own for a bad file
        raise DataError(
            f"{path} is not a readable SVHN .mat file ({e.__class__.__name__}); replace it with a good copy"
        ) from None
    if x.ndim != 4 or x.shape[:3] != (32, 32, 3) or x.dtype != np.uint8:
        raise DataError(
            f"{path}: expected X uint8 (32, 32, 3, N), got {x.dtype} {x.shape}; replace it with a good copy"
        )
    y = y.reshape(-1).astype(np.int64) % 10  # SVHN writes digit 0 as label 10
    return np.ascontiguousarray(x.transpose(3, 2, 0, 1)), y  # (N, 3, 32, 32)


def read_svhn(root: Path) -> tuple[dict, list[str]] | None:
    """root/SVHN/: train_32x32.mat, test_32x32.mat (torchvision's SVHN with root=root/SVHN)."""
    d = root / "SVHN"
    if not ((d / "train_32x32.mat").is_file() and (d / "test_32x32.mat").is_file()):
        return None
    return {"train": _svhn(d / "train_32x32.mat"), "test": _svhn(d / "test_32x32.mat")}, [
        str(i) for i in range(10)
    ]


# ---------------------------------------------------------------- STL-10 (binary)


def _stl_images(path: Path) -> np.ndarray:
    # Mapped, not read: the only copy in memory is the transposed one (2.8 GB for the unlabelled split).
    raw = (
        np.memmap(path, dtype=np.uint8, mode="r") if path.stat().st_size else np.zeros(0, np.uint8)
    )
    if raw.size % (3 * 96 * 96):
        raise DataError(
            f"{path} is truncated ({raw.size} bytes is not a whole number of 96x96 images); replace it"
        )
    return np.ascontiguousarray(
        raw.reshape(-1, 3, 96, 96).transpose(0, 1, 3, 2)
    )  # stored column-major


def _stl_labels(path: Path, n: int) -> np.ndarray:
    y = np.fromfile(path, dtype=np.uint8).astype(np.int64) - 1  # 1..10 on disk
    if len(y) != n:
        raise DataError(f"{path} holds {len(y)} labels for {n} images; replace it with a good copy")
    return y


def read_stl10(root: Path, unlabeled: bool = False) -> tuple[dict, list[str]] | None:
    """root/stl10_binary/: train_X/y.bin (5,000), test_X/y.bin (8,000), unlabeled_X.bin (100,000), class_names.txt."""
    d = root / "stl10_binary"
    need = ["test_X.bin", "test_y.bin", "class_names.txt"] + (
        ["unlabeled_X.bin"] if unlabeled else ["train_X.bin", "train_y.bin"]
    )
    if not all((d / f).is_file() for f in need):
        return None
    test = _stl_images(d / "test_X.bin")
    out = {"test": (test, _stl_labels(d / "test_y.bin", len(test)))}
    if unlabeled:
        x = _stl_images(d / "unlabeled_X.bin")
        out["train"] = (x, np.full(len(x), -1, np.int64))
    else:
        x = _stl_images(d / "train_X.bin")
        out["train"] = (x, _stl_labels(d / "train_y.bin", len(x)))
    return out, (d / "class_names.txt").read_text(errors="replace").split()


# ---------------------------------------------------------------- CelebA (JPEGs)

CELEBA_CROP = 148
"""CelebA's aligned faces are 178x218; PyTorch-VAE's recipe takes the central 148x148, then resizes."""


def read_celeba(root: Path, size: int) -> tuple[dict, list[str]] | None:
    """root/celeba/: img_align_celeba/*.jpg and list_eval_partition.txt (0 train, 1 valid, 2 test); no labels.

    Each face is centre-cropped to 148x148 and resized to size x size as it is decoded, so the split
    is held at its final size (202,599 faces at 64x64x3 are 2.5 GB).
    """

    d = root / "celeba"
    parts, folder = d / "list_eval_partition.txt", d / "img_align_celeba"
    if not (parts.is_file() and folder.is_dir()):
        return None
    rows = [line.split() for line in parts.read_text(errors="replace").splitlines() if line.strip()]
    if not rows or any(len(r) != 2 or r[1] not in ("0", "1", "2") for r in rows):
        raise DataError(f"{parts}: expected lines 'FILE.jpg 0|1|2'; replace it with a good copy")
    split = np.array([r[1] for r in rows])
    train, test = np.flatnonzero(split != "2"), np.flatnonzero(split == "2")
    # Decoded train first, then test: each split is then a view of the one array, never a copy of it.
    x = _celeba_cached(folder, [rows[i] for i in np.concatenate([train, test])], size)
    n = len(train)
    return {
        "train": (x[:n], np.full(n, -1, np.int64)),
        "test": (x[n:], np.full(len(test), -1, np.int64)),
    }, []


def _celeba_cached(folder: Path, rows: list[list[str]], size: int) -> np.ndarray:
    """The decoded faces, from the user cache when an earlier run decoded the same files at this size.

    Decoding 202,599 JPEGs takes minutes; the cache (a .npy of 2.5 GB at 64x64) is keyed by the
    folder, the file list and the size, and is written beside nothing but other caches.
    """
    import hashlib

    from udlcli.data.cache import default_cache_dir

    files = "|".join(r[0] for r in rows)  # the list and its order (train first) make the key
    key = hashlib.sha1(f"{folder.resolve()}|{size}|{files}".encode())
    cache = default_cache_dir() / "decoded" / f"celeba-{size}-{key.hexdigest()[:10]}.npy"
    if cache.is_file():
        try:
            x = np.load(cache)
            if x.shape == (len(rows), 3, size, size):
                return x
        except (OSError, ValueError, EOFError):
            pass  # a damaged cache: decode again
    x = _decode_celeba(folder, rows, size)
    tmp = cache.with_suffix(".partial.npy")
    try:
        cache.parent.mkdir(parents=True, exist_ok=True)
        np.save(tmp, x)
        tmp.replace(cache)
    except OSError:  # no room in the cache: the next run decodes again
        tmp.unlink(missing_ok=True)
    return x


def _decode_celeba(folder: Path, rows: list[list[str]], size: int) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    from udlcli import ui

    x = np.empty((len(rows), 3, size, size), np.uint8)
    for i, (name, _) in enumerate(ui.track(rows, f"decoding {len(rows):,} CelebA faces")):
        try:
            with Image.open(folder / name) as im:
                w, h = im.size
                c = min(CELEBA_CROP, w, h)
                box = ((w - c) // 2, (h - c) // 2, (w - c) // 2 + c, (h - c) // 2 + c)
                x[i] = np.asarray(
                    im.convert("RGB").crop(box).resize((size, size), Image.Resampling.BILINEAR)
                ).transpose(2, 0, 1)
        except (FileNotFoundError, UnidentifiedImageError, OSError) as e:
            raise DataError(
                f"{folder / name}: not a readable image ({e.__class__.__name__}); the CelebA folder is incomplete"
            ) from None
    return x
