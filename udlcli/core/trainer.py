"""One trainer for every model that follows the loss contract (AE, DAE, VAE, classifier).

The contract, all the trainer knows of a model:

    model.loss(x, y) -> dict[str, Tensor]
        x: images in [0, 1], shape (B, 1, 28, 28), on the device; y: labels (B,)
        every value a scalar averaged over the batch; "loss" is the one minimised.
        Other keys (e.g. "recon", "kl", "acc") are logged as train_<key> / val_<key>.

    model.param_groups(train_config) -> list[dict]     (optional)
        optimiser parameter groups, e.g. a separate learning rate for a fine-tuned encoder.

Checkpoints hold model, optimiser, epoch, history and RNG states, and are written atomically
at the end of every epoch, so a run killed at any moment resumes from its last completed epoch.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch

from udlcli.config import TrainConfig
from udlcli.data import TensorImages
from udlcli.core.checkpoint import save_checkpoint
from udlcli.core.progress import EpochProgress
from udlcli.errors import Interrupted, TrainingDiverged

EpochCallback = Callable[[int, dict], None]
StepCallback = Callable[[int, torch.nn.Module], None]

OPTIMIZERS = {
    "adam": lambda params, c: torch.optim.Adam(params, lr=c.lr, weight_decay=c.weight_decay),
    "sgd": lambda params, c: torch.optim.SGD(params, lr=c.lr, weight_decay=c.weight_decay, momentum=c.momentum),
    "rmsprop": lambda params, c: torch.optim.RMSprop(params, lr=c.lr, weight_decay=c.weight_decay, momentum=c.momentum),
}


def make_optimizer(model: torch.nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    if hasattr(model, "param_groups"):
        params = model.param_groups(cfg)
    else:
        params = [p for p in model.parameters() if p.requires_grad]
    return OPTIMIZERS[cfg.optimizer](params, cfg)


@dataclass
class Trainer:
    model: torch.nn.Module
    cfg: TrainConfig
    train_data: TensorImages
    val_data: TensorImages
    device: torch.device
    ckpt_dir: Path | None = None
    """Where last.pt / best.pt go; None trains without checkpoints (tuning trials)."""
    extra: dict[str, Any] = field(default_factory=dict)
    """Saved in every checkpoint beside the states (spec, dataset info, model kind)."""
    callbacks: list[EpochCallback] = field(default_factory=list)
    """Called after each epoch's checkpoint with (epoch, metrics row); may raise to stop."""
    on_step: StepCallback | None = None
    """Called after each optimiser step with (global step, model)."""
    label: str = "train"

    def __post_init__(self) -> None:
        self.model.to(self.device)
        if self.device.type == "cpu":
            # oneDNN runs small convolutions ~1.45x faster with channels_last weights (measured in
            # benchmarks/train_throughput.py); it changes memory layout only, never the maths.
            self.model.to(memory_format=torch.channels_last)
        self.optimizer = make_optimizer(self.model, self.cfg)
        self.shuffle_gen = torch.Generator().manual_seed(self.cfg.seed)
        self.base_lrs = [g["lr"] for g in self.optimizer.param_groups]
        self.epoch = 0
        self.history: list[dict] = []
        self.best_val = math.inf
        # Syncing the GPU every batch to read the loss costs throughput; on CPU it is free.
        self.sync_every = 1 if self.device.type == "cpu" else 25

    # ------------------------------------------------------------------ state

    def state(self) -> dict[str, Any]:
        rng = {"torch": torch.get_rng_state(), "shuffle": self.shuffle_gen.get_state()}
        if torch.cuda.is_available():
            rng["cuda"] = torch.cuda.get_rng_state_all()
        return {
            **self.extra,
            "epoch": self.epoch,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "rng": rng,
            "history": self.history,
            "best_val": self.best_val,
        }

    def load_state(self, payload: dict[str, Any]) -> None:
        self.model.load_state_dict(payload["model"])
        self.optimizer.load_state_dict(payload["optimizer"])
        self.epoch = int(payload["epoch"])
        self.history = list(payload.get("history", []))
        self.best_val = float(payload.get("best_val", math.inf))
        rng = payload.get("rng", {})
        if "torch" in rng:
            torch.set_rng_state(rng["torch"])
        if "shuffle" in rng:
            self.shuffle_gen.set_state(rng["shuffle"])
        if "cuda" in rng and torch.cuda.is_available() and len(rng["cuda"]) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(rng["cuda"])

    def save(self, name: str) -> None:
        if self.ckpt_dir is not None:
            save_checkpoint(self.ckpt_dir / name, self.state())

    # ------------------------------------------------------------------ loops

    @torch.no_grad()
    def evaluate(self, data: TensorImages, batch_size: int | None = None) -> dict[str, float]:
        """Batch-size-weighted means of every loss term over a split, in eval mode."""
        was_training = self.model.training
        self.model.eval()
        sums: dict[str, torch.Tensor] = {}
        for x, y in data.batches(batch_size or max(self.cfg.batch_size, 1024)):
            for k, v in self.model.loss(x, y).items():
                sums[k] = sums.get(k, 0.0) + v.detach().float() * len(x)
        self.model.train(was_training)
        return {k: float(v) / len(data) for k, v in sums.items()}

    def fit(self) -> list[dict]:
        """Train from the current epoch up to cfg.epochs; returns the per-epoch history."""
        if self.epoch == 0 and self.ckpt_dir is not None:
            self.save("last.pt")  # an epoch-0 checkpoint, so even an interrupted first epoch can resume
        n_batches = self.train_data.n_batches(self.cfg.batch_size)
        step = self.epoch * n_batches
        with EpochProgress(self.label) as bar:
            for epoch in range(self.epoch + 1, self.cfg.epochs + 1):
                bar.start_epoch(epoch, self.cfg.epochs, n_batches)
                self.model.train()
                sums: dict[str, torch.Tensor] = {}
                t0, seen = time.perf_counter(), 0
                try:
                    for i, (x, y) in enumerate(self.train_data.batches(self.cfg.batch_size, self.shuffle_gen)):
                        self._schedule(step, n_batches * self.cfg.epochs)
                        out = self.model.loss(x, y)
                        loss = out["loss"]
                        self.optimizer.zero_grad(set_to_none=True)
                        loss.backward()
                        self.optimizer.step()
                        seen += len(x)
                        step += 1
                        for k, v in out.items():
                            sums[k] = sums.get(k, 0.0) + v.detach().float() * len(x)
                        if (i + 1) % self.sync_every == 0 or i + 1 == n_batches:
                            value = float(loss.detach())
                            if not math.isfinite(value):
                                raise TrainingDiverged(
                                    f"the loss became {value} at epoch {epoch}, batch {i + 1}; "
                                    f"{self._kept()} Try a lower learning rate (--lr) or another optimiser"
                                )
                            bar.update(i + 1, value, seen / max(time.perf_counter() - t0, 1e-9))
                        if self.on_step is not None:
                            self.on_step(step, self.model)
                except KeyboardInterrupt:
                    raise Interrupted(
                        f"interrupted during epoch {epoch}; {self._kept()}"
                        + (f" Resume with: udl train --resume {self.ckpt_dir.parent}" if self.ckpt_dir else "")
                    ) from None
                train_time = time.perf_counter() - t0
                row: dict[str, Any] = {"epoch": epoch, "epochs": self.cfg.epochs}
                row.update({f"train_{k}": float(v) / seen for k, v in sums.items()})
                row.update({f"val_{k}": v for k, v in self.evaluate(self.val_data).items()})
                if not math.isfinite(row["val_loss"]):
                    raise TrainingDiverged(f"the validation loss became {row['val_loss']} at epoch {epoch}; {self._kept()} Try a lower --lr")
                row["time_s"] = train_time
                row["images_per_s"] = seen / max(train_time, 1e-9)
                self.epoch = epoch
                self.history.append(row)
                is_best = row["val_loss"] < self.best_val
                if is_best:
                    self.best_val = row["val_loss"]
                self.save("last.pt")
                if is_best:
                    self.save("best.pt")
                bar.end_epoch(row)
                for cb in self.callbacks:
                    cb(epoch, row)
        return self.history

    def _schedule(self, step: int, total: int) -> None:
        """Set each group's lr for this step; a pure function of the step, so resume stays exact."""
        if self.cfg.scheduler == "cosine":
            factor = 0.5 * (1.0 + math.cos(math.pi * min(step, total) / max(total, 1)))
            for g, base in zip(self.optimizer.param_groups, self.base_lrs):
                g["lr"] = base * factor

    def _kept(self) -> str:
        if self.ckpt_dir is None:
            return "no checkpoint is kept for this run."
        return f"the last good checkpoint (epoch {self.epoch}) is kept in {self.ckpt_dir / 'last.pt'}."
