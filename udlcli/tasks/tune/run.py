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

import os
import signal
import socket
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Literal

from udlcli import ui
from udlcli.tasks.tune.space import OBJECTIVES
from udlcli.tasks.tune.storage import StorageError, choose_storage, counts, fail_orphans, open_storage, shown, status_line
from udlcli.errors import SpecError, TrainingDiverged, UdlError, shorten

Pruner = Literal["median", "hyperband", "none"]
DEFAULT_TRIALS = {"ae": 100, "finetune": 50}
"""The report's study sizes."""


class Surplus(Exception):
    """The study already has its N trials; this one is marked FAIL and not counted."""


class StopRequested(Exception):
    """Ctrl-C: stop after the current epoch."""


@dataclass
class Plan:
    """Everything a worker process needs (plain data: it is pickled for spawn)."""

    objective: str
    base: dict
    search: dict
    study: str
    storage: str
    storage_kind: str
    trials: int
    pruner: str
    max_epochs: int
    seed: int
    deadline: float | None
    root: str


@dataclass
class TuneResult:
    study_dir: Path
    summary: dict
    top: list[dict] = field(default_factory=list)
    interrupted: bool = False


def make_pruner(name: str, max_epochs: int):
    import optuna

    return {
        "median": lambda: optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=0),
        "hyperband": lambda: optuna.pruners.HyperbandPruner(min_resource=1, max_resource=max_epochs, reduction_factor=3),
        "none": lambda: optuna.pruners.NopPruner(),
    }[name]()


def _rank(study, number: int) -> int:
    """How many trials with a lower number are finished or still running (so count against N)."""
    from optuna.trial import TrialState

    live = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING, TrialState.WAITING)
    return sum(1 for t in study.get_trials(deepcopy=False, states=live) if t.number < number)


def work(plan: Plan, worker: int, stop, on_trial: Callable[[dict], None] | None = None, obj=None) -> None:
    """One worker: run trials until the study has plan.trials finished ones, the deadline passes, or stop is set.

    obj: the objective already resolved in this process (its loaded data and AE are reused); workers build their own.
    """
    import optuna

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    storage = open_storage(plan.storage, plan.storage_kind)
    sampler = optuna.samplers.TPESampler(seed=plan.seed + worker)  # workers must not draw the same startup trials
    study = optuna.load_study(study_name=plan.study, storage=storage, sampler=sampler, pruner=make_pruner(plan.pruner, plan.max_epochs))
    obj = obj or OBJECTIVES[plan.objective](plan.base, OBJECTIVES[plan.objective].search_cls.model_validate(plan.search))
    obj.load(Path(plan.root))
    me = f"{socket.gethostname()}:{os.getpid()}"

    def objective(trial) -> float:
        trial.set_user_attr("udl_worker", me)
        if _rank(study, trial.number) >= plan.trials:
            raise _surplus(trial)
        spec = obj.spec_for(obj.search.sample(trial))
        trial.set_user_attr("spec", spec.model_dump(mode="json"))

        def report(epoch: int, row: dict) -> None:
            trial.report(row["val_loss"], epoch)
            if stop.is_set():
                trial.set_user_attr("udl_note", f"interrupted after epoch {epoch}")
                raise StopRequested
            if trial.should_prune():
                raise optuna.TrialPruned(f"pruned after epoch {epoch}")

        try:
            trainer = obj.fit(spec, [report], label=f"trial {trial.number}")
        except TrainingDiverged as e:
            trial.set_user_attr("udl_note", f"diverged: {shorten(str(e), 80)}")
            raise
        except optuna.TrialPruned:
            if _rank(study, trial.number) >= plan.trials:
                raise _surplus(trial) from None
            raise
        if _rank(study, trial.number) >= plan.trials:
            raise _surplus(trial)
        return trainer.best_val

    while not stop.is_set():
        fail_orphans(study)
        c = counts(study)
        if c["finished"] >= plan.trials or (plan.deadline is not None and time.time() > plan.deadline):
            return
        if c["finished"] + c["running"] >= plan.trials:  # the last trials are running elsewhere: wait, they may fail
            time.sleep(1.0)
            continue
        try:
            study.optimize(objective, n_trials=1, catch=(Surplus, TrainingDiverged), gc_after_trial=False)
        except StopRequested:
            return
        if on_trial is not None:
            on_trial(counts(study))


