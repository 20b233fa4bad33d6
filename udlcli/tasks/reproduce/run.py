"""`udl reproduce`: run a study's steps in dependency order, with done-markers for --resume, and rewrite the report after each."""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from udlcli import ui
from udlcli.core import runs
from udlcli.errors import Interrupted, SpecError, UdlError
from udlcli.tasks.reproduce.checks import CHECKS
from udlcli.tasks.reproduce.steps import RUNNERS, Context, StepOutput
from udlcli.tasks.reproduce.study import Study, load_study

DEFAULT_STUDY = Path("examples/report.yaml")
STUDIES = Path(__file__).resolve().parents[2] / "studies"
"""udlcli/studies/: the studies shipped with udl (`udl reproduce --study NAME`); report.yaml is the default."""
PACKAGED_STUDY = STUDIES / "report.yaml"
"""examples/report.yaml shipped inside the package, used when the working folder has no examples/report.yaml."""
STUDY_COPY = "study.yaml"
SETTINGS = "reproduce.json"
STATE = "state"
"""state/<step>.json: written when a step ends; status "done" is the marker that its outputs are complete."""


@dataclass
class ReproduceResult:
    report_dir: Path
    study: Study
    states: dict[str, dict]
    ran: list[str] = field(default_factory=list)
    files: list[Path] = field(default_factory=list)


def default_study() -> Path:
    """examples/report.yaml of the working folder (a checkout), else the copy installed with udl."""
    return DEFAULT_STUDY if DEFAULT_STUDY.is_file() else PACKAGED_STUDY


def packaged_study(name: str) -> Path:
    """The study udl ships under this name (`udl reproduce --study families`)."""
    path = STUDIES / f"{name}.yaml"
    if not path.is_file():
        known = ", ".join(sorted(p.stem for p in STUDIES.glob("*.yaml")))
        raise SpecError(f"--study {name}: no such study shipped with udl; choose one of: {known}")
    return path


def _read_state(report_dir: Path) -> dict[str, dict]:
    out = {}
    for p in sorted((report_dir / STATE).glob("*.json")):
        try:
            out[p.stem] = json.loads(p.read_text())
        except (OSError, ValueError):
            continue  # a half-written state file: the step is treated as not done
    return out


def _source_of(report_dir: Path) -> str | None:
    try:
        return json.loads((report_dir / SETTINGS).read_text()).get("source")
    except (OSError, ValueError, AttributeError):
        return None  # a half-written or foreign settings file: not this study's report


def _newest_report(out: Path, source: str | None = None) -> Path:
    found = [
        p
        for p in (out / "report").glob("*")
        if (p / SETTINGS).is_file() and (source is None or _source_of(p) == source)
    ]
    if not found:
        of = f" of {source}" if source else ""
        raise SpecError(
            f"--only/--from rerun steps of an existing report{of}, and there is none under {out / 'report'}; run `udl reproduce` first"
        )
    return max(found, key=lambda p: (p / SETTINGS).stat().st_mtime)


def select_steps(
    study: Study, states: dict[str, dict], only: list[str], from_: str | None, fresh: bool
) -> list[str]:
    """The steps to run now: --only's, or --from's step and all after it, or every step not yet done."""
    names = list(study.steps)
    for s in [*only, *([from_] if from_ else [])]:
        if s not in study.steps:
            raise SpecError(f"no step {s!r} in {study.path}; steps are: {', '.join(names)}")
    if only:
        chosen = [n for n in names if n in only]
    elif from_:
        chosen = names[names.index(from_) :]
    else:
        chosen = [n for n in names if fresh or states.get(n, {}).get("status") != "done"]
    for n in chosen:
        missing = [
            d
            for d in study.steps[n].needs
            if d not in chosen and states.get(d, {}).get("status") != "done"
        ]
        if missing:
            raise SpecError(
                f"step {n} needs {', '.join(missing)}, which has not finished in this report; run it too (--from {missing[0]})"
            )
    return chosen


