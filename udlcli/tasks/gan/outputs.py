"""What a GAN run shows and checks: sample grids, the progress GIF, the loss figure (Fig. 7), summary.json and failure detectors."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

from udlcli.core import runs
from udlcli.core.device import describe
from udlcli.core.images import tile

EQUILIBRIUM_G = math.log(2)  # G loss when D(G(z)) = 1/2
EQUILIBRIUM_D = 2 * math.log(2)  # D loss (real + fake terms) when D outputs 1/2 everywhere

# ---------------------------------------------------------------- images


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
    from udlcli.core.images import to_numpy

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


# ---------------------------------------------------------------- Fig. 7


def _moving_average(v: np.ndarray, window: int) -> np.ndarray:
    """Trailing mean over `window` iterations (shorter at the start), so the curve has no lag-free look-ahead."""
    c = np.cumsum(np.insert(v, 0, 0.0))
    idx = np.arange(1, len(v) + 1)
    lo = np.maximum(idx - window, 0)
    return (c[idx] - c[lo]) / (idx - lo)


def loss_figure(iters: np.ndarray, epoch_ends: Sequence[int], path: Path, title: str = "") -> Path:
    """G and D loss per iteration (faint), smoothed, and per-epoch means (markers): the report's Fig. 7.

    iters: (N, 2) array of [D loss, G loss] per iteration; epoch_ends: iteration count at each epoch's end.
    """
    from udlcli.plots import plt, save_figure

    fig, ax = plt.subplots(figsize=(8, 4.2))
    x = np.arange(1, len(iters) + 1)
    window = max(5, min(200, len(iters) // 40))
    starts = [0, *epoch_ends[:-1]]
    for col, name, color, eq in (
        (1, "G", "tab:blue", EQUILIBRIUM_G),
        (0, "D", "tab:orange", EQUILIBRIUM_D),
    ):
        v = iters[:, col]
        ax.plot(x, v, color=color, alpha=0.15, lw=0.6)
        ax.plot(
            x,
            _moving_average(v, window),
            color=color,
            lw=1.6,
            label=f"{name} loss (mean of last {window} iterations)",
        )
        means = [v[s:e].mean() for s, e in zip(starts, epoch_ends) if e > s]
        ax.plot(
            [e for s, e in zip(starts, epoch_ends) if e > s],
            means,
            "o",
            color=color,
            ms=3.5,
            mec="k",
            mew=0.4,
            label=f"{name} loss, epoch mean",
        )
        ax.axhline(eq, color=color, ls=":", lw=1)
    ax.set_xlabel("iteration (dotted: the equilibrium values ln 2 for G, 2 ln 2 for D)")
    ax.set_ylabel("binary cross-entropy")
    ax.set_title(title or "GAN losses: generator and discriminator")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return save_figure(fig, path)


# ---------------------------------------------------------------- the run folder's figures and summary


def write_outputs(
    run_dir: Path,
    spec,
    model,
    history: list[dict],
    iters: torch.Tensor,
    n_batches: int,
    failures: dict,
    data_info: dict,
    device: torch.device,
    wall: float,
    status: str,
) -> dict:
    """Loss figure, progress GIF, final samples and summary.json of a GAN run, from whatever epochs are done.

    model is the GAN (its G and to_pixels); iters the per-iteration [D loss, G loss, D(x), D(G(z))] (N, 4).
    """
    from udlcli.core.lifecycle import timing

    h = history
    if h:
        loss_figure(
            iters[:, :2].numpy(),
            [n_batches * (i + 1) for i in range(len(h))],
            run_dir / "figures" / "losses.png",
            title=f"{run_dir.name}: GAN losses ({spec.model.arch}, {len(h)} epochs)",
        )
    frames = sorted((run_dir / "samples").glob("epoch_*.png"))
    if frames:
        write_gif(frames, run_dir / "samples" / "progress.gif")
    z = torch.randn(
        100, spec.model.noise_dim, generator=torch.Generator().manual_seed(spec.train.seed + 3)
    )
    model.G.eval()
    with torch.no_grad():
        final = model.to_pixels(model.G(z.to(device))).cpu()
    model.G.train()
    epochs = h[-1]["epoch"] if h else 0
    save_grid(
        final,
        run_dir / "figures" / "final_samples.png",
        caption=f"100 samples after {epochs} epoch{'s' if epochs != 1 else ''}",
        ncol=10,
    )
    summary = {
        "model": "gan",
        "arch": spec.model.arch,
        "status": status,
        "epochs": epochs,
        "final": {k: h[-1][k] for k in ("d_loss", "g_loss", "d_real", "d_fake", "diversity")}
        if h
        else {},
        "failure_detected": bool(failures),
        "failures": failures,
        **timing(h, wall),
        "dataset": data_info,
        "device": describe(device),
        "params": {
            "G": sum(p.numel() for p in model.G.parameters()),
            "D": sum(p.numel() for p in model.D.parameters()),
        },
    }
    runs.write_json(run_dir / "summary.json", summary)
    return summary


# ---------------------------------------------------------------- failure detection


def mean_pairwise_distance(images: torch.Tensor) -> float:
    """Mean RMS pixel distance over all pairs of images (B, C, H, W) in [0, 1]; 0 when all are identical."""
    flat = images.detach().float().reshape(len(images), -1).cpu()
    d = torch.cdist(flat, flat) / math.sqrt(flat.shape[1])  # (B, B) RMS distances
    n = len(flat)
    return float(d.sum() / (n * (n - 1))) if n > 1 else 0.0


@dataclass
class Failure:
    kind: str
    """'d_wins' or 'mode_collapse'."""
    epoch: int
    """The epoch at which it was detected."""
    message: str
    """What was seen and what to try, for the warning and summary.json."""


def detect_d_wins(history: Sequence[dict], patience: int, floor: float) -> Failure | None:
    """D loss below `floor` for `patience` epochs in a row while G loss rose over them: D won and G learns nothing."""
    for end in range(patience, len(history) + 1):
        win = history[end - patience : end]
        if all(r["d_loss"] < floor for r in win) and win[-1]["g_loss"] > win[0]["g_loss"]:
            return Failure(
                "d_wins",
                win[-1]["epoch"],
                f"the discriminator won: D loss stayed below {floor} for epochs {win[0]['epoch']}-{win[-1]['epoch']} "
                f"while G loss climbed from {win[0]['g_loss']:.3g} to {win[-1]['g_loss']:.3g}, so G gets no useful gradient. "
                "Try one-sided label smoothing (--set train.label_smoothing=0.1), a lower discriminator learning rate "
                "(--set train.lr_d=1e-4), or check that images are normalised to [-1, 1] (data.mean=data.std=0.5)",
            )
    return None


def detect_collapse(history: Sequence[dict], patience: int, ratio: float) -> Failure | None:
    """The fixed batch's diversity (relative to real images) below `ratio` for `patience` epochs in a row: mode collapse."""
    for end in range(patience, len(history) + 1):
        win = history[end - patience : end]
        if all(r["diversity"] < ratio for r in win):
            return Failure(
                "mode_collapse",
                win[-1]["epoch"],
                f"mode collapse: the fixed noise batch gives nearly identical samples (mean pairwise distance "
                f"{win[-1]['diversity']:.2f}x that of real images, below {ratio}) for epochs {win[0]['epoch']}-{win[-1]['epoch']}. "
                "Restart with another --seed, a lower --lr (1e-4), one-sided label smoothing (--set train.label_smoothing=0.1), "
                "or --arch dcgan",
            )
    return None
