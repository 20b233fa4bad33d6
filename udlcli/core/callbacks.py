"""Trainer callbacks: what a command or a family adds to the one training loop (figures, logs, pruning, checks).

    on_start(trainer)               before the first epoch of a new run (not of a resumed one)
    on_step(trainer, step, out)     after each optimiser step (global step count, the step's numbers)
    on_epoch(trainer, row)          after an epoch's training and validation, before its checkpoint;
                                    may add numbers to the row (they are checkpointed with it)
    on_saved(trainer, row)          after the epoch's checkpoint: files that follow it; may raise to stop
    on_end(trainer, summary)        once training stops (finished, interrupted or diverged), before
                                    summary.json is written: final figures, and keys for the summary

A callback with a `name` keeps state_dict() in every checkpoint, so a resumed run continues it. In a
job of several ranks callbacks run on rank 0 only (they write the run folder), inside
torch.random.fork_rng, so they never move the training's random stream.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

EpochCallback = Callable[[int, dict], None]
"""A plain function called after each epoch's checkpoint with (epoch, metrics row); may raise to stop."""


class Callback:
    """Hooks into Trainer.fit; override what is needed."""

    name: str = ""

    def on_start(self, trainer: Any) -> None:
        """Before the first epoch of a new run: a picture of the untrained model."""

    def on_step(self, trainer: Any, step: int, out: dict) -> None:
        """After each optimiser step."""

    def on_epoch(self, trainer: Any, row: dict) -> None:
        """After an epoch's training and validation, before its checkpoint."""

    def on_saved(self, trainer: Any, row: dict) -> None:
        """After the epoch's checkpoint."""

    def on_end(self, trainer: Any, summary: dict) -> None:
        """Once training stops, before summary.json: final figures and summary keys."""

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass


class AfterEpoch(Callback):
    """A plain function (epoch, row) as a callback run after each checkpoint."""

    def __init__(self, fn: EpochCallback):
        self.fn = fn

    def on_saved(self, trainer: Any, row: dict) -> None:
        self.fn(row["epoch"], row)


class MetricsCSV(Callback):
    """metrics.csv rewritten from the trainer's history after every epoch's checkpoint, so the two always agree."""

    def __init__(self, run_dir: Path):
        self.run_dir = run_dir

    def on_saved(self, trainer: Any, row: dict) -> None:
        from udlcli.core import runs

        runs.write_metrics(self.run_dir, trainer.history)


def as_callbacks(items: list) -> list[Callback]:
    """Callbacks as given, plain functions wrapped as AfterEpoch."""
    return [cb if isinstance(cb, Callback) else AfterEpoch(cb) for cb in items]