def reproduce(
    spec_path: str | Path | None = None,
    profile: str | None = None,
    out: str | Path = "runs",
    name: str | None = None,
    resume: str | Path | None = None,
    only: list[str] | None = None,
    from_: str | None = None,
    device: str | None = None,
    seed: int | None = None,
    data_dir: str | Path | None = None,
    command: str = "",
    track: str | None = None,
    mlflow_uri: str | None = None,
    packaged: str | None = None,
) -> ReproduceResult:
    """Validate the whole study first, then run the chosen steps; a failing step stops the chain with a resume hint.

    packaged names a study shipped with udl (udlcli/studies/NAME.yaml) instead of a spec_path.
    """
    from udlcli.tasks.reproduce import report

    out, only = Path(out), list(only or [])
    if packaged is not None:
        if spec_path is not None:
            raise SpecError("give a study file or --study NAME, not both")
        if resume is not None:
            raise SpecError("--resume continues a report with the study saved in it; drop --study")
        spec_path = packaged_study(packaged)
    if resume is None and (only or from_):
        # With --study, the newest report of that study; else the newest of any.
        resume = _newest_report(out, str(spec_path) if packaged is not None else None)
        if packaged is not None:
            spec_path = None
        ui.console.print(
            f"rerunning steps of the newest report, {resume}", soft_wrap=True
        )  # even with --quiet: it names what changes
    if resume is not None:
        report_dir = Path(resume)
        if spec_path is not None or profile is not None or name is not None:
            raise SpecError(
                "--resume continues a report with the study and profile saved in it; drop the study file, --profile and --name"
            )
        if not (report_dir / SETTINGS).is_file():
            raise SpecError(
                f"--resume {report_dir}: not a udl reproduce folder (no {SETTINGS}); give runs/report/<name>"
            )
        settings = json.loads((report_dir / SETTINGS).read_text())
        study = load_study(report_dir / STUDY_COPY, settings["profile"])
        for k, v in dict(
            device=device,
            seed=seed,
            data_dir=str(data_dir) if data_dir else None,
            track=track,
            mlflow_uri=mlflow_uri,
        ).items():
            settings[k] = v if v is not None else settings.get(k)
    else:
        spec_path = Path(spec_path) if spec_path else default_study()
        if not spec_path.is_file():
            raise SpecError(
                f"study file not found: {spec_path} (give one, e.g. udl reproduce examples/report.yaml)"
            )
        study = load_study(spec_path, profile or "quick")
        settings = {
            "source": str(spec_path),
            "profile": study.profile,
            "device": device,
            "seed": seed,
            "data_dir": str(data_dir) if data_dir else None,
            "track": track,
            "mlflow_uri": mlflow_uri,
            "command": command,
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        }
    if settings.get("track") not in (None, "none", "tensorboard", "mlflow"):
        raise SpecError(f"--track {settings['track']!r}: choose none, tensorboard or mlflow")
    from udlcli.core import tracking

    tracking.check_backend(settings.get("track") or "none", settings.get("mlflow_uri"))
    states = _read_state(report_dir) if resume is not None else {}
    chosen = select_steps(study, states, only, from_, fresh=resume is None)
    _check_specs(
        study,
        chosen,
        Context(
            Path(out),
            study.data,
            {},
            settings["device"],
            settings["seed"],
            settings["data_dir"],
            settings.get("track"),
            settings.get("mlflow_uri"),
        ),
    )
    if resume is None:
        report_dir = runs.new_run_dir(out, "report", name or study.name, subdirs=(STATE,))
        shutil.copyfile(spec_path, report_dir / STUDY_COPY)
    settings["versions"] = runs.versions()
    runs.write_json(report_dir / SETTINGS, settings)
    ctx = Context(
        report_dir / "steps",
        study.data,
        {n: StepOutput(**s["output"]) for n, s in states.items() if s.get("status") == "done"},
        settings["device"],
        settings["seed"],
        settings["data_dir"],
        settings.get("track"),
        settings.get("mlflow_uri"),
    )
    result = ReproduceResult(report_dir, study, states)
    ui.info(
        f"[bold]{study.name}[/] ({study.profile} profile): {len(chosen)} of {len(study.steps)} steps to run; report folder [cyan]{report_dir}[/]"
    )
    for n in chosen:
        states.pop(n, None)
    for n in chosen:
        _overview(study, states, running=n)
        _run_step(study, n, ctx, states, report_dir)
        result.ran.append(n)
        result.files = report.write(report_dir, study, states, settings)
    _overview(study, states)
    result.files = report.write(report_dir, study, states, settings)
    return result


