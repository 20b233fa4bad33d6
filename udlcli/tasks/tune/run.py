"""`udl tune`: a seeded TPE study with pruning over an objective's search space; resumable, and shared by worker processes or machines.

How a study stays exact with several writers (docs/tuning.md):

    finished = COMPLETE + PRUNED trials; --trials N is the total the study should reach.
    A worker starts a trial only while finished + running < N, and a trial counts only if fewer than
    N trials with lower numbers are finished or running when it ends; otherwise it is marked FAIL
    as surplus. So the study never goes past N, and workers keep going until exactly N are finished.
    Trials left RUNNING by a dead process (its pid gone from this host, or, on PostgreSQL/MySQL, its
    heartbeat stale) are marked FAIL and not counted. Every tell is a committed write (SQLite/RDB
    transaction, or an appended journal line), so a SIGKILLed worker never loses a finished trial.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from udlcli import ui
from udlcli.core import tracking
from udlcli.core.device import parse_devices, round_robin, use_device
from udlcli.errors import SpecError
from udlcli.tasks.tune import tracking as tune_tracking
from udlcli.tasks.tune.space import objectives
from udlcli.tasks.tune.storage import (
    StorageError,
    choose_storage,
    counts,
    fail_orphans,
    open_storage,
    shown,
    status_line,
)
from udlcli.tasks.tune.workers import Plan, run_here, run_workers

Pruner = Literal["median", "hyperband", "none"]


@dataclass
class TuneResult:
    study_dir: Path
    summary: dict
    top: list[dict] = field(default_factory=list)
    interrupted: bool = False


@dataclass
class TuneOptions:
    objective: str = "ae"
    study_name: str | None = None
    storage: str | None = None
    trials: int | None = None
    max_epochs: int | None = None
    pruner: Pruner = "median"
    n_jobs: int = 1
    devices: str | None = None
    """--devices cuda:0,cuda:1: the workers' devices, round-robin (2 workers a GPU for --n-jobs 4)."""
    timeout: float | None = None
    seed: int = 0
    out: Path = Path("runs")
    command: str = ""


def tune(
    opts: TuneOptions,
    config_path: str | None = None,
    flags: dict | None = None,
    sets: list[str] | None = None,
) -> TuneResult:
    """Validate, open or create the study, run the workers, then write trials.csv, figures/, best.yaml and summary.json."""
    from udlcli.tasks.tune import outputs as tune_outputs

    known = objectives()
    if opts.objective not in known:
        raise SpecError(
            f"udl tune {opts.objective}: unknown objective; choose one of: {', '.join(known)} "
            "(a model's validation loss, or finetune: the classifier head on a frozen encoder)"
        )
    n = opts.trials if opts.trials is not None else known[opts.objective].search_cls.trials
    if n < 1:
        raise SpecError(
            f"--trials {n}: give the total number of finished trials the study should have (>= 1)"
        )
    if opts.n_jobs < 1:
        raise SpecError(f"--n-jobs {opts.n_jobs}: give 1 or more worker processes")
    if opts.timeout is not None and opts.timeout <= 0:
        raise SpecError(f"--timeout {opts.timeout}: give seconds > 0")
    epochs = opts.max_epochs or 40
    if epochs < 1:
        raise SpecError(f"--max-epochs {epochs}: give 1 or more epochs a trial")
    devices = parse_devices(opts.devices) if opts.devices else None
    if devices and (flags or {}).get("train.device"):
        raise SpecError(
            "give --device (every worker on one device) or --devices (a list), not both"
        )
    flags = {**(flags or {}), "train.epochs": epochs, "train.seed": opts.seed}
    if devices and opts.n_jobs == 1:  # one worker, in this process: on the first device
        flags["train.device"] = use_device(devices[0])
    obj_cls = known[opts.objective]
    obj = obj_cls.resolve(config_path, flags, sets or [], opts.out)
    study_name = opts.study_name or f"{opts.objective}-study"
    study_dir = Path(opts.out) / "tune" / study_name
    train = obj.base.get("train", {})
    track, uri = train.get("track", "none"), train.get("mlflow_uri")
    tracking.check_backend(track, uri)  # before the study or its folder exists
    storage, kind, why = choose_storage(opts.storage, study_dir, opts.n_jobs)
    if opts.storage is None:
        study_dir.mkdir(parents=True, exist_ok=True)
    store = open_storage(storage, kind)
    study = _open_study(study_name, store, storage, obj)
    fail_orphans(study)
    plan = Plan(
        opts.objective,
        obj.base,
        obj.search.model_dump(mode="json"),
        study_name,
        storage,
        kind,
        n,
        opts.pruner,
        epochs,
        opts.seed,
        None if opts.timeout is None else time.time() + opts.timeout,
        str(opts.out),
        devices,
        track,
        uri,
        tune_tracking.start_study(track, study, study_dir, obj.base, uri)
        if track != "none"
        else None,
        str(study_dir),
    )
    c = counts(study)
    on_devices = f" on {', '.join(round_robin(devices, opts.n_jobs))}" if devices else ""
    ui.info(
        f"[bold]study {study_name}[/]: {opts.objective} ({obj.metric}), TPE seed {opts.seed}, pruner {opts.pruner}, "
        f"max {epochs} epochs a trial; storage {shown(storage)} ({why}); {opts.n_jobs} worker(s){on_devices}; {status_line(c, n)}"
    )
    study_dir.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    interrupted = False
    if c["finished"] >= n:
        ui.info(
            f"the study already has {c['finished']} finished trials (asked for {n}); nothing to run. Give a larger --trials to continue it"
        )
    elif opts.n_jobs == 1:
        interrupted = run_here(plan, obj)
    else:
        interrupted = run_workers(plan, opts.n_jobs, study)
    fail_orphans(study)
    wall = time.perf_counter() - t0
    summary, top = tune_outputs.write_all(
        study, study_dir, obj, plan, storage=shown(storage), wall_s=wall, command=opts.command
    )
    if track != "none":
        tune_tracking.finish_study(track, plan.parent_run, study_dir, summary, uri)
    return TuneResult(study_dir, summary, top, interrupted)


def _open_study(name: str, store, storage: str, obj):
    """Create the study or load it; an existing one must have the same objective, search space and data."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    mine = {
        "udl_objective": obj.name,
        "udl_search": obj.search.model_dump(mode="json"),
        "udl_data": obj.data_key(),
    }
    study = optuna.create_study(
        study_name=name, storage=store, direction=obj.direction, load_if_exists=True
    )
    if study.direction.name.lower() != obj.direction:
        raise StorageError(
            f"study {name!r} in {shown(storage)} {study.direction.name.lower()}s its value, and {obj.name}'s "
            f"{obj.metric} is {obj.direction}d: use another --study-name"
        )
    have = study.user_attrs
    if not have and not study.get_trials(deepcopy=False):
        for k, v in mine.items():
            study.set_user_attr(k, v)
        return study
    for key, what in (
        ("udl_objective", "objective"),
        ("udl_data", "data"),
        ("udl_search", "search space"),
    ):
        if have.get(key) != mine[key]:
            raise StorageError(
                f"study {name!r} in {shown(storage)} was made with {what} {have.get(key)!r}, not {mine[key]!r}; "
                f"use another --study-name, or the same {what} to continue it"
            )
    return study
