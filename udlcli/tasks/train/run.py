"""`udl train`: build a registered family's model from a spec, fit it with the one trainer, and fill its run folder.

Every family trains here, the GAN included (`udl gan` is `udl train gan`). What a run writes besides
the weights and metrics follows from what the model can do (tasks/train/figures.py) and from the
family's own callbacks (registry.Family.callbacks). A model with a loss (Trainable) is fitted on 80%
of the training split and validated on the rest, and the best epoch's weights are tested; a model
that takes its own steps (the GAN) trains on the whole split.
"""

from __future__ import annotations

import time
from pathlib import Path

import torch

from udlcli import ui
from udlcli.core import distributed, lifecycle, runs
from udlcli.core.callbacks import MetricsCSV
from udlcli.core.contracts import Trainable
from udlcli.core.device import describe
from udlcli.core.lifecycle import FitContext, RunOptions, TrainResult
from udlcli.core.loading import read_checkpoint
from udlcli.core.spec import RunSpec, family_of, parse_spec, spec_to_dict
from udlcli.core.trainer import Trainer
from udlcli.data import ImageDataset
from udlcli.errors import Interrupted, SpecError, TrainingDiverged
from udlcli.tasks.train.figures import callbacks_for

__all__ = ["RunOptions", "TrainResult", "resume", "train"]


def train(
    spec: RunSpec, opts: RunOptions | None = None, data: ImageDataset | None = None
) -> TrainResult:
    """Train a fresh run. Everything is validated and loaded before the run folder is created."""
    opts = opts or RunOptions()
    family = family_of(spec)
    if spec.data.image_size:
        # A model that cannot be built for the size asked for (DCGAN at 48 pixels) says so before
        # the data is loaded, which may take minutes (CelebA).
        size = spec.data.image_size
        family.build(spec.model, spec.data.model_copy(update={"shape": (1, size, size)}))
    device, data = lifecycle.setup(spec.train, spec.data, data, family.model)
    lifecycle.fit_model_to_data(spec, data)
    if not family.can(Trainable) and len(data.train) < spec.train.batch_size:
        raise SpecError(
            f"--batch-size {spec.train.batch_size} is larger than the {len(data.train)} training images; use a smaller batch"
        )
    run_dir = lifecycle.new_run(
        family.task, spec_to_dict(spec), opts, device, data, train_cfg=spec.train
    )
    ui.info(
        f"[bold]{family.name}[/]: {family.description}; {lifecycle.data_line(data)}; device {describe(device)}; run folder [cyan]{run_dir}[/]"
    )
    return _fit(run_dir, spec, data, device, payload=None)


def resume(
    run: str | Path,
    epochs: int | None = None,
    device: str | None = None,
    opts: RunOptions | None = None,
    model: str | None = None,
    command: str = "train",
    data: ImageDataset | None = None,
) -> TrainResult:
    """Continue a run from weights/last.pt, up to its epoch count or a new --epochs.

    `command` is the command resuming it (its families' runs only); `model`, when given, must be the run's.
    """
    r = lifecycle.open_resume(run, command=command)
    if model is not None and model != r.kind:
        from udlcli.models.registry import a_kind

        raise SpecError(
            f"--resume {run}: that run trains {r.kind}, not {model} (it is {a_kind(r.kind)} run, not "
            f"{a_kind(model)} run); drop {model!r} (udl train --resume {run}) or give {r.kind}"
        )
    spec = parse_spec(r.payload["spec"], source=f"spec stored in {r.checkpoint}")
    lifecycle.extend(spec.train, r.done, epochs, device, r.run_dir)
    dev, data = lifecycle.setup(spec.train, spec.data, data, family_of(spec).model)
    lifecycle.check_same_data(r.payload, data)
    lifecycle.say_resuming(r, spec.train.epochs, dev)
    return _fit(r.run_dir, spec, data, dev, payload=r.payload)


def _fit(
    run_dir: Path, spec: RunSpec, data: ImageDataset, device: torch.device, payload: dict | None
) -> TrainResult:
    family = family_of(spec)
    validates = family.can(Trainable)
    model, train_split, val_split = lifecycle.seeded_fit_inputs(
        spec, data, device, lambda: family.build(spec.model, spec.data), split=validates
    )
    test = data.test.to(device)
    ctx = FitContext(run_dir, spec, data, train_split, test, device, val_split)
    total_steps = spec.train.epochs * train_split.n_batches(spec.train.batch_size)
    trainer = Trainer(
        model,
        spec.train,
        train_split,
        val_split,
        device,
        ckpt_dir=run_dir / runs.WEIGHTS,
        extra={"kind": family.name, "spec": spec_to_dict(spec), "data": data.info()},
        callbacks=[
            *callbacks_for(model, ctx, total_steps),
            *(family.callbacks(ctx) if family.callbacks else []),
            MetricsCSV(run_dir),
            *lifecycle.trackers(spec.train, run_dir, spec_to_dict(spec)),
        ],
        label=family.name,
        resume_command=family.resumes(),
    )
    if payload is not None:
        trainer.load_state(payload)
        lifecycle.write_metrics(run_dir, trainer.history)
    t0 = time.perf_counter()
    try:
        history = trainer.fit()
    except (Interrupted, TrainingDiverged) as e:
        if trainer.world.is_main:  # what the epochs done show, kept beside the checkpoint
            _finish(
                trainer,
                family,
                data,
                device,
                "interrupted" if isinstance(e, Interrupted) else "diverged",
                time.perf_counter() - t0,
            )
        raise
    wall = time.perf_counter() - t0
    test_metrics = None
    if validates:
        # The test numbers are the best checkpoint's (lowest validation loss), written by rank 0.
        distributed.barrier()
        best = read_checkpoint(run_dir / runs.WEIGHTS / "best.pt")
        model.load_state_dict(best["model"])
        if trainer.ema is not None:
            trainer.ema.load_state_dict(best["ema"])
        test_metrics = trainer.evaluate(test)  # all-reduced over the ranks
        test_metrics = {
            "best_epoch": int(best["epoch"]),
            "best_val_loss": trainer.best_val,
            "test": test_metrics,
        }
    distributed.rest_on_main()  # the other ranks end here: the run folder is rank 0's
    if not trainer.world.is_main:
        return TrainResult(run_dir, {}, history)
    summary = _finish(trainer, family, data, device, "finished", wall, test_metrics)
    return TrainResult(run_dir, summary, history)


def _finish(
    trainer, family, data, device, status: str, wall: float, tested: dict | None = None
) -> dict:
    """summary.json (with the callbacks' keys and figures) and the tracker's last log, by rank 0."""
    run_dir = trainer.ckpt_dir.parent
    summary = lifecycle.base_summary(trainer, family.name, data, device, status, wall)
    summary.update(tested or {})
    with trainer.averaged():
        trainer.end(summary)
    if family.key_metric and family.key_metric[0] in summary:
        key, label, better = family.key_metric
        summary["key_metric"] = {"name": label, "value": summary[key], "better": better}
    runs.write_json(run_dir / "summary.json", summary)
    lifecycle.finish_tracking(trainer, summary, status)
    return summary
