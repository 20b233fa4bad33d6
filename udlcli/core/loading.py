"""Load a trained model back from a run folder, a checkpoint path, or the newest run that can do what a command needs.

A command asks for capabilities (core/contracts.py), not families: `udl sample` needs a model that
generates, `udl embed` one that encodes. A run whose model lacks one is refused in one line naming
what it lacks. With `family=` a command that belongs to one family (udl denoise) asks for its own.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from udlcli.core import runs
from udlcli.core.checkpoint import load_checkpoint
from udlcli.core.contracts import ABILITIES
from udlcli.core.ema import scored_weights
from udlcli.errors import CheckpointError, shorten


@dataclass
class LoadedRun:
    model: torch.nn.Module
    spec: Any
    """The run's validated spec (its family's RunSpec class)."""
    run_dir: Path
    checkpoint: Path
    payload: dict
    kind: str
    """The family it was trained as (payload['kind']): 'ae', 'vae', ..."""


def lacking(model_class: type, needs: tuple[type, ...]) -> list[type]:
    """The capabilities of `needs` a model class does not have."""
    return [p for p in needs if not issubclass(model_class, p)]


def cannot(kind: str | None, missing: list[type]) -> str:
    """'a DAE cannot generate images (it has no generate())'."""
    from udlcli.models.registry import a_kind

    what = " or ".join(ABILITIES[p][0] for p in missing)
    has = ", ".join(f"{m}()" for p in missing for m in ABILITIES[p][1])
    return f"{a_kind(kind)} cannot {what} (it has no {has})"


def refusal(
    run_dir: Path, kind: str | None, missing: list[type], hint: str = ""
) -> CheckpointError:
    """'<run> is a DAE run: a DAE cannot generate images (it has no generate()); <hint>'."""
    from udlcli.models.registry import a_kind

    extra = f"; {hint}" if hint else ""
    return CheckpointError(f"{run_dir} is {a_kind(kind)} run: {cannot(kind, missing)}{extra}")


def tasks_for(
    needs: tuple[type, ...] = (), family: str | None = None
) -> tuple[tuple[str, ...], str]:
    """The run folders (runs/<task>/) that can hold a run of those capabilities (or of that family),
    and the commands that make such runs (for the error when there is none)."""
    from udlcli.models import REGISTRY, families, get

    found = (
        [get(family)]
        if family is not None
        else families(*needs)
        if needs
        else list(REGISTRY.values())
    )
    makes = " or ".join(dict.fromkeys(f.makes() for f in found[:3]))
    return tuple(dict.fromkeys(f.task for f in found)), makes


def read_checkpoint(ck: Path) -> dict:
    """A checkpoint's payload in today's layout (its family's upgrade() applied)."""
    from udlcli.models import REGISTRY

    payload = load_checkpoint(ck)
    family = REGISTRY.get(payload.get("kind") or "")
    return family.upgrade(payload) if family is not None and family.upgrade else payload


def load_run(
    path: str | Path | None,
    root: str | Path = "runs",
    needs: tuple[type, ...] = (),
    family: str | None = None,
    prefer: str = "best",
    hint: str = "",
) -> LoadedRun:
    """Load the model of a run that has every capability of `needs` (and is of `family`, when given), in eval mode on the CPU.

    path may be a run folder, a checkpoint file, or None for the newest run that fits. A run that
    does not fit is a CheckpointError naming what it is, what it lacks and, via hint, what to do instead.
    Weights are the run's averaged ones (train.ema) when it kept an average.
    """
    from udlcli.config import LEGACY_SHAPE
    from udlcli.core.spec import parse_spec
    from udlcli.models import REGISTRY, get
    from udlcli.models.registry import a_kind

    tasks, makes = tasks_for(needs, family)
    run_dir, ck = runs.resolve_checkpoint(path, root, tasks, prefer=prefer, make=makes)
    payload = read_checkpoint(ck)
    kind = payload.get("kind")
    if kind not in REGISTRY:
        raise CheckpointError(
            f"{run_dir} is {a_kind(kind)} run, which this version of udl does not know"
        )
    if family is not None and kind != family:
        extra = f"; {hint.format(kind=kind)}" if hint else ""
        raise CheckpointError(f"{run_dir} is {a_kind(kind)} run, not {a_kind(family)} run{extra}")
    missing = lacking(get(kind).model, needs)
    if missing:
        raise refusal(run_dir, kind, missing, hint)
    if "spec" not in payload or "model" not in payload:
        raise CheckpointError(f"{ck} holds no model spec or weights; it was not written by udl")
    spec = parse_spec(payload["spec"], source=f"spec stored in {ck}")
    if spec.data.shape is None:
        # Runs written before udl recorded shapes were all MNIST-shaped; with the shape filled in,
        # data of another shape is refused (fit_config) instead of failing inside the model.
        spec.data.shape = LEGACY_SHAPE
    model = get(kind).build(spec.model, spec.data)
    try:
        model.load_state_dict(scored_weights(payload))
    except RuntimeError as e:
        raise CheckpointError(
            f"{ck}: weights do not fit {a_kind(kind)} model of this spec ({shorten(str(e))})"
        ) from None
    model.eval()
    return LoadedRun(model, spec, run_dir, ck, payload, kind)
