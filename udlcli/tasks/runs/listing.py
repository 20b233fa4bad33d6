"""`udl runs`: every run folder under a root, read from its files alone (no tracker), and runs compared side by side.

A run folder is runs/<task>/<name>/ with spec.yaml (the spec and its meta: block), metrics.csv (one
row per finished epoch), summary.json (written when the run ends) and weights/. A folder missing
some of these is listed with what it has (a run still training, or stopped, has no summary yet);
one whose files cannot be read is listed as broken, with why, and never stops the listing.
"""

from __future__ import annotations

import csv
import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

from udlcli.config import flatten
from udlcli.core import runs
from udlcli.errors import CheckpointError

KEY_METRICS = (
    ("test_accuracy", "test accuracy", "max"),
    ("test_mse", "test MSE", "min"),
    ("best.value", "best value", "min"),  # a tuning study
)
"""summary.json keys shown as a run's key metric, the first present wins (with the better direction);
a family's own (registry.Family.key_metric, kept in summary.json's key_metric) comes first."""


@dataclass
class RunInfo:
    path: str
    task: str
    name: str
    status: str
    """finished | interrupted | diverged (from summary.json), incomplete (no summary yet), broken."""
    epochs: int | None = None
    epochs_planned: int | None = None
    metric: str | None = None
    value: float | None = None
    dataset: str | None = None
    device: str | None = None
    precision: str | None = None
    """What it trained in (train.precision: what --precision auto chose, or what was asked)."""
    created: str | None = None
    problem: str | None = None
    """Why a broken run is broken (which file, what is wrong)."""
    spec: dict = field(default_factory=dict, repr=False)
    summary: dict = field(default_factory=dict, repr=False)

    def public(self) -> dict:
        """What `udl runs --json` prints for it (no nested spec or summary)."""
        d = asdict(self)
        d.pop("spec"), d.pop("summary")
        return d


def list_runs(root: str | Path = "runs") -> list[RunInfo]:
    """Every run folder under root (runs/<task>/<name>/), oldest first; broken ones included."""
    root = Path(root)
    if not root.is_dir():
        raise CheckpointError(f"{root}: no such runs folder; train something first or pass --root")
    found = [
        read_run(d)
        for task in sorted(p for p in root.iterdir() if p.is_dir())
        for d in sorted(task.iterdir(), key=runs.natural_key)
        if d.is_dir() and _looks_like_run(d)
    ]
    return sorted(found, key=lambda r: (r.created or "", r.path))


def _looks_like_run(d: Path) -> bool:
    return any((d / f).exists() for f in ("spec.yaml", "summary.json", "metrics.csv", runs.WEIGHTS))


def read_run(d: Path) -> RunInfo:
    """One run folder as a RunInfo; unreadable files make it broken, never an exception."""
    info = RunInfo(path=str(d), task=d.parent.name, name=d.name, status="incomplete")
    try:
        info.spec = _read_yaml(d / "spec.yaml")
        info.summary = _read_json(d / "summary.json")
        rows = _read_rows(d / "metrics.csv")
    except ValueError as e:
        info.status, info.problem = "broken", str(e)
        return info
    meta = info.spec.get("meta") or {}
    train = info.spec.get("train") or {}
    s = info.summary
    if not info.spec and not s:
        info.status, info.problem = "broken", "no spec.yaml and no summary.json"
    elif s:
        info.status = str(s.get("status", "finished"))
    info.epochs = int(s["epochs"]) if isinstance(s.get("epochs"), int) else len(rows) or None
    info.epochs_planned = train.get("epochs") if isinstance(train.get("epochs"), int) else None
    if info.epochs and info.epochs_planned and s:  # a resumed run extended with --epochs
        info.epochs_planned = max(info.epochs_planned, info.epochs)
    own = s.get("key_metric") if isinstance(s.get("key_metric"), dict) else {}
    for key, label, _ in [("key_metric.value", own.get("name"), None), *KEY_METRICS]:
        v = flatten(s).get(key)
        if label and isinstance(v, (int, float)) and math.isfinite(v):
            info.metric, info.value = label, float(v)
            break
    else:
        last = rows[-1] if rows else {}
        for key in ("val_loss", "g_loss", "loss"):
            if key in last:
                info.metric, info.value = f"last {key}", _number(last[key])
                break
    dataset = (s.get("dataset") or meta.get("dataset") or {}) if isinstance(s, dict) else {}
    info.dataset = dataset.get("name") if isinstance(dataset, dict) else None
    info.device = s.get("device") or meta.get("device")
    precision = train.get("precision")
    info.precision = str(precision) if precision is not None else None
    info.created = meta.get("created")
    return info


def _read_yaml(path: Path) -> dict:
    if not path.is_file():
        return {}
    try:
        data = yaml.safe_load(path.read_text())
    except (yaml.YAMLError, UnicodeDecodeError) as e:
        raise ValueError(f"spec.yaml is not valid YAML ({str(e).splitlines()[0]})") from None
    if not isinstance(data, dict):
        raise ValueError("spec.yaml does not hold a mapping")
    return data


def _read_json(path: Path) -> dict:
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"summary.json is not valid JSON ({e})") from None
    if not isinstance(data, dict):
        raise ValueError("summary.json does not hold an object")
    return data


def _read_rows(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    try:
        with open(path, newline="") as f:
            return list(csv.DictReader(f))
    except (csv.Error, UnicodeDecodeError) as e:
        raise ValueError(f"metrics.csv cannot be read ({e})") from None


def _number(text: Any) -> float | None:
    try:
        return float(text)
    except (TypeError, ValueError):
        return None


# ---------------------------------------------------------------- compare


@dataclass
class Comparison:
    runs: list[RunInfo]
    spec: list[tuple[str, list[Any]]]
    """Flattened spec keys (model.channels, train.lr, ...) and each run's value."""
    metrics: list[tuple[str, list[Any]]]
    """Flattened summary numbers (test_mse, test.loss, images_per_s, ...) and each run's value."""

    @staticmethod
    def differs(values: list[Any]) -> bool:
        return len({json.dumps(v, sort_keys=True, default=str) for v in values}) > 1


def compare_runs(paths: list[str | Path]) -> Comparison:
    """Two or more run folders: their specs and summary numbers, key by key."""
    if len(paths) < 2:
        raise CheckpointError("udl runs compare: give two or more run folders")
    infos = []
    for p in paths:
        if not Path(p).is_dir():
            raise CheckpointError(f"{p}: no such run folder")
        infos.append(read_run(Path(p)))
    specs = [flatten({k: v for k, v in r.spec.items() if k != "meta"}) for r in infos]
    nums = [
        {k: v for k, v in flatten(r.summary).items() if isinstance(v, (int, float, str, bool))}
        for r in infos
    ]
    for r, n in zip(infos, nums):
        n.setdefault("status", r.status)
    return Comparison(infos, _table(specs), _table(nums))


def _table(dicts: list[dict]) -> list[tuple[str, list[Any]]]:
    keys = list(dict.fromkeys(k for d in dicts for k in d))
    return [(k, [d.get(k) for d in dicts]) for k in keys]
