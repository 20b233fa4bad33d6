"""The `udl reproduce` study file: named steps, their references and profiles, validated with YAML line numbers."""

from __future__ import annotations

import fnmatch
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Optional

import yaml
from pydantic import ConfigDict, Field, ValidationError

from udlcli import config
from udlcli.config import Strict
from udlcli.errors import SpecError

# ---------------------------------------------------------------- one model per command a step can run


class _Step(Strict):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    run: str
    """The command as typed after `udl`, e.g. "train ae", "tune finetune", "sample vae"."""
    title: Optional[str] = None
    """A caption for the report; default: the run line."""


class _Trains(_Step):
    spec: dict = {}
    """Fields of the command's run spec (data/model/train/...), as in its --config YAML."""


class TuneStep(_Trains):
    trials: int = Field(20, ge=1)
    max_epochs: int = Field(10, ge=1)
    pruner: Literal["median", "hyperband", "none"] = "median"
    n_jobs: int = Field(1, ge=1)
    from_: Optional[str] = Field(None, alias="from")
    """tune finetune: the step whose AE is searched on."""


class TrainStep(_Trains):
    best_of: Optional[str] = None
    """A tune step: start from its best.yaml (the step's own spec is layered on top)."""


class EmbedStep(_Step):
    from_: str = Field(alias="from")
    method: Literal["pca", "tsne"] = "tsne"
    n: Optional[int] = Field(None, ge=10)
    perplexity: Optional[float] = Field(None, gt=0)


class SampleStep(_Step):
    from_: str = Field(alias="from")
    n: Optional[int] = Field(None, ge=1)
    grid: bool = False
    size: Optional[int] = Field(None, ge=2)
    interpolate: Optional[str] = None


class FinetuneStep(_Trains):
    from_: str = Field(alias="from")
    best_of: Optional[str] = None


class DenoiseStep(_Trains):
    like: Optional[str] = None
    """An AE step whose architecture the DAE copies and which it is compared with."""


class GanStep(_Trains):
    pass


class EvaluateStep(_Step):
    runs: list[str] = Field(min_length=1)
    n: int = Field(10_000, ge=100)


class ProbeStep(_Step):
    from_: str = Field(alias="from")
    features: Optional[str] = None
    """The layer to probe; default: the run's first (an AE's latent, SimCLR's backbone)."""
    k: int = Field(200, ge=1, le=10_000)


def _tunable() -> tuple[str, ...]:
    from udlcli.tasks.tune.space import objectives

    return tuple(objectives())


def _trainable() -> tuple[str, ...]:
    """Families a spec alone trains (a classifier needs an encoder run: its step is `finetune`)."""
    from udlcli.models import REGISTRY

    return tuple(f.name for f in REGISTRY.values() if f.command != "finetune")


def _samplable() -> tuple[str, ...]:
    from udlcli.core.contracts import Generates, Reconstructs
    from udlcli.models import REGISTRY

    return tuple(f.name for f in REGISTRY.values() if f.can(Generates) or f.can(Reconstructs))


# command -> (model, its accepted second words (from the registry), or None for none)
COMMANDS: dict[str, tuple[type[_Step], Callable[[], tuple[str, ...]] | None]] = {
    "tune": (TuneStep, _tunable),
    "train": (TrainStep, _trainable),
    "embed": (EmbedStep, None),
    "sample": (SampleStep, _samplable),
    "finetune": (FinetuneStep, None),
    "denoise": (DenoiseStep, None),
    "gan": (GanStep, None),
    "evaluate": (EvaluateStep, None),
    "probe": (ProbeStep, None),
}
REF_FIELDS = ("from_", "best_of", "like", "runs")
TOP_KEYS = ("name", "description", "data", "steps", "profiles")


@dataclass
class Step:
    name: str
    command: str
    what: str | None
    """The word after the command: the model, objective or sample kind."""
    params: _Step
    needs: list[str] = field(default_factory=list)
    line: int = 0
    """The line of the step's name in the study file, for errors found later."""

    def refs(self, attr: str) -> list[str]:
        v = getattr(self.params, attr, None)
        return [] if v is None else list(v) if isinstance(v, list) else [v]


