"""Registry mapping a model name to its config class, builder and training defaults (no if/elif chains)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from torch import nn

from udlcli.errors import SpecError


@dataclass(frozen=True)
class ModelEntry:
    name: str
    """The name used on the command line (`udl train NAME`) and in `model.name`."""
    config: type
    """Its typed config class (a udlcli.config.Strict subclass with a Literal `name`)."""
    build: Callable[[Any, Any], nn.Module]
    """build(model_config, data_config) -> the model, which follows the loss contract (see engine/trainer.py)."""
    task: str
    """Run folders go under runs/<task>/."""
    description: str = ""
    train_defaults: dict = field(default_factory=dict)
    """Overrides of TrainConfig's defaults that suit this family (the report's tuned values)."""


REGISTRY: dict[str, ModelEntry] = {}


def register(entry: ModelEntry) -> ModelEntry:
    REGISTRY[entry.name] = entry
    return entry


def get(name: str) -> ModelEntry:
    try:
        return REGISTRY[name]
    except KeyError:
        raise SpecError(
            f"unknown model {name!r}; choose one of: {', '.join(sorted(REGISTRY))}"
        ) from None