def _surplus(trial) -> Surplus:
    trial.set_user_attr("udl_note", "surplus")
    return Surplus("the study already has its trials")


# ---------------------------------------------------------------- the command


@dataclass
class TuneOptions:
    objective: str = "ae"
    study_name: str | None = None
    storage: str | None = None
    trials: int | None = None
    max_epochs: int | None = None
    pruner: Pruner = "median"
    n_jobs: int = 1
    timeout: float | None = None
    seed: int = 0
    out: Path = Path("runs")
    command: str = ""


def tune(opts: TuneOptions, config_path: str | None = None, flags: dict | None = None, sets: list[str] | None = None) -> TuneResult:
    """Validate, open or create the study, run the workers, then write trials.csv, figures/, best.yaml and summary.json."""
    from udlcli.tasks.tune import outputs as tune_outputs

    if opts.objective not in OBJECTIVES:
        raise SpecError(f"udl tune {opts.objective}: unknown objective; choose ae (the conv AE's validation MSE) or finetune (the classifier head on a frozen encoder)")
    n = opts.trials if opts.trials is not None else DEFAULT_TRIALS[opts.objective]
    if n < 1:
        raise SpecError(f"--trials {n}: give the total number of finished trials the study should have (>= 1)")
    if opts.n_jobs < 1:
        raise SpecError(f"--n-jobs {opts.n_jobs}: give 1 or more worker processes")
    if opts.timeout is not None and opts.timeout <= 0:
        raise SpecError(f"--timeout {opts.timeout}: give seconds > 0")
    epochs = opts.max_epochs or 40
    if epochs < 1:
        raise SpecError(f"--max-epochs {epochs}: give 1 or more epochs a trial")
    flags = {**(flags or {}), "train.epochs": epochs, "train.seed": opts.seed}
    obj_cls = OBJECTIVES[opts.objective]
    obj = obj_cls.resolve(config_path, flags, sets or [], opts.out)
    study_name = opts.study_name or f"{opts.objective}-study"
    study_dir = Path(opts.out) / "tune" / study_name
    storage, kind, why = choose_storage(opts.storage, study_dir, opts.n_jobs)
    if opts.storage is None:
        study_dir.mkdir(parents=True, exist_ok=True)
    store = open_storage(storage, kind)
    study = _open_study(study_name, store, storage, obj)
    fail_orphans(study)
    plan = Plan(opts.objective, obj.base, obj.search.model_dump(mode="json"), study_name, storage, kind, n, opts.pruner, epochs, opts.seed,
                None if opts.timeout is None else time.time() + opts.timeout, str(opts.out))
    c = counts(study)
    ui.info(f"[bold]study {study_name}[/]: {opts.objective} ({obj.metric}), TPE seed {opts.seed}, pruner {opts.pruner}, "
            f"max {epochs} epochs a trial; storage {shown(storage)} ({why}); {opts.n_jobs} worker(s); {status_line(c, n)}")
    study_dir.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    interrupted = False
    if c["finished"] >= n:
        ui.info(f"the study already has {c['finished']} finished trials (asked for {n}); nothing to run. Give a larger --trials to continue it")
    elif opts.n_jobs == 1:
        interrupted = _run_here(plan, obj)
    else:
        interrupted = _run_workers(plan, opts.n_jobs, study)
    fail_orphans(study)
    wall = time.perf_counter() - t0
    summary, top = tune_outputs.write_all(study, study_dir, obj, plan, storage=shown(storage), wall_s=wall, command=opts.command)
    return TuneResult(study_dir, summary, top, interrupted)


