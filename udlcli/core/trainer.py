"""The one training loop: AE, DAE, VAE, classifier, LeNet and GAN all train here, through the contracts alone.

What the trainer knows of a model (udlcli/core/contracts.py):

    Trainable    model.loss(x, y) -> {"loss": ..., ...}: the trainer steps one optimiser on "loss"
                 (param_groups(cfg) when the model has them); every key is logged as train_<k> / val_<k>.
    Adversarial  model.configure_optimizers(cfg) and model.train_step(x, y, optimizers): the model
                 steps its own optimisers (the GAN's D and G); its numbers are logged as they are.

What it does for every model, once: the seeded shuffle, the learning-rate schedule, the NaN guard,
Ctrl-C, the progress bar, validation and the best checkpoint (when there is a validation split),
mixed precision and torch.compile of a Trainable's loss (core/fastpath.py), data parallelism over
ranks (core/distributed.py: DDP for a Trainable, averaged gradients for an Adversarial model; each
rank trains on its shard of every global batch; rank 0 alone writes and runs the callbacks),
checkpoints written atomically after every epoch (and at epoch 0, so an interrupted first epoch can
resume), and the RNG states that make a resumed run continue exactly. Callbacks add the rest:
figures that follow training, a pruner, a per-iteration log, failure detectors; a callback with a
name keeps its state in the checkpoint.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from udlcli import ui
from udlcli.core import distributed, fastpath
from udlcli.core.checkpoint import save_checkpoint
from udlcli.core.contracts import Adversarial, HasParamGroups
from udlcli.core.progress import EpochProgress
from udlcli.errors import DistributedError, Interrupted, TrainingDiverged

EpochCallback = Callable[[int, dict], None]
"""A plain function called after each epoch's checkpoint with (epoch, metrics row); may raise to stop."""

OPTIMIZERS = {
    "adam": lambda params, c: torch.optim.Adam(params, lr=c.lr, weight_decay=c.weight_decay),
    "sgd": lambda params, c: torch.optim.SGD(
        params, lr=c.lr, weight_decay=c.weight_decay, momentum=c.momentum
    ),
    "rmsprop": lambda params, c: torch.optim.RMSprop(
        params, lr=c.lr, weight_decay=c.weight_decay, momentum=c.momentum
    ),
}


def make_optimizer(model: torch.nn.Module, cfg) -> torch.optim.Optimizer:
    params = (
        model.param_groups(cfg)
        if isinstance(model, HasParamGroups)
        else [p for p in model.parameters() if p.requires_grad]
    )
    return OPTIMIZERS[cfg.optimizer](params, cfg)


class Callback:
    """Hooks into Trainer.fit; override what is needed. A callback with a `name` keeps state_dict() in checkpoints.

    In a job of several ranks, callbacks run on rank 0 only (they write the run folder).
    """

    name: str = ""

    def on_step(self, trainer: Trainer, step: int, out: dict[str, torch.Tensor]) -> None:
        """After each optimiser step (global step count, the step's numbers)."""

    def on_epoch(self, trainer: Trainer, row: dict) -> None:
        """After an epoch's training and validation, before its checkpoint: may add numbers to the row."""

    def on_saved(self, trainer: Trainer, row: dict) -> None:
        """After the epoch's checkpoint: files that follow it (metrics.csv, sample grids); may raise to stop."""

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass


class AfterEpoch(Callback):
    """A plain function (epoch, row) as a callback run after each checkpoint."""

    def __init__(self, fn: EpochCallback):
        self.fn = fn

    def on_saved(self, trainer: Trainer, row: dict) -> None:
        self.fn(row["epoch"], row)


