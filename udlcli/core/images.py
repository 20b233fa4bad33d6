"""Image grids: a batch tiled into one mosaic array (every figure and sample grid), and as PNG files, one PNG each, or a GIF."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont


def to_numpy(images) -> np.ndarray:
    """A tensor or array of images, (B, H, W), (B, 1, H, W) or (B, C, H, W), in [0, 1] -> float32 numpy (B, C, H, W)."""
    a = (
        images.detach().float().cpu().numpy()
        if hasattr(images, "detach")
        else np.asarray(images, dtype=np.float32)
    )
    if a.ndim == 3:
        a = a[:, None]
    return np.clip(a.astype(np.float32, copy=False), 0.0, 1.0)


def grid_shape(n: int, ncol: int | None = None) -> tuple[int, int]:
    """(rows, cols) for n tiles: ncol columns, or the smallest square that holds them."""
    cols = max(1, min(n, ncol)) if ncol else max(1, int(math.ceil(math.sqrt(n))))
    return int(math.ceil(n / cols)), cols


def tile(images, ncol: int | None = None, pad: int = 0, fill: float = 0.0) -> np.ndarray:
    """Tile images into one mosaic, row by row, with `pad` pixels of `fill` around and between them.

    Returns float32 in [0, 1]: (rows*H + (rows+1)*pad, cols*W + (cols+1)*pad) for one channel, with a
    trailing channel axis for several (what matplotlib's imshow and PIL take).
    """
    a = to_numpy(images)  # (B, C, H, W)
    b, c, h, w = a.shape
    rows, cols = grid_shape(b, ncol)
    canvas = np.full(
        (c, rows * h + (rows + 1) * pad, cols * w + (cols + 1) * pad), fill, np.float32
    )
    for i in range(b):
        r, k = divmod(i, cols)
        top, left = pad + r * (h + pad), pad + k * (w + pad)
        canvas[:, top : top + h, left : left + w] = a[i]
    return canvas[0] if c == 1 else canvas.transpose(1, 2, 0)


def tile_origin(i: int, shape: tuple[int, int], ncol: int, pad: int = 0) -> tuple[int, int]:
    """(top, left) pixel of tile i in a mosaic of tiles of shape (H, W) made by tile(..., ncol, pad)."""
    r, k = divmod(i, ncol)
    return pad + r * (shape[0] + pad), pad + k * (shape[1] + pad)


# ---------------------------------------------------------------- PNG and GIF files


def to_pil(image: np.ndarray) -> Image.Image:
    """An image in [0, 1], (H, W) or (H, W, 3), as an 8-bit PIL image ("L" or "RGB")."""
    a = (np.clip(image, 0, 1) * 255).round().astype(np.uint8)
    return Image.fromarray(a, mode="L" if a.ndim == 2 else "RGB")


def grid_image(
    images: torch.Tensor, ncol: int | None = None, scale: int = 2, pad: int = 2, caption: str = ""
) -> Image.Image:
    """Tile images (B, C, H, W) in [0, 1] into one PIL image (grey or colour), optionally with a caption strip on top."""
    out = to_pil(tile(images, ncol, pad=pad, fill=64 / 255))  # dark grey gaps between the images
    if scale > 1:
        out = out.resize((out.width * scale, out.height * scale), Image.NEAREST)
    if caption:
        # Drawn after scaling, in a scalable font: the bitmap default font, enlarged, ran its words together.
        size = 7 * max(scale, 2)
        try:
            font = ImageFont.load_default(size=size)
        except TypeError:  # Pillow < 10.1 has only the bitmap font
            font = ImageFont.load_default()
        grey, white = (64, 255) if out.mode == "L" else ((64, 64, 64), (255, 255, 255))
        strip = Image.new(out.mode, (out.width, size + 6), grey)
        ImageDraw.Draw(strip).text((pad * scale, 2), caption, fill=white, font=font)
        framed = Image.new(out.mode, (out.width, out.height + strip.height), grey)
        framed.paste(strip, (0, 0))
        framed.paste(out, (0, strip.height))
        out = framed
    return out


def save_grid(images: torch.Tensor, path: Path, caption: str = "", ncol: int | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    grid_image(images, ncol=ncol, caption=caption).save(path)
    return path


def save_individual(images: torch.Tensor, folder: Path, prefix: str = "sample") -> list[Path]:
    """One PNG per image (B, C, H, W) in [0, 1], at its size, grey or colour: sample_0000.png, sample_0001.png, ..."""
    folder.mkdir(parents=True, exist_ok=True)
    a = to_numpy(images)
    width = max(4, len(str(len(a) - 1)))
    paths = []
    for i, img in enumerate(a):
        p = folder / f"{prefix}_{i:0{width}d}.png"
        to_pil(img[0] if img.shape[0] == 1 else img.transpose(1, 2, 0)).save(p)
        paths.append(p)
    return paths


def write_gif(
    frames: Sequence[Path], path: Path, ms_per_frame: int = 250, hold_last_ms: int = 1500
) -> Path:
    """An animated GIF of the given PNG frames (one per epoch), looping, the last frame held longer."""
    opened = [Image.open(f) for f in frames]
    mode = "RGB" if any(im.mode != "L" for im in opened) else "L"
    images = [im.convert(mode) for im in opened]
    durations = [ms_per_frame] * (len(images) - 1) + [hold_last_ms]
    images[0].save(
        path, save_all=True, append_images=images[1:], duration=durations, loop=0, optimize=False
    )
    return path
