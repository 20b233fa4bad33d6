"""Image files: one image read at a given shape, and a folder of them as a dataset (sub-folders are classes).

A folder's colour is detected: it is "rgb" when any of its images has colour (channels that differ),
else "gray". Its size is kept when every image has the same one within udl's 28-64 pixels; any other
folder is resized, to 28x28 unless an image size is asked for. The caller says what was done.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from udlcli.config import MAX_SIZE, MIN_SIZE
from udlcli.errors import DataError

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".pgm"}
DEFAULT_SIZE = 28
"""The size a folder of mixed or out-of-range image sizes is resized to when no --image-size is given."""


def list_images(folder: Path) -> list[Path]:
    return sorted(
        p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
    )


def read_image(
    path: Path, size: int | tuple[int, int] = 28, channels: int = 1
) -> tuple[np.ndarray, bool]:
    """One image as uint8 (channels, H, W) at size (an int for a square); returns (pixels, was_resized)."""
    from PIL import Image, UnidentifiedImageError

    hw = (size, size) if isinstance(size, int) else tuple(size)
    try:
        with Image.open(path) as im:
            g = im.convert("L" if channels == 1 else "RGB") if im.mode not in WIDE else _to_8bit(im)
            if g.mode != ("L" if channels == 1 else "RGB"):
                g = g.convert("L" if channels == 1 else "RGB")
            resized = g.size != (hw[1], hw[0])
            if resized:
                g = g.resize((hw[1], hw[0]), Image.Resampling.BILINEAR)
            a = np.asarray(g, dtype=np.uint8)
    except (UnidentifiedImageError, Image.DecompressionBombError, OSError, ValueError) as e:
        raise DataError(
            f"{path}: not a readable image ({e.__class__.__name__}); remove it or convert it to PNG"
        ) from None
    return (a[None] if a.ndim == 2 else a.transpose(2, 0, 1)).copy(), resized


WIDE = ("I;16", "I;16B", "I;16L", "I", "F")
"""Gray modes of more than 8 bits (16-bit PNG and TIFF scans): PIL's convert("L") would clip them."""


def _to_8bit(im):
    """A 16-bit or float gray image scaled to 8 bits: 16-bit data by 65535 (8-bit data stored wide by 255)."""
    from PIL import Image

    a = np.asarray(im, dtype=np.float64)
    top = 65535.0 if a.max(initial=0) > 255 else 255.0
    return Image.fromarray(np.clip(np.rint(a / top * 255.0), 0, 255).astype(np.uint8), "L")


def probe(path: Path, check_colour: bool = True) -> tuple[tuple[int, int], bool]:
    """((width, height), has colour) of an image file, reading as little as it can.

    Telling colour from gray stored as RGB means decoding the pixels; check_colour=False reads the
    header only (and says False), for when the answer is already known.
    """
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            size, mode = im.size, im.mode
            if mode in ("L", "1", "I", "I;16", "F", "LA") or not check_colour:
                return size, False
            rgb = np.asarray(im.convert("RGB"), np.int16)
    except (UnidentifiedImageError, Image.DecompressionBombError, OSError, ValueError) as e:
        raise DataError(
            f"{path}: not a readable image ({e.__class__.__name__}); remove it or convert it to PNG"
        ) from None
    # PNGs written by matplotlib are RGBA even for gray images: colour means channels that differ.
    return size, bool((np.abs(rgb - rgb[..., :1]) > 1).any())


@dataclass
class Folder:
    arrays: dict
    """{"train": (x uint8 (N, C, H, W), y int64), "test": ...}"""
    classes: list[str]
    color: str
    """"gray" or "rgb": as asked, or as detected."""
    detected: str
    size: tuple[int, int]
    """The (H, W) every image now has."""
    resized: int
    """How many images were resized to it."""


def load_folder(
    folder: Path, image_size: int | None = None, color: str | None = None, seed: int = 0
) -> Folder:
    """Images under folder; sub-folder names are class labels when present (else label -1).

    If folder has train/ and test/ sub-folders they are used as the splits; otherwise a seeded
    1/7 of the images (MNIST's 10k of 70k) is held out as the test split.
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
    sizes, colour = set(), False
    for f in (f for fs in file_sets.values() for f in fs):
        (w, h), c = probe(f, check_colour=not colour)  # once one image has colour, headers suffice
        sizes.add((h, w))
        colour = colour or c
    detected = "rgb" if colour else "gray"
    if image_size is not None:
        hw = (image_size, image_size)
    elif len(sizes) == 1 and all(MIN_SIZE <= s <= MAX_SIZE for s in next(iter(sizes))):
        hw = next(iter(sizes))
    else:
        hw = (DEFAULT_SIZE, DEFAULT_SIZE)
    mode = color or detected
    # Labels: the first path part under the split root, when images sit in sub-folders.
    parts_of = {s: [f.relative_to(base[s]).parts for f in fs] for s, fs in file_sets.items()}
    class_names = sorted({p[0] for ps in parts_of.values() for p in ps if len(p) > 1})
    label_of = {c: i for i, c in enumerate(class_names)}
    resized, arrays = 0, {}
    for s, files in file_sets.items():
        xs, ys = [], []
        for f, parts in zip(files, parts_of[s]):
            px, r = read_image(f, hw, 3 if mode == "rgb" else 1)
            resized += r
            xs.append(px)
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
    return Folder(arrays, class_names, mode, detected, hw, resized)
