"""The run lifecycle every training command shares: set-up, a new run folder, resuming one, metadata and timing.

    udl train / denoise / finetune / gan (and tuning trials, which write nothing):

        device, data = setup(spec.train, spec.data)      # everything loaded before any folder exists
        model, train, val = seeded_fit_inputs(spec, data, device, build)
        run_dir = new_run(task, spec_dict, opts, device, data)  # spec.yaml with its meta: block
        ...Trainer(...).fit()...; summary |= timing(history, wall)

    --resume RUN (a run folder or one of its checkpoints):

        r = open_resume(RUN, command="train")                  # the checkpoint, of a family that command trains
        extend(spec.train, r.done, epochs, device, r.run_dir)   # the --epochs rule, the same everywhere
        check_same_data(r.payload, data)

Only --epochs and --device may change on resume; the CLI refuses the rest (cli/common.py's FlagTable).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch

from udlcli import ui
from udlcli.core import distributed, fastpath, runs, tracking
from udlcli.core.callbacks import Callback
from udlcli.core.device import describe, resolve_device
from udlcli.data import ImageDataset, TensorImages, fit_config, load_configured
from udlcli.errors import CheckpointError, SpecError


@dataclass
class RunOptions:
    """Where and how a run is written; shared by every command that writes runs."""

    out: Path = Path("runs")
    name: str | None = None
    command: str = ""


@dataclass
class FitContext:
    """What a family's callbacks may read when a run's trainer is made (registry.Family.callbacks)."""

    run_dir: Path | None
    """None in a tuning trial, which writes no run folder."""
    spec: Any
    data: ImageDataset
    train: TensorImages
    """The training split on the device (all of it when the model has no validation split)."""
    test: TensorImages
    device: torch.device
    val: TensorImages | None = None
    """The validation split on the device (None: the model trains on the whole training split)."""


@dataclass
class TrainResult:
    run_dir: Path
    summary: dict
    history: list[dict] = field(default_factory=list)


# ---------------------------------------------------------------- a new run


def setup(
    train_cfg, data_cfg, data: ImageDataset | None = None, model_class: type | None = None
) -> tuple[torch.device, ImageDataset]:
    """The device and the dataset of a spec (data given: already loaded, e.g. once for many trials).

    The device must run the train section's precision and --compile for this model class (one line
    otherwise). The spec's data section gets the images' shape and normalisation (computed from the
    training split unless set), so spec.yaml records them and every model, plot and metric reads them.
    """
    # Joining the process group is a no-op unless torchrun (or --devices) started this process as a rank.
    dev = distributed.init(resolve_device(train_cfg.device))
    why = fastpath.resolve(train_cfg, dev, model_class)
    if why.startswith("auto"):
        ui.info(f"precision {train_cfg.precision} ({why})")
    tracking.check(train_cfg)  # the tracker's package and URI, before any folder exists
    if data is None:
        return dev, load_configured(data_cfg)
    fit_config(data_cfg, data)
    return dev, data


def fit_model_to_data(spec, data: ImageDataset) -> dict:
    """Fill what a model section learns from the loaded data, and return it: its class count (a
    class-conditional model's embedding). --conditional on data without labels is one line.

    Every path that builds a model from a spec and data goes through here: `udl train` and each
    `udl tune` trial alike, so a tuned conditional model knows every class, not one.
    """
    filled = {}
    if "classes" in type(spec.model).model_fields and spec.model.classes is None:
        spec.model.classes = filled["classes"] = max(len(data.classes), 1)
    if getattr(spec.model, "conditional", False) and (why := data.why_unlabelled()):
        raise SpecError(
            f"--conditional learns each class, but {spec.data.dataset} {why}; train without --conditional"
        )
    return filled


def seeded_fit_inputs(
    spec,
    data: ImageDataset,
    device: torch.device,
    build: Callable[[], torch.nn.Module],
    split: bool = True,
) -> tuple[torch.nn.Module, TensorImages, TensorImages | None]:
    """Seed torch with the run's seed, build the model, and split the training data 80/20 (seeded) onto the device.

    The order is what makes a run reproducible: the same seed gives the same initial weights, split and batches.
    split=False: the whole training split and no validation (the GAN).
    """
    torch.manual_seed(spec.train.seed)
    model = build()
    if not split:
        return model, data.train.to(device), None
    train, val = data.split(spec.data.val_fraction, spec.train.seed)
    return model, train.to(device), val.to(device)


def meta(opts: RunOptions, device: torch.device, data: ImageDataset, train_cfg=None) -> dict:
    """The meta: block of spec.yaml: command line, time, versions, device (and the precision it
    trains in, with the reason) and the dataset actually used."""
    out = {
        "command": opts.command,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "versions": runs.versions(),
        "device": describe(device),
        "dataset": data.info(),
    }
    if train_cfg is not None:
        why = train_cfg._precision_why or "asked for (--precision)"
        out["precision"] = f"{train_cfg.precision} ({why})"
    return out


def new_run(
    task: str,
    spec: dict,
    opts: RunOptions,
    device: torch.device,
    data: ImageDataset,
    subdirs: tuple[str, ...] = (runs.WEIGHTS, "figures"),
    train_cfg=None,
) -> Path:
    """Create runs/<task>/<name>/ (never over an existing one) and write its spec.yaml; in a job of
    several ranks rank 0 creates it and every rank gets its path."""
    run_dir = None
    if distributed.world().is_main:
        run_dir = runs.new_run_dir(opts.out, task, opts.name, subdirs)
        runs.write_spec(run_dir, spec, meta(opts, device, data, train_cfg))
    return distributed.share_path(run_dir)


def trackers(train_cfg, run_dir: Path, spec: dict) -> list[Callback]:
    """The run's tracker callback (--track), or none: a list to splice into a Trainer's callbacks."""
    t = tracking.tracker_for(train_cfg, run_dir, spec)
    return [t] if t is not None else []


def finish_tracking(trainer, summary: dict, status: str = "finished") -> None:
    """Log the summary and figures to the run's tracker, if it has one (rank 0: the others have none left)."""
    for cb in trainer.callbacks:
        if isinstance(cb, tracking.Tracker) and trainer.world.is_main:
            cb.finish(summary, status)


def write_metrics(run_dir: Path, history: list[dict]) -> None:
    """metrics.csv of a resumed run's history, by rank 0 alone."""
    if distributed.world().is_main:
        runs.write_metrics(run_dir, history)


def data_line(data: ImageDataset) -> str:
    return f"data {data.name} ({len(data.train):,} train / {len(data.test):,} test)"


def base_summary(trainer, kind: str, data: ImageDataset, device, status: str, wall: float) -> dict:
    """The summary.json keys every run has: what it is, how far it got, how long it took, on what."""
    return {
        "model": kind,
        "status": status,
        "epochs": trainer.epoch,
        **timing(trainer.history, wall),
        "dataset": data.info(),
        "device": describe(device),
        "params": sum(p.numel() for p in trainer.model.parameters()),
    }


def timing(history: list[dict], wall: float) -> dict:
    """The summary's timing keys, the same for every command."""
    return {
        "wall_time_s": round(wall, 2),
        "train_time_s": round(sum(r["time_s"] for r in history), 2),
        "images_per_s": round(float(np.mean([r["images_per_s"] for r in history])), 1)
        if history
        else 0.0,
    }


# ---------------------------------------------------------------- resuming


@dataclass
class Resumed:
    """A run to continue: its folder, its last checkpoint and how many epochs it has done."""

    run_dir: Path
    checkpoint: Path
    payload: dict[str, Any]
    kind: str
    done: int


def open_resume(run: str | Path, command: str = "train", family: str | None = None) -> Resumed:
    """The last checkpoint of a run folder (or of the folder of a checkpoint file) of a family that
    `command` trains (or of `family`), in today's layout (its family's upgrade applied)."""
    from udlcli.core.loading import read_checkpoint
    from udlcli.models import REGISTRY, families
    from udlcli.models.registry import a_kind

    run_dir = Path(run)
    if run_dir.is_file():  # a checkpoint path: its run folder is two levels up
        run_dir = run_dir.parent.parent if run_dir.parent.name == runs.WEIGHTS else run_dir.parent
    if not run_dir.is_dir():
        raise CheckpointError(f"--resume {run}: no such run folder or checkpoint")
    last = run_dir / runs.WEIGHTS / "last.pt"
    if not last.is_file():
        raise CheckpointError(
            f"--resume {run}: no checkpoint at {last}; nothing to resume (start a new run instead)"
        )
    payload = read_checkpoint(last)
    kind = payload.get("kind")
    owner = REGISTRY.get(kind or "")
    if owner is None or owner.command != command or (family is not None and kind != family):
        how = f"; resume it with {owner.resumes()} {run_dir}" if owner is not None else ""
        mine = [family] if family is not None else [f.name for f in families(command=command)]
        made = (
            " or ".join(f"{a_kind(k)} run" for k in mine)
            if len(mine) <= 2
            else f"a run of udl {command}"
        )
        raise CheckpointError(f"--resume {run}: {run_dir} is {a_kind(kind)} run, not {made}{how}")
    if "spec" not in payload or "epoch" not in payload:
        raise CheckpointError(f"{last} holds no run spec; it was not written by udl")
    return Resumed(run_dir, last, payload, kind, int(payload["epoch"]))


def extend(train_cfg, done: int, epochs: int | None, device: str | None, run_dir: Path) -> None:
    """The one --epochs rule: a new total above the epochs done, or the run's own; --device may change too."""
    if epochs is not None:
        if epochs <= done:
            raise SpecError(
                f"--epochs {epochs}: the run already has {done} epochs; give a larger number to extend it"
            )
        train_cfg.epochs = epochs
    if device is not None:
        train_cfg.device = device
    if done >= train_cfg.epochs:
        raise SpecError(
            f"{run_dir} already finished {done}/{train_cfg.epochs} epochs; pass --epochs N (N > {done}) to extend it"
        )


def check_same_data(payload: dict, data: ImageDataset) -> None:
    was = (payload.get("data") or {}).get("name")
    if was and was != data.name:
        raise CheckpointError(
            f"this run was trained on {was!r} but {data.name!r} was loaded now; point --data-dir at the original data"
        )


def say_resuming(r: Resumed, epochs: int, device: torch.device) -> None:
    ui.info(
        f"resuming [cyan]{r.run_dir}[/] at epoch {r.done + 1}/{epochs}; device {describe(device)}"
    )
