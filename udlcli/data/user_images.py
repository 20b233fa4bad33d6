"""A user's own image files as a batch a run's model takes: its channels and size (grayscale 28x28 for MNIST).

    from udlcli.data.user_images import load_user_images
    imgs = load_user_images(["scan.png", "digits/*.jpg"])   # files, folders or glob patterns; shape=(C, H, W)
    imgs.x          # float32 tensor (N, C, H, W) in [0, 1], ready for an encoder
    imgs.paths      # the file each row came from, in order
    imgs.sizes      # each file's original (width, height)
    imgs.resized    # per image: it was not 28x28 and was resized
    imgs.inverted   # per image: it was dark-on-light and was inverted
    imgs.notes      # lines for the user, e.g. "3 images resized to 28x28"

Rules: every image is converted to the run's colour (grayscale or RGB) and resized (bilinear) to
its size if it is not already. For a run on white-on-black data (the MNIST family), a scan or a
drawing is usually black on white, so an image whose mean brightness is above 0.5 is inverted;
colour images, and gray ones for other data (photos converted with --color gray), never are. Anything that goes wrong (no such
file, a pattern that matches nothing, a file that is not a readable image) is a one-line
`DataError` naming the file, raised before any work is done on the batch.
"""

from __future__ import annotations

import glob
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from udlcli.data.folders import list_images, read_image
from udlcli.errors import DataError

SIZE = 28
INVERT_ABOVE = 0.5
"""Mean brightness in [0, 1] above which an image is taken to be dark-on-light and inverted."""


@dataclass
class UserImages:
    """A batch of user images, prepared like MNIST digits; see the module docstring."""

    x: torch.Tensor
    """float32 (N, C, H, W) in [0, 1]: white digit on a black background."""
    paths: list[Path]
    sizes: list[tuple[int, int]]
    """Original (width, height) of each file."""
    resized: list[bool]
    inverted: list[bool]
    notes: list[str] = field(default_factory=list)
    """What was done to the images, one line each, for the command to print."""

    def __len__(self) -> int:
        return len(self.paths)


def expand_paths(paths: Iterable[str | Path]) -> list[Path]:
    """Files as given, folders as the images inside them, and glob patterns (for shells that don't expand them)."""
    out: list[Path] = []
    for raw in paths:
        p = Path(raw).expanduser()
        if p.is_file():
            out.append(p)
        elif p.is_dir():
            found = list_images(p)
            if not found:
                raise DataError(
                    f"{p}: folder holds no image files; give image files (PNG, JPEG, ...) or a folder of them"
                )
            out.extend(found)
        elif glob.has_magic(str(raw)):
            found = sorted(Path(f) for f in glob.glob(str(p), recursive=True) if Path(f).is_file())
            if not found:
                raise DataError(
                    f"{raw}: the pattern matches no file; check the path and the pattern"
                )
            out.extend(found)
        else:
            raise DataError(
                f"{p}: no such file or folder; give image files (PNG, JPEG, ...) or a folder of them"
            )
    if not out:
        raise DataError("no image given; pass one or more image files, folders or patterns")
    return list(dict.fromkeys(out))  # a file named twice is classified once


def _original_size(path: Path) -> tuple[int, int]:
    from PIL import Image

    with Image.open(path) as im:  # reads the header only; read_image has already checked the file
        return im.size


def load_user_images(
    paths: Iterable[str | Path],
    shape: tuple[int, int, int] = (1, SIZE, SIZE),
    invert_dark_on_light: bool = True,
) -> UserImages:
    """Read, convert, resize and (one channel, dark-on-light) invert the given images; see the module docstring.

    invert_dark_on_light: the run's data is white on black (the MNIST family: sources.light_on_dark).
    """
    c, h, w = shape
    files = expand_paths(paths)
    pixels, sizes, resized = [], [], []
    for f in files:
        px, was_resized = read_image(
            f, (h, w), c
        )  # uint8 (C, H, W); DataError naming f if unreadable
        pixels.append(px)
        resized.append(bool(was_resized))
        sizes.append(_original_size(f))
    x = torch.from_numpy(np.stack(pixels)).float().div_(255.0)  # (N, C, H, W)
    if c == 1 and invert_dark_on_light:
        inverted_t = x.mean(dim=(1, 2, 3)) > INVERT_ABOVE  # (N,)
        x = torch.where(inverted_t[:, None, None, None], 1.0 - x, x)
    else:
        inverted_t = torch.zeros(len(x), dtype=torch.bool)
    inverted = [bool(v) for v in inverted_t]
    notes = []
    if any(resized):
        n = sum(resized)
        notes.append(f"{n} image{'s' if n != 1 else ''} resized to {h}x{w}, the run's size")
    if any(inverted):
        n = sum(inverted)
        notes.append(
            f"{n} image{'s were' if n != 1 else ' was'} dark-on-light and {'were' if n != 1 else 'was'} inverted (MNIST digits are white on black)"
        )
    return UserImages(x.contiguous(), files, sizes, resized, inverted, notes)
