"""`udl tune`'s workers: the trial loop that keeps a study at exactly N trials, in this process or in spawned ones."""

from __future__ import annotations

import os
import signal
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from udlcli import ui
from udlcli.core.device import round_robin, use_device
from udlcli.errors import TrainingDiverged, UdlError, shorten
from udlcli.tasks.tune.space import objectives
from udlcli.tasks.tune.storage import (
    counts,
    fail_orphans,
    open_storage,
    status_line,
)
from udlcli.tasks.tune.tracking import TrialTracker

Pruner = Literal["median", "hyperband", "none"]


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
    devices: list[str] | None = None
    """--devices: worker i trains on devices[i % len] (None: every worker on the spec's train.device)."""
    track: str = "none"
    """train.track: each trial a child run of the study's parent MLflow run, or a TensorBoard folder."""
    mlflow_uri: str | None = None
    parent_run: str | None = None
    study_dir: str = ""


def make_pruner(name: str, max_epochs: int):
    import optuna

    return {
        "median": lambda: optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=0),
        "hyperband": lambda: optuna.pruners.HyperbandPruner(
            min_resource=1, max_resource=max_epochs, reduction_factor=3
        ),
        "none": lambda: optuna.pruners.NopPruner(),
    }[name]()


def _rank(study, number: int) -> int:
    """How many trials with a lower number are finished or still running (so count against N)."""
    from optuna.trial import TrialState

    live = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING, TrialState.WAITING)
    return sum(1 for t in study.get_trials(deepcopy=False, states=live) if t.number < number)


def work(
    plan: Plan, worker: int, stop, on_trial: Callable[[dict], None] | None = None, obj=None
) -> None:
    """One worker: run trials until the study has plan.trials finished ones, the deadline passes, or stop is set.

    obj: the objective already resolved in this process (its loaded data and AE are reused); workers build their own.
    """
    import optuna

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    storage = open_storage(plan.storage, plan.storage_kind)
    sampler = optuna.samplers.TPESampler(
        seed=plan.seed + worker
    )  # workers must not draw the same startup trials
    study = optuna.load_study(
        study_name=plan.study,
        storage=storage,
        sampler=sampler,
        pruner=make_pruner(plan.pruner, plan.max_epochs),
    )
    device = round_robin(plan.devices, worker + 1)[worker] if plan.devices else None
    base = plan.base
    if device is not None and obj is None:
        base = {**base, "train": {**base["train"], "device": use_device(device)}}
    cls = objectives()[plan.objective]
    obj = obj or cls(base, cls.search_cls.model_validate(plan.search))
    obj.load(Path(plan.root))
    me = f"{socket.gethostname()}:{os.getpid()}"

    def objective(trial) -> float:
        trial.set_user_attr("udl_worker", me)
        trial.set_user_attr("udl_device", device or base["train"]["device"])
        if _rank(study, trial.number) >= plan.trials:
            raise _surplus(trial)
        spec = obj.spec_for(obj.search.sample(trial))
        trial.set_user_attr("spec", spec.model_dump(mode="json"))
        tracked = (
            None
            if plan.track == "none"
            else TrialTracker(
                plan.track,
                Path(plan.study_dir),
                trial.number,
                trial.params,
                plan.mlflow_uri,
                plan.parent_run,
            )
        )

        def report(epoch: int, row: dict) -> None:
            trial.report(row[obj.monitor], epoch)
            if tracked is not None:
                tracked.log_epoch(epoch, row)
            if stop.is_set():
                trial.set_user_attr("udl_note", f"interrupted after epoch {epoch}")
                raise StopRequested
            if trial.should_prune():
                raise optuna.TrialPruned(f"pruned after epoch {epoch}")

        def ended(state: str, value: float | None = None) -> None:
            if tracked is not None:
                tracked.end(state, value)

        try:
            trainer = obj.fit(spec, [report], label=f"trial {trial.number}")
        except TrainingDiverged as e:
            trial.set_user_attr("udl_note", f"diverged: {shorten(str(e), 80)}")
            ended("FAIL")
            raise
        except optuna.TrialPruned:
            ended("PRUNED")
            if _rank(study, trial.number) >= plan.trials:
                raise _surplus(trial) from None
            raise
        except BaseException:
            ended("FAIL")
            raise
        if _rank(study, trial.number) >= plan.trials:
            ended("FAIL")
            raise _surplus(trial)
        value = obj.value(trainer)
        ended("COMPLETE", value)
        return value

    while not stop.is_set():
        fail_orphans(study)
        c = counts(study)
        if c["finished"] >= plan.trials or (
            plan.deadline is not None and time.time() > plan.deadline
        ):
            return
        if (
            c["finished"] + c["running"] >= plan.trials
        ):  # the last trials are running elsewhere: wait, they may fail
            time.sleep(1.0)
            continue
        try:
            study.optimize(
                objective, n_trials=1, catch=(Surplus, TrainingDiverged), gc_after_trial=False
            )
        except StopRequested:
            return
        if on_trial is not None:
            on_trial(counts(study))


def _surplus(trial) -> Surplus:
    trial.set_user_attr("udl_note", "surplus")
    return Surplus("the study already has its trials")


# ---------------------------------------------------------------- the command


def _on_sigint(stop: threading.Event | object):
    """First Ctrl-C: stop after the current epoch; the second one interrupts at once (default handler)."""

    def handler(signum, frame):
        ui.warn("Ctrl-C: stopping after the current epoch (press again to stop at once)")
        stop.set()
        signal.signal(signal.SIGINT, signal.default_int_handler)

    return handler


def run_here(plan: Plan, obj) -> bool:
    stop = threading.Event()
    in_main = threading.current_thread() is threading.main_thread()
    old = signal.signal(signal.SIGINT, _on_sigint(stop)) if in_main else None
    try:
        work(
            plan,
            0,
            stop,
            on_trial=lambda c: ui.console.print(f"[bold]study[/] {status_line(c, plan.trials)}"),
            obj=obj,
        )
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


def run_workers(plan: Plan, n_jobs: int, study) -> bool:
    """Start n_jobs spawned worker processes and show the study's progress until they finish."""
    import multiprocessing as mp

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    ctx = mp.get_context(
        "spawn"
    )  # fork would copy torch's thread pools and the storage's connections
    stop = ctx.Event()
    threads = max(1, (os.cpu_count() or 1) // n_jobs)
    procs = [
        ctx.Process(target=_worker_main, args=(plan, i, stop, threads), daemon=False)
        for i in range(n_jobs)
    ]
    for p in procs:
        p.start()
    old = (
        signal.signal(signal.SIGINT, _on_sigint(stop))
        if threading.current_thread() is threading.main_thread()
        else None
    )
    last = None
    live = ui.live_enabled()
    bar = (
        Progress(
            TextColumn("[bold]study"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[line]}"),
            TimeElapsedColumn(),
            console=ui.console,
            transient=True,
        )
        if live
        else None
    )
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
    except (
        KeyboardInterrupt
    ):  # the second Ctrl-C: stop the workers now; their trials are failed as orphans
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
    bad = [
        f"worker {i} exited with {p.exitcode}"
        for i, p in enumerate(procs)
        if p.exitcode not in (0, None) and not stop.is_set()
    ]
    if bad:
        ui.warn("; ".join(bad))
    return stop.is_set()
