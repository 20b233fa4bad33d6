"""Run folders, ultralytics-style: runs/<task>/<name>/ with auto-incremented names and newest-run lookup."""

from __future__ import annotations

import re
from pathlib import Path

from udlcli.errors import CheckpointError

WEIGHTS = "weights"


def new_run_dir(
    root: Path | str,
    task: str,
    name: str | None = None,
    subdirs: tuple[str, ...] = (WEIGHTS, "figures"),
) -> Path:
    """Create and return runs/<task>/<name>, adding 2, 3, ... when the name is taken (never overwrites)."""
    base = Path(root) / task
    stem = name or task
    candidate, i = base / stem, 1
    while candidate.exists():
        i += 1
        candidate = base / f"{stem}{i}"
    candidate.mkdir(parents=True)
    for sub in subdirs:
        (candidate / sub).mkdir()
    return candidate


def natural_key(p: Path):
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", p.name)]


def newest_run(root: Path | str, task: str | tuple[str, ...], make: str = "") -> Path:
    """The most recently written run of a task (or of any of several tasks) that has a checkpoint.

    `make` names the command that makes such a run, for the error when there is none."""
    tasks = (task,) if isinstance(task, str) else tuple(task)
    runs = [
        p
        for t in tasks
        for p in (Path(root) / t).glob("*")
        if (p / WEIGHTS / "last.pt").is_file() or (p / WEIGHTS / "best.pt").is_file()
    ]
    if not runs:
        where = " or ".join(str(Path(root) / t) for t in tasks)
        how = f"make one first ({make}) or pass a run folder" if make else "pass a run folder"
        raise CheckpointError(f"no {'/'.join(tasks)} run with weights under {where}; {how}")
    return max(runs, key=lambda p: ((p / WEIGHTS).stat().st_mtime, natural_key(p)))


def resolve_checkpoint(
    path: Path | str | None,
    root: Path | str,
    task: str | tuple[str, ...],
    prefer: str = "best",
    make: str = "",
) -> tuple[Path, Path]:
    """Accept a run folder, a checkpoint file or nothing (newest run); return (run_dir, checkpoint)."""
    if path is None:
        run = newest_run(root, task, make)
    else:
        p = Path(path)
        if p.is_file():
            run = p.parent.parent if p.parent.name == WEIGHTS else p.parent
            return run, p
        if not p.is_dir():
            raise CheckpointError(f"{p}: no such run folder or checkpoint file")
        run = p
    for name in (f"{prefer}.pt", "last.pt", "best.pt"):
        ck = run / WEIGHTS / name
        if ck.is_file():
            return run, ck
    raise CheckpointError(
        f"{run} has no checkpoint (expected {run / WEIGHTS / 'last.pt'}); is it a udl run folder?"
    )


# ---------------------------------------------------------------- files every run folder holds


def versions() -> dict[str, str]:
    import platform

    import torch
    import torchvision

    from udlcli import __version__

    return {
        "udl": __version__,
        "torch": str(torch.__version__),
        "torchvision": str(torchvision.__version__),
        "python": platform.python_version(),
    }


def write_spec(run_dir: Path, spec: dict, meta: dict) -> Path:
    """spec.yaml: the resolved spec (readable back by --config) plus a meta: block udl ignores on input."""
    from udlcli.config import dump_yaml

    path = run_dir / "spec.yaml"
    path.write_text(dump_yaml({**spec, "meta": meta}))
    return path


def write_metrics(run_dir: Path, history: list[dict]) -> Path:
    """metrics.csv, one row per epoch; rewritten whole so it always matches the checkpoint's history."""
    import csv

    path = run_dir / "metrics.csv"
    cols: list[str] = []
    for row in history:
        cols += [k for k in row if k not in cols and k != "epochs"]
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=cols, extrasaction="ignore")
        w.writeheader()
        for row in history:
            w.writerow(
                {
                    k: (f"{v:.6g}" if isinstance(v, float) else v)
                    for k, v in row.items()
                    if k in cols
                }
            )
    tmp.replace(path)
    return path


def write_json(path: Path, data: dict) -> Path:
    import json

    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, default=str) + "\n")
    tmp.replace(path)
    return path
