"""The one training loop: every family trains here, through the contracts alone (minGPT's trainer.py is the model).

    Trainer.fit()    for each epoch: the seeded shuffle of the training split, one step per batch
                     (core/steps.py: the trainer's optimiser step for a Trainable, the model's own
                     train_step for an Adversarial one), the schedule (core/optim.py), the EMA of the
                     weights (core/ema.py), the NaN guard, the progress bar; then validation (when
                     there is a validation split), callbacks, last.pt and best.pt
    state()          everything a checkpoint holds (core/state.py), so that a resumed run continues
                     exactly: weights, optimisers, the EMA, the GradScaler, the RNG states, the history

On several ranks (core/distributed.py) each rank trains on its shard of every global batch, the
model draws per-image noise for the global batch (udlcli.rows), epoch numbers are all-reduced,
and rank 0 alone saves and runs the callbacks (core/callbacks.py), inside fork_rng so a figure
never moves the training's random stream.
"""

from __future__ import annotations

import contextlib
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from udlcli.core import distributed, fastpath, state
from udlcli.core.callbacks import Callback, EpochCallback, as_callbacks
from udlcli.core.checkpoint import save_checkpoint
from udlcli.core.contracts import Steps
from udlcli.core.ema import EMA
from udlcli.core.optim import Schedule
from udlcli.core.progress import EpochProgress
from udlcli.core.steps import OwnStep, step_for
from udlcli.errors import DistributedError, Interrupted, TrainingDiverged
from udlcli.rows import Rows

__all__ = ["Callback", "EpochCallback", "Trainer"]


