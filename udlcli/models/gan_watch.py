"""What a GAN run shows and checks besides its samples: the per-iteration losses (the report's Fig. 7) and failure detectors.

    IterationLog   every iteration's D loss, G loss, D(x), D(G(z)), for the loss figure
    FailureWatch   the discriminator-wins and mode-collapse detectors after every epoch, warned once each
                   (mode collapse reads the row's `diversity`, which the sample grids of every generator add)
    GanOutputs     at the end: figures/losses.png and the summary's GAN keys (arch, final numbers, failures)

Each keeps its state in the checkpoint, so --resume continues exactly (see core/callbacks.py).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from pydantic import Field

from udlcli import ui
from udlcli.config import Strict
from udlcli.core.callbacks import Callback

EQUILIBRIUM_G = math.log(2)  # G loss when D(G(z)) = 1/2
EQUILIBRIUM_D = 2 * math.log(2)  # D loss (real + fake terms) when D outputs 1/2 everywhere


class GanChecks(Strict):
    """Failure detection after every epoch (see udlcli/tasks/gan/outputs.py and docs/gan.md)."""

    patience: int = Field(3, ge=1, le=1000)
    """Epochs in a row a symptom must last before it is reported."""
    d_loss_floor: float = Field(0.05, gt=0.0)
    """D loss below this (with G loss climbing) means the discriminator has won."""
    collapse_ratio: float = Field(0.25, gt=0.0, lt=1.0)
    """Mode collapse when the fixed batch's mean pairwise distance is below this fraction of real images'."""


class IterationLog(Callback):
    """Per-iteration numbers (N, 4): D loss, G loss, D(x), D(G(z)); synced to the CPU once an epoch."""

    name = "iterations"
    KEYS = ("d_loss", "g_loss", "d_real", "d_fake")

    def __init__(self) -> None:
        self.iters = torch.zeros(0, 4)
        self._epoch: list[torch.Tensor] = []

    def on_step(self, trainer, step: int, out: dict) -> None:
        self._epoch.append(torch.stack([out[k] for k in self.KEYS]))

    def on_epoch(self, trainer, row: dict) -> None:
        self.iters = torch.cat(
            [self.iters, torch.stack(self._epoch).float().cpu()]
        )  # (n_batches, 4): one sync
        self._epoch = []

    def state_dict(self) -> dict:
        return {"iters": self.iters}

    def load_state_dict(self, state: dict) -> None:
        self.iters = state["iters"]


class FailureWatch(Callback):
    """Both failure detectors on the history after every epoch; each kind is warned once and kept for summary.json."""

    name = "failures"

    def __init__(self, checks):
        self.checks, self.failures = checks, {}

    def on_epoch(self, trainer, row: dict) -> None:
        history, c = trainer.history + [row], self.checks
        for found in (
            detect_d_wins(history, c.patience, c.d_loss_floor),
            detect_collapse(history, c.patience, c.collapse_ratio),
        ):
            if found is not None and found.kind not in self.failures:
                self.failures[found.kind] = {"epoch": found.epoch, "message": found.message}
                ui.warn(f"epoch {found.epoch}: {found.message}")

    def state_dict(self) -> dict:
        return dict(self.failures)

    def load_state_dict(self, state: dict) -> None:
        self.failures = dict(state)


class GanOutputs(Callback):
    """At the end of training: the loss figure (Fig. 7) and the GAN's keys of summary.json."""

    def __init__(self, log: IterationLog, watch: FailureWatch, run_dir):
        self.log, self.watch, self.run_dir = log, watch, run_dir

    def on_end(self, trainer, summary: dict) -> None:
        h, model = trainer.history, trainer.model
        if h:
            loss_figure(
                self.log.iters[:, :2].numpy(),
                [trainer.n_batches() * (i + 1) for i in range(len(h))],
                self.run_dir / "figures" / "losses.png",
                title=f"{self.run_dir.name}: GAN losses ({model.arch}, {len(h)} epochs)",
            )
        keys = ("d_loss", "g_loss", "d_real", "d_fake", "diversity")
        summary.update(
            arch=model.arch,
            final={k: h[-1][k] for k in keys if k in h[-1]} if h else {},
            failure_detected=bool(self.watch.failures),
            failures=self.watch.failures,
            params={
                "G": sum(p.numel() for p in model.G.parameters()),
                "D": sum(p.numel() for p in model.D.parameters()),
            },
        )


def gan_callbacks(ctx) -> list[Callback]:
    """The GAN family's callbacks (registry.Family.callbacks): ctx is core.lifecycle.FitContext."""
    log, watch = IterationLog(), FailureWatch(ctx.spec.checks)
    return [log, watch, GanOutputs(log, watch, ctx.run_dir)]


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


# ---------------------------------------------------------------- failure detection


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
