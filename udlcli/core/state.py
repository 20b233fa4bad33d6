"""What a trainer checkpoints, and how it comes back: the one place a resumed run's exactness is decided.

A payload holds the trainer's `extra` (spec, kind, data), the epoch, the model's weights, the
optimisers' states (one under "optimizer", several under "optimizers"), the EMA of the weights,
the GradScaler, the RNG states (torch's global, the shuffle's, CUDA's), the history, the best
validation loss and every named callback's state. Restoring all of them makes a resumed run the
run that never stopped, bit for bit on the CPU (tests/models/test_families.py checks every family).
"""

from __future__ import annotations

import math
from typing import Any

import torch

from udlcli import ui


def capture(trainer) -> dict[str, Any]:
    """The trainer's state as a checkpoint payload (beside its `extra`: spec, kind, data)."""
    rng = {"torch": torch.get_rng_state(), "shuffle": trainer.shuffle_gen.get_state()}
    if torch.cuda.is_available():
        rng["cuda"] = torch.cuda.get_rng_state_all()
    opts = {k: o.state_dict() for k, o in trainer.optimizers.items()}
    scaler = trainer.step.scaler
    return {
        **trainer.extra,
        "epoch": trainer.epoch,
        "model": trainer.model.state_dict(),
        # One optimiser under "optimizer" (every run before the GAN joined the trainer), several under "optimizers".
        **({"optimizer": opts["model"]} if list(opts) == ["model"] else {"optimizers": opts}),
        **({"ema": trainer.ema.state_dict()} if trainer.ema is not None else {}),
        "rng": rng,
        "history": trainer.history,
        "best_val": trainer.best_val,
        "callbacks": {cb.name: cb.state_dict() for cb in trainer.callbacks if cb.name},
        **({"scaler": scaler.state_dict()} if scaler is not None else {}),
    }


def restore(trainer, payload: dict[str, Any]) -> None:
    """Put a checkpoint's state back into the trainer, so the run continues exactly."""
    trainer.model.load_state_dict(payload["model"])
    opts = {"model": payload["optimizer"]} if "optimizer" in payload else payload["optimizers"]
    for k, o in trainer.optimizers.items():
        o.load_state_dict(opts[k])
    if trainer.ema is not None:
        # A run that turned the EMA on only now starts its average from the current weights.
        trainer.ema.load_state_dict(payload.get("ema") or trainer.model.state_dict())
    trainer.epoch = int(payload["epoch"])
    was = int(payload.get("world_size", 1))
    if was != trainer.world.size:
        ui.info(
            f"resuming with {trainer.world.size} rank{'s' if trainer.world.size > 1 else ''} (the run trained on "
            f"{was}); the global batch stays {trainer.cfg.batch_size}, so the schedule and shuffling carry on as before"
        )
    trainer.history = list(payload.get("history", []))
    trainer.best_val = float(payload.get("best_val", math.inf))
    if trainer.step.scaler is not None and "scaler" in payload:
        trainer.step.scaler.load_state_dict(payload["scaler"])
    saved = payload.get("callbacks", {})
    for cb in trainer.callbacks:
        if cb.name and cb.name in saved:
            cb.load_state_dict(saved[cb.name])
    rng = payload.get("rng", {})
    if "torch" in rng:
        torch.set_rng_state(rng["torch"])
    if "shuffle" in rng:
        trainer.shuffle_gen.set_state(rng["shuffle"])
    cuda = rng.get("cuda")
    if cuda is not None and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(cuda)