@dataclass
class Study:
    path: Path
    name: str
    profile: str
    data: dict
    steps: dict[str, Step]
    """In dependency order (ties keep the file's order)."""
    description: str = ""
    profiles: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    """Steps the profile leaves out, in the file's order."""


# ---------------------------------------------------------------- YAML with line numbers


def _lines(node: yaml.Node, path: tuple = (), out: dict | None = None) -> dict[tuple, int]:
    """Map each key path of a composed YAML document to its 1-based line."""
    out = {} if out is None else out
    out.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        for k, v in node.value:
            out[path + (k.value,)] = k.start_mark.line + 1
            _lines(v, path + (k.value,), out)
    elif isinstance(node, yaml.SequenceNode):
        for i, v in enumerate(node.value):
            _lines(v, path + (i,), out)
    return out


def _read(path: Path) -> tuple[dict, dict[tuple, int]]:
    data = config.load_yaml(path)  # one-line errors for a missing or malformed file
    return data, _lines(yaml.compose(path.read_text()) or yaml.MappingNode("", []))


def load_study(path: str | Path, profile: str | None = "quick") -> Study:
    """Read, apply the profile, validate every step and order them; any problem is one SpecError naming the file and line."""
    path = Path(path)
    raw, lines = _read(path)

    def fail(msg: str, *key) -> SpecError:
        line = next((lines[key[:i]] for i in range(len(key), -1, -1) if key[:i] in lines), 1)
        return SpecError(f"{path}:{line}: {msg}")

    for k in raw:
        if k not in TOP_KEYS:
            raise fail(f"unknown key {k!r} (allowed: {', '.join(TOP_KEYS)})", k)
    steps_raw = raw.get("steps")
    if not isinstance(steps_raw, dict) or not steps_raw:
        raise fail("a study needs a steps: mapping of step names to commands", "steps")
    profiles = raw.get("profiles") or {}
    if not isinstance(profiles, dict):
        raise fail("profiles: must be a mapping of profile names, e.g. {quick: {...}}", "profiles")
    # Every step is checked as written, the ones a profile leaves out too: a typo in a step only the
    # full profile runs must not wait for that profile.
    for name, body in steps_raw.items():
        _step(name, body, fail)
    before, skipped = list(steps_raw), set()
    if profile is not None:
        if profile not in profiles:
            raise fail(
                f"no profile {profile!r}; this file has: {', '.join(profiles) or 'none'}",
                "profiles",
            )
        over_all = profiles[profile] or {}
        if not isinstance(over_all, dict):
            raise fail(
                f"profile {profile}: expected a mapping of step names (or globs) to their fields or {SKIP}",
                "profiles",
                profile,
            )
        _apply_profile(steps_raw, profile, over_all, fail)
        skipped = set(before) - set(steps_raw)
        if not steps_raw:
            raise fail(f"profile {profile} leaves out every step", "profiles", profile)
    steps = {name: _step(name, body, fail) for name, body in steps_raw.items()}
    for name, s in steps.items():
        s.line = lines.get(("steps", name), 1)
    for s in steps.values():
        _check_refs(s, steps, fail, skipped, profile)
    data = raw.get("data") or {}
    if not isinstance(data, dict):
        raise fail("data: must be a mapping, e.g. {dataset: mnist}", "data")
    return Study(
        path,
        str(raw.get("name") or path.stem),
        profile or "",
        data,
        _order(steps, fail),
        str(raw.get("description") or ""),
        list(profiles),
        [n for n in before if n in skipped],
    )


SKIP = "skip"
"""A profile's value that leaves the matching steps out (e.g. a dataset the quick profile does not cover)."""


