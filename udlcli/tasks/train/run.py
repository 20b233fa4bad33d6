"""`udl train`: build a registered model from a spec, fit it with the shared trainer, and fill its run folder."""

from __future__ import annotations

import time
from pathlib import Path

import torch

from udlcli import ui
from udlcli.config import validate
from udlcli.core import distributed, lifecycle, runs
from udlcli.core.checkpoint import load_checkpoint
from udlcli.core.contracts import Reconstructs
from udlcli.core.device import describe
from udlcli.core.lifecycle import RunOptions, TrainResult
from udlcli.core.spec import RunSpec, spec_to_dict
from udlcli.core.trainer import Trainer
from udlcli.data import ImageDataset
from udlcli.errors import SpecError
from udlcli.models import REGISTRY, get
from udlcli.tasks.train.figures import (
    PROGRESS_FILE,
    ReconstructionTracker,
    fixed_digits,
    reconstruction_mse,
    snapshot_steps,
    write_figures,
)

__all__ = ["RunOptions", "TrainResult", "resume", "train"]


def train(
    spec: RunSpec, opts: RunOptions | None = None, data: ImageDataset | None = None
) -> TrainResult:
    """Train a fresh run. Everything is validated and loaded before the run folder is created."""
    opts = opts or RunOptions()
    entry = get(spec.model.name)
    device, data = lifecycle.setup(spec.train, spec.data, data)
    run_dir = lifecycle.new_run(entry.task, spec_to_dict(spec), opts, device, data)
    ui.info(
        f"[bold]{entry.name}[/]: {entry.description}; {lifecycle.data_line(data)}; device {describe(device)}; run folder [cyan]{run_dir}[/]"
    )
    return _fit(run_dir, spec, data, device, payload=None)


def resume(
    run: str | Path,
    epochs: int | None = None,
    device: str | None = None,
    opts: RunOptions | None = None,
    model: str | None = None,
) -> TrainResult:
    """Continue a run from weights/last.pt, up to its epoch count or a new --epochs; `model`, when given, must be the run's."""
    r = lifecycle.open_resume(run, kinds=tuple(k for k, e in REGISTRY.items() if k != "classifier"))
    spec = validate(RunSpec, r.payload["spec"], source=f"spec stored in {r.checkpoint}")
    if model is not None and model != spec.model.name:
        raise SpecError(
            f"--resume {run}: that run trains {spec.model.name}, not {model}; drop {model!r} (udl train --resume {run}) or give {spec.model.name}"
        )
    lifecycle.extend(spec.train, r.done, epochs, device, r.run_dir)
    dev, data = lifecycle.setup(spec.train, spec.data)
    lifecycle.check_same_data(r.payload, data)
    lifecycle.say_resuming(r, spec.train.epochs, dev)
    return _fit(r.run_dir, spec, data, dev, payload=r.payload)


def _fit(
    run_dir: Path, spec: RunSpec, data: ImageDataset, device: torch.device, payload: dict | None
) -> TrainResult:
    entry = get(spec.model.name)
    model, train_split, val_split = lifecycle.seeded_fit_inputs(
        spec, data, device, lambda: entry.build(spec.model, spec.data)
    )
    test = data.test.to(device)
    digits = test.images(fixed_digits(test).to(device))
    total_steps = spec.train.epochs * train_split.n_batches(spec.train.batch_size)
    tracker = ReconstructionTracker(
        run_dir / runs.WEIGHTS / PROGRESS_FILE, digits, snapshot_steps(total_steps)
    )
    trainer = Trainer(
        model,
        spec.train,
        train_split,
        val_split,
        device,
        ckpt_dir=run_dir / runs.WEIGHTS,
        extra={"kind": spec.model.name, "spec": spec_to_dict(spec), "data": data.info()},
        callbacks=[
            lifecycle.MetricsCSV(run_dir),
            tracker,
            *lifecycle.trackers(spec.train, run_dir, spec_to_dict(spec)),
        ],
        label=spec.model.name,
        resume_command=lifecycle.RESUME.get(spec.model.name, "udl train --resume"),
    )
    if payload is not None:
        trainer.load_state(payload)
        lifecycle.write_metrics(run_dir, trainer.history)
    elif trainer.world.is_main:
        tracker.steps.add(0)
        with trainer.rng_kept():
            tracker.snapshot(0, model)  # step 0: the untrained network
    t0 = time.perf_counter()
    history = trainer.fit()
    wall = time.perf_counter() - t0

    # Final evaluation uses the best checkpoint (lowest validation loss), written by rank 0.
    distributed.barrier()
    best = load_checkpoint(run_dir / runs.WEIGHTS / "best.pt")
    model.load_state_dict(best["model"])
    test_metrics = trainer.evaluate(test)  # all-reduced over the ranks
    distributed.rest_on_main()
    summary = {
        "model": spec.model.name,
        "status": "finished",
        "epochs": trainer.epoch,
        "best_epoch": int(best["epoch"]),
        "best_val_loss": trainer.best_val,
        "test": test_metrics,
        **lifecycle.timing(history, wall),
        "dataset": data.info(),
        "device": describe(device),
        "params": sum(p.numel() for p in model.parameters()),
    }
    if isinstance(model, Reconstructs):
        summary["test_mse"] = reconstruction_mse(model, test)
    write_figures(run_dir, model, history, test, tracker)
    runs.write_json(run_dir / "summary.json", summary)
    lifecycle.finish_tracking(trainer, summary)
    return TrainResult(run_dir, summary, history)