def _check_specs(study: Study, chosen: list[str], ctx: Context) -> None:
    """Every chosen step's spec fields are validated before the first step runs: no half-run study for a typo."""
    for n in chosen:
        step = study.steps[n]
        check = CHECKS.get(step.command)
        try:
            if check is not None:
                check(step, ctx)
        except SpecError as e:
            raise SpecError(f"{study.path}:{step.line}: step {n}: {e}") from None


def _run_step(
    study: Study, n: str, ctx: Context, states: dict[str, dict], report_dir: Path
) -> None:
    from udlcli.tasks.reproduce import report

    step = study.steps[n]
    t0 = time.perf_counter()
    state = {
        "step": n,
        "run": step.params.run,
        "started": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    try:
        output = RUNNERS[step.command](step, ctx)
    except (UdlError, KeyboardInterrupt) as e:
        msg = "interrupted" if isinstance(e, KeyboardInterrupt) else str(e)
        states[n] = {
            **state,
            "status": "failed",
            "error": msg,
            "wall_s": round(time.perf_counter() - t0, 1),
        }
        runs.write_json(report_dir / STATE / f"{n}.json", states[n])
        _overview(study, states)
        report.write(report_dir, study, states, json.loads((report_dir / SETTINGS).read_text()))
        hint = f"fix it and continue with: udl reproduce --resume {report_dir}"
        if isinstance(e, (KeyboardInterrupt, Interrupted)):
            raise Interrupted(
                f"step {n} interrupted; finished steps are kept. Continue with: udl reproduce --resume {report_dir}"
            ) from None
        raise type(e)(f"step {n} ({step.params.run}) failed: {msg}; {hint}") from None
    ctx.outputs[n] = output
    # Written last, after the step's own outputs are complete: this file is the step's done-marker.
    states[n] = {
        **state,
        "status": "done",
        "wall_s": round(time.perf_counter() - t0, 1),
        "output": output.to_dict(),
    }
    runs.write_json(report_dir / STATE / f"{n}.json", states[n])


def _overview(study: Study, states: dict[str, dict], running: str | None = None) -> None:
    """The table of steps (pending / running / done / failed, with times); each step's own progress prints below it."""
    if ui.is_quiet():
        if running:
            ui.console.print(f"step {running}: {study.steps[running].params.run}")
        return
    from rich.table import Table

    style = {"done": "green", "failed": "red", "running": "yellow", "pending": "dim"}
    t = Table(title=f"{study.name} ({study.profile})", title_justify="left")
    for col in ("step", "command", "status", "time"):
        t.add_column(col, justify="right" if col == "time" else "left")
    for n, s in study.steps.items():
        st = "running" if n == running else states.get(n, {}).get("status", "pending")
        wall = states.get(n, {}).get("wall_s") if st != "running" else None
        t.add_row(n, s.params.run, f"[{style[st]}]{st}[/]", "" if wall is None else _fmt_time(wall))
    ui.print_table(t)


def _fmt_time(s: float) -> str:
    return f"{s:.0f} s" if s < 120 else f"{s / 60:.1f} min"