def _open_study(name: str, store, storage: str, obj):
    """Create the study or load it; an existing one must have the same objective, search space and data."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    mine = {"udl_objective": obj.name, "udl_search": obj.search.model_dump(mode="json"), "udl_data": obj.data_key()}
    study = optuna.create_study(study_name=name, storage=store, direction="minimize", load_if_exists=True)
    have = study.user_attrs
    if not have and not study.get_trials(deepcopy=False):
        for k, v in mine.items():
            study.set_user_attr(k, v)
        return study
    for key, what in (("udl_objective", "objective"), ("udl_data", "data"), ("udl_search", "search space")):
        if have.get(key) != mine[key]:
            raise StorageError(f"study {name!r} in {shown(storage)} was made with {what} {have.get(key)!r}, not {mine[key]!r}; "
                               f"use another --study-name, or the same {what} to continue it")
    return study


def _on_sigint(stop: threading.Event | object):
    """First Ctrl-C: stop after the current epoch; the second one interrupts at once (default handler)."""

    def handler(signum, frame):
        ui.warn("Ctrl-C: stopping after the current epoch (press again to stop at once)")
        stop.set()
        signal.signal(signal.SIGINT, signal.default_int_handler)

    return handler


def _run_here(plan: Plan, obj) -> bool:
    stop = threading.Event()
    in_main = threading.current_thread() is threading.main_thread()
    old = signal.signal(signal.SIGINT, _on_sigint(stop)) if in_main else None
    try:
        work(plan, 0, stop, on_trial=lambda c: ui.console.print(f"[bold]study[/] {status_line(c, plan.trials)}"), obj=obj)
    finally:
        if in_main:
            signal.signal(signal.SIGINT, old)
    return stop.is_set()


def _worker_main(plan: Plan, worker: int, stop, threads: int) -> None:
    """A spawned worker: quiet, its share of the CPU threads, Ctrl-C left to the parent (it sets stop)."""
    import torch

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    ui.console.quiet = True
    torch.set_num_threads(threads)
    try:
        work(plan, worker, stop)
    except UdlError as e:
        ui.console.quiet = False
        ui.warn(f"worker {worker}: {e}")
        raise SystemExit(e.exit_code) from None


def _run_workers(plan: Plan, n_jobs: int, study) -> bool:
    """Start n_jobs spawned worker processes and show the study's progress until they finish."""
    import multiprocessing as mp

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    ctx = mp.get_context("spawn")  # fork would copy torch's thread pools and the storage's connections
    stop = ctx.Event()
    threads = max(1, (os.cpu_count() or 1) // n_jobs)
    procs = [ctx.Process(target=_worker_main, args=(plan, i, stop, threads), daemon=False) for i in range(n_jobs)]
    for p in procs:
        p.start()
    old = signal.signal(signal.SIGINT, _on_sigint(stop)) if threading.current_thread() is threading.main_thread() else None
    last = None
    live = ui.live_enabled()
    bar = Progress(TextColumn("[bold]study"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[line]}"), TimeElapsedColumn(),
                   console=ui.console, transient=True) if live else None
    try:
        if bar is not None:
            bar.start()
            task = bar.add_task("study", total=plan.trials, line="")
        while any(p.is_alive() for p in procs):
            time.sleep(1.0)
            c = counts(study)
            line = status_line(c, plan.trials)
            if bar is not None:
                bar.update(task, completed=c["finished"], line=line)
            elif line != last:
                ui.console.print(f"[bold]study[/] {line}")
            last = line
    except KeyboardInterrupt:  # the second Ctrl-C: stop the workers now; their trials are failed as orphans
        for p in procs:
            p.terminate()
        stop.set()
    finally:
        for p in procs:
            p.join()
        if bar is not None:
            bar.stop()
        if old is not None:
            signal.signal(signal.SIGINT, old)
    bad = [f"worker {i} exited with {p.exitcode}" for i, p in enumerate(procs) if p.exitcode not in (0, None) and not stop.is_set()]
    if bad:
        ui.warn("; ".join(bad))
    return stop.is_set()

