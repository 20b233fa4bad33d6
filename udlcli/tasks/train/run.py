"""`udl train`: build a registered model from a spec, fit it with the shared trainer, and fill its run folder."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch

from udlcli import plots, ui
from udlcli.config import validate
from udlcli.data import ImageDataset, TensorImages, load_dataset, showcase_indices
from udlcli.core import runs
from udlcli.core.checkpoint import load_checkpoint
from udlcli.core.device import describe, resolve_device
from udlcli.core.spec import RunSpec, spec_to_dict
from udlcli.core.trainer import Trainer
from udlcli.errors import CheckpointError, SpecError
from udlcli.models import get

PROGRESS_FILE = "reconstruction_progress.npz"


@dataclass
class RunOptions:
    """Where and how a run is written; shared by every command that writes runs."""

    out: Path = Path("runs")
    name: str | None = None
    command: str = ""


@dataclass
class TrainResult:
    run_dir: Path
    summary: dict
    history: list[dict] = field(default_factory=list)


def fixed_digits(test: TensorImages, n: int = 10) -> torch.Tensor:
    """Indices of the first test image of each class (or the first n when unlabeled): the tracked digits."""
    return showcase_indices(test.y, n)


def snapshot_steps(total: int, k: int = 8) -> set[int]:
    """k global steps spaced log-uniformly from 1 to total: early training changes fastest (Fig. 2)."""
    return {int(round(s)) for s in np.geomspace(1, max(total, 1), num=k)}


class ReconstructionTracker:
    """Reconstructs the same fixed test digits at chosen steps; kept on disk so resumed runs keep them."""

    def __init__(self, path: Path, digits: torch.Tensor, steps: set[int]):
        self.path, self.digits, self.steps = path, digits, steps
        self.snaps: dict[int, np.ndarray] = {}
        self.prior: dict[int, np.ndarray] = {}
        """Generative models (with sample_prior): the same seeded prior draws decoded at each step."""
        if path.is_file():
            with np.load(path, allow_pickle=False) as f:
                self.snaps = {int(k.split("_")[1]): f[k] for k in f.files if k.startswith("step_")}
                self.prior = {int(k.split("_")[1]): f[k] for k in f.files if k.startswith("prior_")}

    def __call__(self, step: int, model: torch.nn.Module) -> None:
        if step in self.steps and hasattr(model, "reconstruct"):
            was = model.training
            model.eval()
            with torch.no_grad():
                self.snaps[step] = _to_bytes(model.reconstruct(self.digits))
                if hasattr(model, "sample_prior"):  # a fresh generator each time: the same z at every step
                    self.prior[step] = _to_bytes(model.sample_prior(len(self.digits), torch.Generator().manual_seed(0)))
            model.train(was)
            arrays = {f"step_{s}": a for s, a in self.snaps.items()} | {f"prior_{s}": a for s, a in self.prior.items()}
            np.savez_compressed(self.path, **arrays)


def _to_bytes(images: torch.Tensor) -> np.ndarray:
    return (images.clamp(0, 1) * 255).round().byte().cpu().numpy()


def _setup(spec: RunSpec, data: ImageDataset | None = None):
    device = resolve_device(spec.train.device)
    data = data or load_dataset(spec.data.dataset, spec.data.data_dir, spec.data.limit)
    return device, data


def train(spec: RunSpec, opts: RunOptions | None = None, data: ImageDataset | None = None) -> TrainResult:
    """Train a fresh run. Everything is validated and loaded before the run folder is created."""
    opts = opts or RunOptions()
    entry = get(spec.model.name)
    device, data = _setup(spec, data)
    torch.manual_seed(spec.train.seed)
    model = entry.build(spec.model, spec.data)
    run_dir = runs.new_run_dir(opts.out, entry.task, opts.name)
    meta = {
        "command": opts.command,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "versions": runs.versions(),
        "device": describe(device),
        "dataset": data.info(),
    }
    runs.write_spec(run_dir, spec_to_dict(spec), meta)
    ui.info(f"[bold]{entry.name}[/]: {entry.description}; {_data_line(data)}; device {describe(device)}; run folder [cyan]{run_dir}[/]")
    return _fit(run_dir, spec, model, data, device, payload=None)


def resume(run: str | Path, epochs: int | None = None, device: str | None = None, opts: RunOptions | None = None,
           model: str | None = None) -> TrainResult:
    """Continue a run from weights/last.pt, up to its epoch count or a new --epochs; `model`, when given, must be the run's."""
    run_dir = Path(run)
    if run_dir.is_file():  # a checkpoint path: its run folder is two levels up
        run_dir = run_dir.parent.parent
    if not run_dir.is_dir():
        raise CheckpointError(f"--resume {run}: no such run folder")
    last = run_dir / runs.WEIGHTS / "last.pt"
    if not last.is_file():
        raise CheckpointError(f"--resume {run}: no checkpoint at {last}; nothing to resume (start a new run instead)")
    payload = load_checkpoint(last)
    try:
        spec = validate(RunSpec, payload["spec"], source=f"spec stored in {last}")
    except KeyError:
        raise CheckpointError(f"{last} holds no run spec; it was not written by udl train") from None
    if model is not None and model != spec.model.name:
        raise SpecError(f"--resume {run}: that run trains {spec.model.name}, not {model}; drop {model!r} (udl train --resume {run}) or give {spec.model.name}")
    done = int(payload["epoch"])
    if epochs is not None:
        if epochs < done:
            raise SpecError(f"--epochs {epochs}: the run already has {done} epochs; give a larger number to extend it")
        spec.train.epochs = epochs
    if device is not None:
        spec.train.device = device
    if done >= spec.train.epochs:
        raise SpecError(f"{run_dir} already finished {done}/{spec.train.epochs} epochs; pass --epochs N (N > {done}) to extend it")
    dev, data = _setup(spec)
    _check_same_data(payload, data)
    model = get(spec.model.name).build(spec.model, spec.data)
    ui.info(f"resuming [cyan]{run_dir}[/] at epoch {done + 1}/{spec.train.epochs}; device {describe(dev)}")
    return _fit(run_dir, spec, model, data, dev, payload=payload)