def _apply_profile(steps_raw: dict, profile: str, over_all: dict, fail) -> None:
    """Layer a profile onto the steps, in the profile's order; a key is a step name or a glob over them ("*_gan")."""
    every = list(
        steps_raw
    )  # keys match against every step, so one after a skip may match only skipped ones
    for key, over in over_all.items():
        matched = [n for n in every if fnmatch.fnmatchcase(n, str(key))]
        if not matched:
            raise fail(
                f"profile {profile}: {key!r} matches none of the steps",
                "profiles",
                profile,
                key,
            )
        names = [n for n in matched if n in steps_raw]
        if over == SKIP:
            for n in names:
                del steps_raw[n]
            continue
        if not isinstance(over, dict):
            raise fail(
                f"profile {profile}, step {key}: expected a mapping of the step's fields, or {SKIP}",
                "profiles",
                profile,
                key,
            )
        for n in names:
            steps_raw[n] = config.deep_merge(steps_raw[n] or {}, over)


def _step(name: str, body: Any, fail) -> Step:
    if not isinstance(body, dict) or "run" not in body:
        raise fail(
            f"step {name!r} needs run: COMMAND, one of: {', '.join(COMMANDS)}", "steps", name
        )
    words = str(body["run"]).split()
    command, what = (words[0] if words else ""), (words[1] if len(words) > 1 else None)
    if command not in COMMANDS or len(words) > 2:
        raise fail(
            f"step {name}: unknown command {body['run']!r}; choose one of: {', '.join(COMMANDS)}",
            "steps",
            name,
            "run",
        )
    cls, choices_of = COMMANDS[command]
    whats = choices_of() if choices_of is not None else None
    if whats is None and what is not None or whats is not None and what not in whats:
        choices = (
            f"one of: {', '.join(f'{command} {w}' for w in whats)}"
            if whats
            else f"just {command!r}"
        )
        raise fail(
            f"step {name}: {body['run']!r} is not a command; use {choices}", "steps", name, "run"
        )
    try:
        params = cls.model_validate(body)
    except ValidationError as e:
        err = e.errors()[0]
        key = ("steps", name, *[p for p in err["loc"] if isinstance(p, str)][:1])
        e._udl_model = cls  # type: ignore[attr-defined]
        raise fail(config.format_validation_error(e, f"step {name}"), *key) from None
    step = Step(name, command, what, params)
    step.needs = list(dict.fromkeys(r for a in REF_FIELDS for r in step.refs(a)))
    return step


def _check_refs(
    s: Step, steps: dict[str, Step], fail, skipped: set[str], profile: str | None
) -> None:
    for attr in REF_FIELDS:
        key = attr.rstrip("_")
        for ref in s.refs(attr):
            if ref in skipped:
                raise fail(
                    f"step {s.name}: {key}: {ref!r} is left out by profile {profile}; leave {s.name} out too",
                    "steps",
                    s.name,
                    key,
                )
            if ref not in steps:
                raise fail(
                    f"step {s.name}: {key}: {ref!r} is not a step; steps are: {', '.join(steps)}",
                    "steps",
                    s.name,
                    key,
                )
            if attr == "best_of" and steps[ref].command != "tune":
                raise fail(
                    f"step {s.name}: best_of: {ref!r} is a {steps[ref].command} step; best_of names a tune step",
                    "steps",
                    s.name,
                    key,
                )
            if ref == s.name:
                raise fail(f"step {s.name} refers to itself", "steps", s.name, key)


def _order(steps: dict[str, Step], fail) -> dict[str, Step]:
    """Dependency order by depth-first search; a cycle is an error at the step that closes it."""
    done: dict[str, Step] = {}
    path: list[str] = []

    def visit(name: str) -> None:
        if name in done:
            return
        if name in path:
            cycle = " -> ".join(path[path.index(name) :] + [name])
            raise fail(f"steps refer to each other in a cycle: {cycle}", "steps", path[-1])
        path.append(name)
        for dep in steps[name].needs:
            visit(dep)
        path.pop()
        done[name] = steps[name]

    for name in steps:
        visit(name)
    return done
