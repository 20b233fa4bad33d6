"""`udl tune`'s typed search spaces: the ranges every objective shares, which a family's own space (registry.Family.search) extends."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field, model_validator

from udlcli.config import Strict

Optimizer = Literal["adam", "adamw", "sgd", "rmsprop"]
LOG_SCALE = ("lr", "weight_decay")
"""Parameters sampled on a log scale; every other range is sampled uniformly."""


class Search(Strict):
    """`udl tune`'s ranges shared by every objective; each range is [low, high] (low == high fixes the value).

    A family's space (registry.Family.search) adds its own fields: each is a model field or a train
    field of the same name, sampled per trial."""

    trials: ClassVar[int] = 50
    """Trials of a study when --trials is not given."""
    metric: ClassVar[str] = "validation loss"
    """What the objective's value is, for tables and figures."""
    monitor: ClassVar[str] = "val_loss"
    """The epoch row's key a trial is scored and pruned by (metrics.csv's column)."""
    direction: ClassVar[Literal["minimize", "maximize"]] = "minimize"
    """Whether the study wants `monitor` low (a loss) or high (an accuracy)."""

    optimizer: list[Optimizer] = Field(["adam", "sgd", "rmsprop"], min_length=1)
    lr: tuple[float, float] = (1e-4, 1e-2)
    """Learning rate, log scale (the report's 1e-4 .. 1e-2)."""
    weight_decay: tuple[float, float] = (1e-6, 1e-3)
    """Weight decay, log scale (the report's 1e-6 .. 1e-3)."""

    @model_validator(mode="after")
    def _ordered(self) -> Search:
        for name, value in self:
            if isinstance(value, tuple):
                lo, hi = value
                if lo > hi:
                    raise ValueError(f"{name}: low {lo} is above high {hi}; write [low, high]")
                if name in LOG_SCALE and lo <= 0:
                    raise ValueError(f"{name}: a log-scale range needs low > 0 (got {lo})")
                if lo < 0:
                    raise ValueError(f"{name}: the range must not be negative (got {lo})")
        return self

    def sample(self, trial) -> dict:
        """Ask the trial for one value per field, in field order (the order keeps seeded TPE reproducible)."""
        out: dict = {}
        for name, value in self:
            if value is None:  # not searched: the spec's own value
                continue
            if isinstance(value, list):
                out[name] = trial.suggest_categorical(name, list(value))
            elif isinstance(value[0], int) and isinstance(value[1], int):
                out[name] = trial.suggest_int(name, value[0], value[1])
            else:
                out[name] = trial.suggest_float(
                    name, float(value[0]), float(value[1]), log=name in LOG_SCALE
                )
        return out
