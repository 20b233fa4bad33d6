"""Load a trained model back from a run folder, a checkpoint path, or the newest run of the right kind."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from udlcli.config import validate
from udlcli.core import runs
from udlcli.core.checkpoint import load_checkpoint
from udlcli.errors import CheckpointError, a_kind, shorten


@dataclass
class LoadedRun:
    model: torch.nn.Module
    spec: Any
    """The run's validated RunSpec."""
    run_dir: Path
    checkpoint: Path
    payload: dict
    kind: str
    """The model name it was trained as (payload['kind']): 'ae', 'vae', ..."""


def load_run(
    path: str | Path | None,
    root: str | Path = "runs",
    kinds: tuple[str, ...] = ("ae",),
    prefer: str = "best",
    hint: str = "",
) -> LoadedRun:
    """Load the model of a run whose kind is one of `kinds`, in eval mode on the CPU.

    path may be a run folder, a checkpoint file, or None for the newest run of those kinds.
    A run of another kind is a CheckpointError naming what it is and, via hint, what to do instead.
    """
    from udlcli.config import LEGACY_SHAPE
    from udlcli.core.spec import RunSpec
    from udlcli.models import REGISTRY, get

    tasks = tuple(dict.fromkeys(REGISTRY[k].task if k in REGISTRY else k for k in kinds))
    run_dir, ck = runs.resolve_checkpoint(path, root, tasks, prefer=prefer)
    payload = load_checkpoint(ck)
    kind = payload.get("kind")
    if kind not in kinds:
        extra = f"; {hint}" if hint else ""
        raise CheckpointError(
            f"{run_dir} is {a_kind(kind)} run, not {' or '.join(a_kind(k) for k in kinds)} run{extra}"
        )
    if "spec" not in payload or "model" not in payload:
        raise CheckpointError(f"{ck} holds no model spec or weights; it was not written by udl")
    spec = validate(RunSpec, payload["spec"], source=f"spec stored in {ck}")
    if spec.data.shape is None:
        # Runs written before udl recorded shapes were all MNIST-shaped; with the shape filled in,
        # data of another shape is refused (fit_config) instead of failing inside the model.
        spec.data.shape = LEGACY_SHAPE
    model = get(kind).build(spec.model, spec.data)
    try:
        model.load_state_dict(payload["model"])
    except RuntimeError as e:
        raise CheckpointError(
            f"{ck}: weights do not fit a {kind} model of this spec ({shorten(str(e))})"
        ) from None
    model.eval()
    return LoadedRun(model, spec, run_dir, ck, payload, kind)
