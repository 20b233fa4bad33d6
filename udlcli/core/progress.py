"""Epoch progress: a live rich bar on a terminal, or one plain line per epoch with --quiet or when piped."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from udlcli import ui


def format_row(row: dict, keys: tuple[str, ...] = ()) -> str:
    """'epoch 3/20  loss 0.02134/0.02091 (train/val)  9,812 img/s  1.2s': the per-epoch line, short enough for 80 columns.

    Every train_<k>/val_<k> pair is printed as one `k train/val` item; other numbers (the GAN's d_loss, ...) as `k v`.
    """
    parts = [f"epoch {row['epoch']}/{row.get('epochs', '?')}"]
    paired = False
    for k, v in row.items():
        if k in ("epoch", "epochs", "time_s", "images_per_s", "lr") or not isinstance(v, float):
            continue
        if k.startswith("train_") and isinstance(row.get("val_" + k[6:]), float):
            parts.append(f"{k[6:]} {v:.4g}/{row['val_' + k[6:]]:.4g}")
            paired = True
        elif k.startswith("val_") and isinstance(row.get("train_" + k[4:]), float):
            continue
        else:
            parts.append(f"{k} {v:.4g}")
    if paired:
        parts[1] += " (train/val)"
    if "images_per_s" in row:
        parts.append(f"{row['images_per_s']:,.0f} img/s")
    if "time_s" in row:
        parts.append(f"{row['time_s']:.1f}s")
    return "  ".join(parts)


class EpochProgress:
    """Shows batches, loss, images/s and ETA for each epoch. Used as a context manager by the trainer."""

    def __init__(self, label: str = "train", loss_name: str = "loss"):
        self.label, self.loss_name = label, loss_name
        self.live = ui.live_enabled()
        self._progress: Progress | None = None
        self._task = None

    def __enter__(self) -> EpochProgress:
        if self.live:
            self._progress = Progress(
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn(self.loss_name + " {task.fields[loss]:.4g}"),
                TextColumn(
                    "{task.fields[extra]}"
                ),  # more live numbers, e.g. the GAN's G loss, D(x), D(G(z))
                TextColumn("{task.fields[ips]:,.0f} img/s"),
                TimeElapsedColumn(),
                TextColumn("eta"),
                TimeRemainingColumn(),
                console=ui.console,
                transient=True,
            )
            self._progress.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        if self._progress is not None:
            self._progress.__exit__(*exc)
            self._progress = None

    def start_epoch(self, epoch: int, epochs: int, n_batches: int) -> None:
        if self._progress is not None:
            if self._task is not None:
                self._progress.remove_task(self._task)
            self._task = self._progress.add_task(
                f"{self.label} {epoch}/{epochs}",
                total=n_batches,
                loss=float("nan"),
                ips=0.0,
                extra="",
            )

    def update(self, done: int, loss: float, ips: float, extra: str = "") -> None:
        if self._progress is not None and self._task is not None:
            self._progress.update(self._task, completed=done, loss=loss, ips=ips, extra=extra)

    def end_epoch(self, row: dict) -> None:
        # One line per epoch in every mode: above the live bar on a terminal, alone with --quiet or in logs.
        ui.console.print(format_row(row))


@contextmanager
def status(msg: str) -> Iterator[None]:
    """A rich spinner on a terminal; one plain line with --quiet or when piped."""
    if ui.live_enabled():
        with ui.console.status(msg):
            yield
    else:
        ui.info(msg)
        yield