@dataclass
class Trainer:
    model: torch.nn.Module
    cfg: Any
    """The train section (a udlcli.config.TrainConfig)."""
    train_data: Any
    """Batches (x, y) of a split: TensorImages, or features computed once (finetune's FeatureSplit)."""
    val_data: Any | None
    """None: no validation (the GAN); numbers are then logged without a train_ prefix and no best.pt is kept."""
    device: torch.device
    ckpt_dir: Path | None = None
    """Where last.pt / best.pt go; None trains without checkpoints (tuning trials)."""
    extra: dict[str, Any] = field(default_factory=dict)
    """Saved in every checkpoint beside the states (spec, dataset info, model kind)."""
    callbacks: list[Callback | EpochCallback] = field(default_factory=list)
    label: str = "train"
    resume_command: str = "udl train --resume"
    """Named in the Ctrl-C message: how to continue this run."""

    def __post_init__(self) -> None:
        if (
            self.cfg.precision == "auto"
        ):  # built without lifecycle.setup (a tuning trial's head, a test)
            fastpath.resolve(self.cfg, self.device, type(self.model))
        self.model.to(self.device)
        if self.device.type == "cpu":
            # oneDNN runs small convolutions ~1.45x faster with channels_last weights (measured in
            # benchmarks/train_throughput.py); it changes memory layout only, never the maths.
            self.model.to(memory_format=torch.channels_last)
        self.callbacks = as_callbacks(self.callbacks)
        self.world = distributed.world()
        self.extra.setdefault("world_size", self.world.size)
        self.step = step_for(self.model, self.cfg, self.device, self.world.size)
        self.adversarial = isinstance(self.step, OwnStep)
        self.optimizers = self.step.optimizers
        self.schedule = Schedule(self.optimizers, self.cfg)
        self.ema = EMA(self.model, self.cfg.ema) if self.cfg.ema else None
        self.after_step = isinstance(self.model, Steps)
        self.shuffle_gen = torch.Generator().manual_seed(self.cfg.seed)
        self.epoch = 0
        self.history: list[dict] = []
        self.best_val = math.inf
        # Syncing the GPU every batch to read the loss costs throughput; on CPU it is free.
        self.sync_every = 1 if self.device.type == "cpu" else 25

    # ------------------------------------------------------------------ state

    def state(self) -> dict[str, Any]:
        """Everything a checkpoint holds (core/state.py)."""
        return state.capture(self)

    def load_state(self, payload: dict[str, Any]) -> None:
        """Continue from a checkpoint's payload: the same weights, optimisers, average, RNG and history."""
        state.restore(self, payload)

    def save(self, name: str) -> None:
        if self.ckpt_dir is not None and self.world.is_main:
            save_checkpoint(self.ckpt_dir / name, self.state())

    def averaged(self):
        """A context in which the model holds the weights that are scored and sampled (the EMA's, when on)."""
        return self.ema.swapped() if self.ema is not None else contextlib.nullcontext()

    # ------------------------------------------------------------------ loops

    @torch.no_grad()
    def evaluate(self, data, batch_size: int | None = None) -> dict[str, float]:
        """Batch-size-weighted means of every loss term over a split, in eval mode (with the EMA's weights when on)."""
        was_training = self.model.training
        self.model.eval()
        sums: dict[str, torch.Tensor] = {}
        seen = 0
        with self.averaged():
            for x, y in data.batches(batch_size or max(self.cfg.batch_size, 1024)):
                # Each rank scores its rows of the batch; the sums are all-reduced below.
                rows = self._rows(len(x))
                if rows.part is not None:
                    x, y = x[rows.part], y[rows.part]
                if not len(x):
                    continue
                out = self.step.loss(x, y, rows)
                for k, v in out.items():
                    sums[k] = sums.get(k, 0.0) + v.detach().float() * len(x)
                seen += len(x)
        self.model.train(was_training)
        return self._reduced(sums, seen)

    def _rows(self, n_global: int) -> Rows:
        """This rank's rows of a global batch of n (all of them when training alone)."""
        if self.world.size == 1:
            return Rows()
        return Rows(n_global, distributed.shard(n_global))

    def _reduced(self, sums: dict[str, torch.Tensor], weight: float) -> dict[str, float]:
        """sums / weight, both summed over the ranks first (every rank gets the same numbers)."""
        keys = list(sums)  # the same order on every rank: the model's own
        packed = torch.tensor([float(sums[k]) for k in keys] + [float(weight)], dtype=torch.float64)
        if self.world.size > 1:
            packed = distributed.all_sum(packed.to(self.device)).cpu()
        total = max(float(packed[-1]), 1e-12)
        return {k: float(packed[i]) / total for i, k in enumerate(keys)}

    def n_batches(self) -> int:
        n = self.train_data.n_batches(self.cfg.batch_size)
        if self.cfg.drop_last and len(self.train_data) % self.cfg.batch_size:
            n -= 1
        return n

    def fit(self) -> list[dict]:
        """Train from the current epoch up to cfg.epochs; returns the per-epoch history."""
        if self.epoch == 0:
            for cb in self._callbacks():
                with self.rng_kept():
                    cb.on_start(self)
            if self.ckpt_dir is not None:
                self.save(
                    "last.pt"
                )  # an epoch-0 checkpoint, so even an interrupted first epoch can resume
        n_batches = self.n_batches()
        step = self.epoch * n_batches
        with EpochProgress(self.label) as bar:
            for epoch in range(self.epoch + 1, self.cfg.epochs + 1):
                try:
                    bar.start_epoch(epoch, self.cfg.epochs, n_batches)
                    t0 = time.perf_counter()
                    means, seen, step = self._train_epoch(epoch, step, n_batches, bar, t0)
                    self._end_epoch(epoch, means, seen, time.perf_counter() - t0, bar)
                except RuntimeError as e:  # a collective whose peer rank went away
                    err = distributed.link_error(e)
                    if err is None:
                        raise
                    raise DistributedError(
                        f"{err} during epoch {epoch}; {self._kept()}{self._hint()}"
                    ) from None
                except (
                    KeyboardInterrupt
                ):  # the checkpoint is written atomically: the last finished epoch's
                    raise Interrupted(
                        f"interrupted during epoch {epoch}; {self._kept()}{self._hint()}"
                    ) from None
        return self.history

    def _train_epoch(
        self, epoch: int, step: int, n_batches: int, bar: EpochProgress, t0: float
    ) -> tuple[dict, int, int]:
        self.model.train()
        sums: dict[str, torch.Tensor] = {}
        seen = weight = 0
        total = n_batches * self.cfg.epochs
        for i, (x, y) in enumerate(self.train_data.batches(self.cfg.batch_size, self.shuffle_gen)):
            if i >= n_batches:  # drop_last: the short last batch is skipped
                break
            self.schedule.apply(step, total)
            if len(x) < self.world.size:  # a last batch too small to give every rank a row
                step += 1
                continue
            rows = self._rows(len(x))
            if rows.part is not None:
                x, y = x[rows.part], y[rows.part]
            out = self.step(x, y, rows)
            if self.after_step:  # a target network's move (BYOL), a function of the step alone
                self.model.after_step((step + 1) / total)
            if self.ema is not None:
                self.ema.update()
            seen += len(x)
            step += 1
            # A Trainable's numbers are means per image; an adversarial step's are averaged per step,
            # as its per-iteration loss figure shows them.
            w = 1 if self.adversarial else len(x)
            weight += w
            for k, v in out.items():
                sums[k] = sums.get(k, 0.0) + v.detach().float() * w
            if (i + 1) % self.sync_every == 0 or i + 1 == n_batches:
                self._check_finite(out, epoch, i + 1)
                main, rest = _shown(out)
                bar.update(i + 1, main, seen / max(time.perf_counter() - t0, 1e-9), extra=rest)
            for cb in self._callbacks():
                with self.rng_kept():
                    cb.on_step(self, step, out)
        if self.world.size > 1:
            means = self._reduced(sums, weight)
            seen = int(distributed.all_sum(torch.tensor(float(seen), device=self.device)))
            return means, seen, step
        return {k: float(v) / max(weight, 1) for k, v in sums.items()}, seen, step

    def _end_epoch(
        self, epoch: int, means: dict, seen: int, train_time: float, bar: EpochProgress
    ) -> None:
        row: dict[str, Any] = {"epoch": epoch, "epochs": self.cfg.epochs}
        prefix = "" if self.val_data is None else "train_"
        row.update({f"{prefix}{k}": v for k, v in means.items()})
        if self.val_data is not None:
            row.update({f"val_{k}": v for k, v in self.evaluate(self.val_data).items()})
            if not math.isfinite(row["val_loss"]):
                raise TrainingDiverged(
                    f"the validation loss became {row['val_loss']} at epoch {epoch}; {self._kept()} Try a lower --lr"
                )
        for cb in self._callbacks():
            with self.rng_kept():
                cb.on_epoch(self, row)
        row["time_s"] = train_time
        row["images_per_s"] = seen / max(train_time, 1e-9)
        # The in-memory state advances only together with the checkpoint, so an interrupt leaves both at the same epoch.
        self.epoch = epoch
        self.history.append(row)
        is_best = "val_loss" in row and row["val_loss"] < self.best_val
        if is_best:
            self.best_val = row["val_loss"]
        self.save("last.pt")
        if is_best:
            self.save("best.pt")
        bar.end_epoch(row)
        for cb in self._callbacks():
            with self.rng_kept():
                cb.on_saved(self, row)

    def end(self, summary: dict) -> dict:
        """Every callback's on_end (rank 0): final figures, and the keys they add to the summary."""
        for cb in self._callbacks():
            with self.rng_kept():
                cb.on_end(self, summary)
        return summary

    def rng_kept(self):
        """Callbacks draw (a DAE's figure noise) without moving training's random stream: the ranks
        that run none stay in step with rank 0, and a figure never changes the weights."""
        cuda = [torch.cuda.current_device()] if self.device.type == "cuda" else []
        return torch.random.fork_rng(devices=cuda)

    def _callbacks(self) -> list[Callback]:
        """The callbacks this rank runs: all of them on rank 0 (or alone), none on the others."""
        return self.callbacks if self.world.is_main else []

    def _check_finite(self, out: dict[str, torch.Tensor], epoch: int, batch: int) -> None:
        bad = {k: float(v.detach()) for k, v in out.items() if not math.isfinite(float(v.detach()))}
        if bad:
            what = (
                str(bad["loss"])
                if list(bad) == ["loss"]
                else ", ".join(f"{k}={v}" for k, v in bad.items())
            )
            raise TrainingDiverged(
                f"the loss became {what} at epoch {epoch}, batch {batch}; {self._kept()} Try a lower learning rate (--lr) or another optimiser"
            )

    def _hint(self) -> str:
        return (
            f" Resume with: {self.resume_command} {self.ckpt_dir.parent}" if self.ckpt_dir else ""
        )

    def _kept(self) -> str:
        if self.ckpt_dir is None:
            return "no checkpoint is kept for this run."
        return (
            f"the last good checkpoint (epoch {self.epoch}) is kept in {self.ckpt_dir / 'last.pt'}."
        )


def _shown(out: dict[str, torch.Tensor]) -> tuple[float, str]:
    """The bar's main number ("loss", else the first) and the others as text."""
    main = "loss" if "loss" in out else next(iter(out))
    rest = "  ".join(f"{k} {float(v.detach()):.3g}" for k, v in out.items() if k != main)
    return float(out[main].detach()), rest
