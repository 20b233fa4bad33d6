"""Figures (matplotlib, headless): loss curves and image grids written as PNG files."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib
import matplotlib.ticker

matplotlib.use("Agg")  # no display needed; must precede pyplot
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def save_figure(fig, path: Path) -> Path:
    """Write a figure as PNG (folders made, 120 dpi, tight box) and close it: every figure of udl goes through here."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)
    return path


def _np_images(images) -> np.ndarray:
    """Tensor or array (B, C, H, W) or (B, H, W) in [0, 1] -> numpy (B, H, W) for one channel, (B, H, W, C) for more."""
    from udlcli.core.images import to_numpy

    a = to_numpy(images)
    return a[:, 0] if a.shape[1] == 1 else a.transpose(0, 2, 3, 1)


def show(ax, image: np.ndarray, **kwargs) -> None:
    """imshow of an image in [0, 1]: (H, W) in grey, (H, W, 3) in colour."""
    if image.ndim == 2:
        ax.imshow(image, cmap="gray", vmin=0, vmax=1, **kwargs)
    else:
        ax.imshow(np.clip(image, 0, 1), **kwargs)


def loss_curves(
    history: Sequence[dict],
    path: Path,
    keys: Sequence[str] = ("loss",),
    title: str = "",
    ylabel: str = "loss",
    log: bool = False,
) -> Path:
    """Train and validation curves per epoch, one panel per loss term (the report's Fig. 1)."""
    epochs = [r["epoch"] for r in history]
    fig, axes = plt.subplots(1, len(keys), figsize=(5.5 * len(keys), 4), squeeze=False)
    for ax, key in zip(axes[0], keys):
        for split, style in (("train", "-o"), ("val", "-s")):
            col = f"{split}_{key}"
            vals = [r.get(col) for r in history]
            if any(v is not None for v in vals):
                ax.plot(
                    epochs, vals, style, ms=3, label=f"{'validation' if split == 'val' else split}"
                )
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
        ax.set_ylabel(ylabel if len(keys) == 1 else key)
        if log:
            ax.set_yscale("log")
        ax.grid(alpha=0.3)
        ax.legend()
        ax.set_title(title if len(keys) == 1 else f"{title} {key}".strip())
    return save_figure(fig, path)


def image_grid(
    images,
    path: Path,
    nrow: int | None = None,
    title: str = "",
    labels: Sequence[str] | None = None,
) -> Path:
    """A grid of images (B, 1, H, W) in [0, 1] as one mosaic, with optional per-image captions above each tile."""
    from udlcli.core.images import grid_shape, tile, tile_origin, to_numpy

    a = to_numpy(images)
    n, h, w = len(a), a.shape[2], a.shape[3]
    rows, cols = grid_shape(n, nrow)
    pad = 2 + (9 if labels else 0)  # room above each tile for its caption
    mosaic = tile(a, cols, pad=pad, fill=1.0)
    scale = 0.9 / w  # inches per pixel: a 28-pixel tile is 0.9 in, as before
    fig, ax = plt.subplots(
        figsize=(mosaic.shape[1] * scale, mosaic.shape[0] * scale + (0.35 if title else 0))
    )
    show(ax, mosaic, interpolation="nearest")
    ax.axis("off")
    for i, lab in enumerate(labels or []):
        top, left = tile_origin(i, (h, w), cols, pad)
        ax.text(left + w / 2, top - 1, lab, ha="center", va="bottom", fontsize=7)
    if title:
        ax.set_title(title)
    return save_figure(fig, path)


def image_rows(
    rows: Sequence,
    row_labels: Sequence[str],
    path: Path,
    title: str = "",
    col_labels: Sequence[str] | None = None,
) -> Path:
    """Rows of images with a label at the left of each row (originals vs reconstructions, progress, noise).

    One mosaic in one axes, the labels as text beside it: a grid of rows x columns axes drew the
    same picture about ten times slower (matplotlib lays out every axes).
    """
    from udlcli.core.images import tile

    rows = [_np_images(r) for r in rows]
    ncol = max(len(r) for r in rows)
    h, w = rows[0].shape[1:3]
    pad = max(1, h // 14)
    blank = np.ones((ncol, *rows[0].shape[1:]), np.float32)  # white where a row is shorter
    filled = [np.concatenate([r, blank[len(r) :]]) for r in rows]
    stacked = np.concatenate(filled)
    mosaic = tile(
        stacked if stacked.ndim == 3 else stacked.transpose(0, 3, 1, 2), ncol, pad=pad, fill=1.0
    )
    width = ncol * 0.95 + 1.2  # inches, as the grid of axes was
    fig, ax = plt.subplots(figsize=(width, width * mosaic.shape[0] / mosaic.shape[1] + 0.4))
    show(ax, mosaic)
    ax.set_axis_off()
    for r, lab in enumerate(row_labels):
        ax.text(-pad, pad + r * (h + pad) + h / 2, lab, ha="right", va="center", fontsize=8)
    for c, lab in enumerate(col_labels or []):
        ax.text(pad + c * (w + pad) + w / 2, 0, lab, ha="center", va="bottom", fontsize=8)
    if title:
        ax.set_title(title, pad=16 if col_labels else 6)
    return save_figure(fig, path)


def confusion(cm, classes: Sequence[str], path: Path, title: str = "") -> Path:
    """A row-normalised confusion matrix (rows: true class, columns: predicted), each cell's share printed."""
    cm = np.asarray(cm, dtype=float)
    k = len(classes)
    fig, ax = plt.subplots(figsize=(0.55 * k + 2.5, 0.55 * k + 2))
    im = ax.imshow(cm, cmap="Blues", vmin=0, vmax=1)
    for i in range(k):
        for j in range(k):
            if cm[i, j] >= 0.005 or i == j:  # hide the many zero cells so the mistakes stand out
                ax.text(
                    j,
                    i,
                    f"{cm[i, j]:.2f}",
                    ha="center",
                    va="center",
                    fontsize=7,
                    color="white" if cm[i, j] > 0.5 else "black",
                )
    ax.set_xticks(range(k), classes, rotation=45 if max(len(c) for c in classes) > 2 else 0)
    ax.set_yticks(range(k), classes)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    fig.colorbar(im, ax=ax, fraction=0.046)
    if title:
        ax.set_title(title, fontsize=9)
    return save_figure(fig, path)


def scatter_labels(
    xy,
    labels,
    classes: Sequence[str],
    path: Path,
    title: str = "",
    xlabel: str = "",
    ylabel: str = "",
) -> Path:
    """2-D points (N, 2) coloured by integer label, with a legend of class names (the report's Figs. 3 and 11)."""
    xy, labels = np.asarray(xy), np.asarray(labels)
    fig, ax = plt.subplots(figsize=(7.5, 6.5))
    cmap = plt.get_cmap("tab10" if len(classes) <= 10 else "tab20")
    size = max(1.0, min(12.0, 20000 / max(len(xy), 1)))  # smaller dots for more points
    for c in np.unique(labels):
        m = labels == c
        name = classes[c] if 0 <= c < len(classes) else "unlabeled"
        ax.scatter(
            xy[m, 0],
            xy[m, 1],
            s=size,
            color=cmap(int(c) % cmap.N) if c >= 0 else "grey",
            label=name,
            alpha=0.7,
            linewidths=0,
        )
    ax.legend(
        markerscale=max(1.0, 20 / size) ** 0.5,
        fontsize=8,
        loc="center left",
        bbox_to_anchor=(1.0, 0.5),
        frameon=False,
    )
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title, fontsize=9)
    return save_figure(fig, path)