def _check_same_data(payload: dict, data: ImageDataset) -> None:
    was = (payload.get("data") or {}).get("name")
    if was and was != data.name:
        raise CheckpointError(f"this run was trained on {was!r} but {data.name!r} was loaded now; point --data-dir at the original data")


def _data_line(data: ImageDataset) -> str:
    return f"data {data.name} ({len(data.train):,} train / {len(data.test):,} test)"


def _fit(run_dir: Path, spec: RunSpec, model, data: ImageDataset, device: torch.device, payload: dict | None) -> TrainResult:
    cfg = spec.train
    train_split, val_split = data.split(spec.data.val_fraction, cfg.seed)
    train_split, val_split, test = train_split.to(device), val_split.to(device), data.test.to(device)
    digits = test.images(fixed_digits(test).to(device))
    total_steps = cfg.epochs * train_split.n_batches(cfg.batch_size)
    tracker = ReconstructionTracker(run_dir / runs.WEIGHTS / PROGRESS_FILE, digits, snapshot_steps(total_steps))
    trainer = Trainer(
        model,
        cfg,
        train_split,
        val_split,
        device,
        ckpt_dir=run_dir / runs.WEIGHTS,
        extra={"kind": spec.model.name, "spec": spec_to_dict(spec), "data": data.info()},
        callbacks=[lambda epoch, row: runs.write_metrics(run_dir, trainer.history)],
        on_step=tracker,
        label=spec.model.name,
    )
    if payload is not None:
        trainer.load_state(payload)
        runs.write_metrics(run_dir, trainer.history)
    t0 = time.perf_counter()
    if payload is None:
        tracker.steps.add(0)
        tracker(0, model)  # step 0: the untrained network
    history = trainer.fit()
    wall = time.perf_counter() - t0

    # Final evaluation uses the best checkpoint (lowest validation loss).
    best = load_checkpoint(run_dir / runs.WEIGHTS / "best.pt")
    model.load_state_dict(best["model"])
    test_metrics = trainer.evaluate(test)
    summary = {
        "model": spec.model.name,
        "status": "finished",
        "epochs": trainer.epoch,
        "best_epoch": int(best["epoch"]),
        "best_val_loss": trainer.best_val,
        "test": test_metrics,
        "wall_time_s": round(wall, 2),
        "train_time_s": round(sum(r["time_s"] for r in history), 2),
        "images_per_s": round(float(np.mean([r["images_per_s"] for r in history])), 1),
        "dataset": data.info(),
        "device": describe(device),
        "params": sum(p.numel() for p in model.parameters()),
    }
    if hasattr(model, "reconstruct"):
        summary["test_mse"] = _reconstruction_mse(model, test)
    _figures(run_dir, model, history, test, tracker)
    runs.write_json(run_dir / "summary.json", summary)
    return TrainResult(run_dir, summary, history)


@torch.no_grad()
def _reconstruction_mse(model, data: TensorImages, batch_size: int = 2048) -> float:
    """Mean squared error on [0, 1] pixels of clean test images against their reconstructions."""
    model.eval()
    total = 0.0
    for x, _ in data.batches(batch_size):
        total += float(((model.reconstruct(x) - x) ** 2).mean()) * len(x)
    return total / len(data)


def _figures(run_dir: Path, model, history: list[dict], test: TensorImages, tracker: ReconstructionTracker) -> None:
    fig = run_dir / "figures"
    keys = tuple(k[len("train_"):] for k in history[-1] if k.startswith("train_")) if history else ("loss",)
    plots.loss_curves(history, fig / "loss.png", keys=keys, title=f"{run_dir.name}: loss per epoch", ylabel="MSE loss" if keys == ("loss",) else "loss", log=True)
    if not hasattr(model, "reconstruct"):
        return
    if tracker.snaps:
        steps = sorted(tracker.snaps)
        rows = [tracker.digits] + [torch.from_numpy(tracker.snaps[s]).float() / 255 for s in steps]
        plots.image_rows(rows, ["input"] + [f"step {s}" for s in steps], fig / "reconstruction_progress.png", title="Reconstructions of fixed test digits during training")
    if tracker.prior:
        steps = sorted(tracker.prior)
        rows = [torch.from_numpy(tracker.prior[s]).float() / 255 for s in steps]
        plots.image_rows(rows, [f"step {s}" for s in steps], fig / "prior_samples_progress.png", title="Decoded prior samples z ~ N(0, I) (the same z) during training")
    model.eval()
    with torch.no_grad():
        x = test.images(showcase_indices(test.y, 20).to(test.x.device))  # two test images of each class, mixed
        rec = model.reconstruct(x).clamp(0, 1)
    rows, labels = [x[:10], rec[:10], x[10:], rec[10:]], ["original", "reconstructed"] * 2
    if len(x) <= 10:
        rows, labels = rows[:2], labels[:2]
    plots.image_rows(rows, labels, fig / "reconstructions.png", title="Test images and their reconstructions (best checkpoint)")