@dataclass
class Trainer:
    model: torch.nn.Module
    cfg: Any
    """The train section: epochs, batch_size, seed, and for Trainable models optimizer, lr, weight_decay, scheduler."""
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
        self.model.to(self.device)
        if self.device.type == "cpu":
            # oneDNN runs small convolutions ~1.45x faster with channels_last weights (measured in
            # benchmarks/train_throughput.py); it changes memory layout only, never the maths.
            self.model.to(memory_format=torch.channels_last)
        self.callbacks = [
            cb if isinstance(cb, Callback) else AfterEpoch(cb) for cb in self.callbacks
        ]
        self.adversarial = isinstance(self.model, Adversarial)
        self.optimizers = (
            self.model.configure_optimizers(self.cfg)
            if self.adversarial
            else {"model": make_optimizer(self.model, self.cfg)}
        )
        # --precision and --compile act on a Trainable's loss; the GAN's own step stays float32, eager.
        self.precision = "32" if self.adversarial else fastpath.precision_of(self.cfg)
        self.scaler = fastpath.grad_scaler(self.device, self.precision)
        self.world = distributed.world()
        self.extra.setdefault("world_size", self.world.size)
        loss = None if self.adversarial else self.model.loss
        if self.world.size > 1 and not self.adversarial:
            # DDP all-reduces the gradients bucket by bucket while backward still runs; the model
            # itself is untouched (its state_dict keeps its own keys).
            loss = torch.nn.parallel.DistributedDataParallel(
                _LossOf(self.model),
                device_ids=[torch.cuda.current_device()] if self.device.type == "cuda" else None,
            )
        elif self.world.size > 1:
            # The adversarial step toggles requires_grad and steps two optimisers, which DDP's reducer
            # does not allow: its gradients are averaged just before each optimiser step instead.
            for opt in self.optimizers.values():
                opt.register_step_pre_hook(_average_before_step)
        self.loss_fn = (
            None
            if loss is None
            else fastpath.compiled(loss, bool(getattr(self.cfg, "compile", False)))
        )
        self.shuffle_gen = torch.Generator().manual_seed(self.cfg.seed)
        self.base_lrs = {k: [g["lr"] for g in o.param_groups] for k, o in self.optimizers.items()}
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
        opts = {k: o.state_dict() for k, o in self.optimizers.items()}
        return {
            **self.extra,
            "epoch": self.epoch,
            "model": self.model.state_dict(),
            # One optimiser under "optimizer" (every run before the GAN joined the trainer), several under "optimizers".
            **({"optimizer": opts["model"]} if list(opts) == ["model"] else {"optimizers": opts}),
            "rng": rng,
            "history": self.history,
            "best_val": self.best_val,
            "callbacks": {cb.name: cb.state_dict() for cb in self.callbacks if cb.name},
            **({"scaler": self.scaler.state_dict()} if self.scaler is not None else {}),
        }

    def load_state(self, payload: dict[str, Any]) -> None:
        self.model.load_state_dict(payload["model"])
        opts = {"model": payload["optimizer"]} if "optimizer" in payload else payload["optimizers"]
        for k, o in self.optimizers.items():
            o.load_state_dict(opts[k])
        self.epoch = int(payload["epoch"])
        was = int(payload.get("world_size", 1))
        if was != self.world.size:
            ui.info(
                f"resuming with {self.world.size} rank{'s' if self.world.size > 1 else ''} (the run trained on "
                f"{was}); the global batch stays {self.cfg.batch_size}, so the schedule and shuffling carry on as before"
            )
        self.history = list(payload.get("history", []))
        self.best_val = float(payload.get("best_val", math.inf))
        if self.scaler is not None and "scaler" in payload:
            self.scaler.load_state_dict(payload["scaler"])
        saved = payload.get("callbacks", {})
        for cb in self.callbacks:
            if cb.name and cb.name in saved:
                cb.load_state_dict(saved[cb.name])
        rng = payload.get("rng", {})
        if "torch" in rng:
            torch.set_rng_state(rng["torch"])
        if "shuffle" in rng:
            self.shuffle_gen.set_state(rng["shuffle"])
        if (
            "cuda" in rng
            and torch.cuda.is_available()
            and len(rng["cuda"]) == torch.cuda.device_count()
        ):
            torch.cuda.set_rng_state_all(rng["cuda"])

    def save(self, name: str) -> None:
        if self.ckpt_dir is not None and self.world.is_main:
            save_checkpoint(self.ckpt_dir / name, self.state())

    # ------------------------------------------------------------------ loops

    @torch.no_grad()
    def evaluate(self, data, batch_size: int | None = None) -> dict[str, float]:
        """Batch-size-weighted means of every loss term over a split, in eval mode."""
        was_training = self.model.training
        self.model.eval()
        sums: dict[str, torch.Tensor] = {}
        seen = 0
        for x, y in data.batches(batch_size or max(self.cfg.batch_size, 1024)):
            # Each rank scores its rows of the batch; the sums are all-reduced below.
            n_global = len(x)
            part = distributed.shard(n_global)
            x, y = x[part], y[part]
            if not len(x):
                continue
            distributed.set_global_rows(n_global)  # a sampled loss (the VAE's) draws as one process
            try:
                with fastpath.autocast(self.device, self.precision):
                    out = self.model.loss(x, y)
            finally:
                distributed.set_global_rows(None)
            for k, v in out.items():
                sums[k] = sums.get(k, 0.0) + v.detach().float() * len(x)
            seen += len(x)
        self.model.train(was_training)
        return self._reduced(sums, seen)

    def _reduced(self, sums: dict[str, torch.Tensor], weight: float) -> dict[str, float]:
        """sums / weight, both summed over the ranks first (every rank gets the same numbers)."""
        keys = list(sums)  # the same order on every rank: the model's own
        packed = torch.tensor([float(sums[k]) for k in keys] + [float(weight)], dtype=torch.float64)
        if self.world.size > 1:
            packed = distributed.all_sum(packed.to(self.device)).cpu()
        total = max(float(packed[-1]), 1e-12)
        return {k: float(packed[i]) / total for i, k in enumerate(keys)}

    def fit(self) -> list[dict]:
        """Train from the current epoch up to cfg.epochs; returns the per-epoch history."""
        if self.epoch == 0 and self.ckpt_dir is not None:
            self.save(
                "last.pt"
            )  # an epoch-0 checkpoint, so even an interrupted first epoch can resume
        n_batches = self.train_data.n_batches(self.cfg.batch_size)
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
                    hint = (
                        f" Resume with: {self.resume_command} {self.ckpt_dir.parent}"
                        if self.ckpt_dir
                        else ""
                    )
                    raise DistributedError(
                        f"{err} during epoch {epoch}; {self._kept()}{hint}"
                    ) from None
                except (
                    KeyboardInterrupt
                ):  # the checkpoint is written atomically: it is the last finished epoch's
                    hint = (
                        f" Resume with: {self.resume_command} {self.ckpt_dir.parent}"
                        if self.ckpt_dir
                        else ""
                    )
                    raise Interrupted(
                        f"interrupted during epoch {epoch}; {self._kept()}{hint}"
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
            self._schedule(step, total)
            n_global = len(x)
            if n_global < self.world.size:  # a last batch too small to give every rank a row
                step += 1
                continue
            part = distributed.shard(n_global)  # this rank's rows of the global batch
            x, y = x[part], y[part]
            out = self._step(x, y, n_global)
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
                main, rest = self._shown(out)
                bar.update(i + 1, main, seen / max(time.perf_counter() - t0, 1e-9), extra=rest)
            for cb in self._callbacks():
                with self.rng_kept():
                    cb.on_step(self, step, out)
        if self.world.size > 1:
            means = self._reduced(sums, weight)
            seen = int(distributed.all_sum(torch.tensor(float(seen), device=self.device)))
            return means, seen, step
        return {k: float(v) / max(weight, 1) for k, v in sums.items()}, seen, step

    def _step(self, x: torch.Tensor, y: torch.Tensor, n_global: int) -> dict[str, torch.Tensor]:
        # The model's per-image noise is drawn for the global batch and sliced (distributed.draw_rows).
        distributed.set_global_rows(n_global)
        try:
            return self._model_step(x, y, n_global)
        finally:
            distributed.set_global_rows(None)

    def _model_step(
        self, x: torch.Tensor, y: torch.Tensor, n_global: int
    ) -> dict[str, torch.Tensor]:
        if self.adversarial:
            return self.model.train_step(x, y, self.optimizers)
        with fastpath.autocast(self.device, self.precision):
            out = self.loss_fn(x, y)
        opt = self.optimizers["model"]
        opt.zero_grad(set_to_none=True)
        # DDP averages gradients over ranks; weighting each rank's mean by its share of the global
        # batch makes that average the gradient of the global batch's mean, as in one process.
        loss = (
            out["loss"] * (len(x) * self.world.size / n_global)
            if self.world.size > 1
            else out["loss"]
        )
        if self.scaler is None:
            loss.backward()
            opt.step()
        else:  # float16: the loss scaled up so small gradients survive; steps that overflow are skipped
            self.scaler.scale(loss).backward()
            self.scaler.step(opt)
            self.scaler.update()
        return out

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

    @staticmethod
    def _shown(out: dict[str, torch.Tensor]) -> tuple[float, str]:
        """The bar's main number ("loss", else the first) and the others as text."""
        main = "loss" if "loss" in out else next(iter(out))
        rest = "  ".join(f"{k} {float(v.detach()):.3g}" for k, v in out.items() if k != main)
        return float(out[main].detach()), rest

    def _schedule(self, step: int, total: int) -> None:
        """Set each group's lr for this step; a pure function of the step, so resume stays exact."""
        if getattr(self.cfg, "scheduler", "none") == "cosine":
            factor = 0.5 * (1.0 + math.cos(math.pi * min(step, total) / max(total, 1)))
            for name, opt in self.optimizers.items():
                for g, base in zip(opt.param_groups, self.base_lrs[name]):
                    g["lr"] = base * factor

    def _kept(self) -> str:
        if self.ckpt_dir is None:
            return "no checkpoint is kept for this run."
        return (
            f"the last good checkpoint (epoch {self.epoch}) is kept in {self.ckpt_dir / 'last.pt'}."
        )


class _LossOf(torch.nn.Module):
    """A Trainable seen as a module whose forward is its loss, so DDP's hooks wrap the whole step."""

    def __init__(self, model: torch.nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
        return self.model.loss(x, y)


def _average_before_step(opt: torch.optim.Optimizer, args, kwargs) -> None:
    distributed.average_gradients(p for g in opt.param_groups for p in g["params"])
