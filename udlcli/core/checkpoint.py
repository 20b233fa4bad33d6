"""Checkpoints: written atomically, read with weights_only=True so nothing on disk runs as code."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from udlcli.errors import CheckpointError, shorten

FORMAT = "udl-checkpoint/1"


def save_checkpoint(path: Path, payload: dict[str, Any]) -> None:
    """Write to a temp file in the same folder, then rename: a kill mid-write never leaves a half file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save({"format": FORMAT, **payload}, tmp)
    os.replace(tmp, path)


def load_checkpoint(path: Path | str) -> dict[str, Any]:
    """Load a udl checkpoint on the CPU, or raise CheckpointError with a one-line reason."""
    p = Path(path)
    if not p.is_file():
        raise CheckpointError(f"checkpoint not found: {p}")
    try:
        payload = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as e:  # corrupt zip, truncated file, foreign pickle: all unreadable for us
        first = str(e).strip().splitlines()[0] if str(e).strip() else e.__class__.__name__
        raise CheckpointError(
            f"{p} is not a readable udl checkpoint (corrupt, truncated or foreign: {shorten(first)})"
        ) from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(
            f"{p} is a torch file but not a udl checkpoint; point at a run folder or its weights/*.pt"
        )
    return payload
