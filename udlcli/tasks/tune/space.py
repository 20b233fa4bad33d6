"""What `udl tune` searches: typed search spaces (the YAML `search:` section) and the AE / fine-tune objectives.

An objective turns sampled values into a complete spec (so the best trial's spec is a ready
`--config`) and fits it with the shared Trainer, handing the Trainer the pruning callbacks.

    AE        channels n, latent dim, optimiser, lr (log), weight decay (log)  -> validation MSE
    finetune  hidden units, dropout p, optimiser, lr (log), weight decay (log) -> validation cross-entropy
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from udlcli import config
from udlcli.config import Strict
from udlcli.core.trainer import EpochCallback, Trainer

Optimizer = Literal["adam", "sgd", "rmsprop"]
LOG_SCALE = ("lr", "weight_decay")
"""Parameters sampled on a log scale; every other range is sampled uniformly."""


class Search(Strict):
    """Ranges shared by both objectives; each range is [low, high] (low == high fixes the value)."""

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
            if isinstance(value, list):
                out[name] = trial.suggest_categorical(name, list(value))
            elif isinstance(value[0], int) and isinstance(value[1], int):
                out[name] = trial.suggest_int(name, value[0], value[1])
            else:
                out[name] = trial.suggest_float(
                    name, float(value[0]), float(value[1]), log=name in LOG_SCALE
                )
        return out


class AESearch(Search):
    channels: tuple[int, int] = (4, 32)
    """Channels n of the first convolution (the report's 4 .. 32)."""
    latent_dim: tuple[int, int] = (2, 16)
    """Latent dimension (the report's 2 .. 16)."""


class FinetuneSearch(Search):
    hidden: tuple[int, int] = (64, 1024)
    """Hidden units of the head (the report's 64 .. 1024)."""
    dropout: tuple[float, float] = Field((0.0, 0.5))
    """Dropout p of the head (the report's 0 .. 0.5)."""
    features: list[Literal["latent", "hidden", "conv"]] = Field(["latent"], min_length=1)
    """What the head sees (udl finetune --features); the report searched the code's head only."""


def _split_file(config_path: str | None) -> tuple[dict, dict]:
    """A tune YAML file: (its `search:` section, everything else as flat flags)."""
    data = config.load_yaml(config_path) if config_path else {}
    search = data.pop("search", None) or {}
    return search, config.flatten(data)


class AEObjective:
    """Train the report's conv AE; the value is the best validation MSE over the trial's epochs."""

    name = "ae"
    metric = "validation MSE"
    search_cls = AESearch

    def __init__(self, base: dict, search: AESearch):
        self.base, self.search = base, search
        self.device = self.data = None

    @classmethod
    def resolve(
        cls, config_path: str | None, flags: dict, sets: Sequence[str], root: Path
    ) -> AEObjective:
        from udlcli.core.spec import resolve_spec, spec_to_dict

        search, file_flags = _split_file(config_path)
        spec = resolve_spec("ae", None, {**file_flags, **flags}, list(sets))
        return cls(
            spec_to_dict(spec), config.validate(cls.search_cls, search, source="search: section")
        )

    def load(self, root: Path) -> None:
        """Load the data once per worker; every trial reuses it."""
        from udlcli.core import lifecycle

        if self.data is None:
            spec = self.spec_for({})
            self.device, self.data = lifecycle.setup(spec.train, spec.data)
            # The loaded data's shape and normalisation, for every trial's model (and best.yaml).
            fitted = spec.data.model_dump(mode="json", include={"shape", "mean", "std"})
            self.base = config.deep_merge(self.base, {"data": fitted})

    def data_key(self) -> dict:
        """What makes two studies' MSEs comparable; image_size and color only when set, so studies
        made before they existed still match."""
        d = self.base["data"]
        key = {"dataset": d["dataset"], "limit": d["limit"], "val_fraction": d["val_fraction"]}
        key.update({k: d[k] for k in ("image_size", "color") if d.get(k) is not None})
        return key

    def spec_for(self, params: dict):
        """The trial's RunSpec: the base spec with the sampled values in place."""
        from udlcli.core.spec import RunSpec

        model = {k: params[k] for k in ("channels", "latent_dim") if k in params}
        train = {k: params[k] for k in ("optimizer", "lr", "weight_decay") if k in params}
        return config.validate(
            RunSpec,
            config.deep_merge(self.base, {"model": model, "train": train}),
            source="trial spec",
        )

    def fit(self, spec, callbacks: list[EpochCallback], label: str) -> Trainer:
        from udlcli.core import lifecycle
        from udlcli.models import get

        model, train, val = lifecycle.seeded_fit_inputs(
            spec, self.data, self.device, lambda: get(spec.model.name).build(spec.model, spec.data)
        )
        trainer = Trainer(
            model,
            spec.train,
            train,
            val,
            self.device,
            ckpt_dir=None,
            callbacks=callbacks,
            label=label,
        )
        trainer.fit()
        return trainer


class FinetuneObjective(AEObjective):
    """Train the classifier head on a frozen AE encoder (udl finetune's fit_head); the value is validation cross-entropy."""

    name = "finetune"
    metric = "validation cross-entropy"
    search_cls = FinetuneSearch
    prep = None
    """udl finetune's Prepared (AE run, data, device), loaded once per process."""

    @classmethod
    def resolve(
        cls, config_path: str | None, flags: dict, sets: Sequence[str], root: Path
    ) -> FinetuneObjective:
        from udlcli.tasks.finetune import prepare, resolve_finetune_spec

        search, file_flags = _split_file(config_path)
        spec = resolve_finetune_spec(
            None, {**file_flags, **flags, "finetune.baselines": False}, sets
        )
        prep = prepare(
            spec, root
        )  # loads and kind-checks the AE run: a bad --from fails here, before anything is written
        obj = cls(
            prep.spec.model_dump(mode="json"),
            config.validate(cls.search_cls, search, source="search: section"),
        )
        obj.prep = prep
        return obj

    def load(self, root: Path) -> None:
        from udlcli.tasks.finetune import FinetuneSpec, prepare

        if self.prep is None:
            self.prep = prepare(
                config.validate(FinetuneSpec, self.base, source="finetune spec"), root
            )

    def spec_for(self, params: dict):
        from udlcli.tasks.finetune import FinetuneSpec

        head = {k: params[k] for k in ("hidden", "dropout", "features") if k in params}
        train = {k: params[k] for k in ("optimizer", "lr", "weight_decay") if k in params}
        return config.validate(
            FinetuneSpec,
            config.deep_merge(self.base, {"finetune": head, "train": train}),
            source="trial spec",
        )

    def fit(self, spec, callbacks: list[EpochCallback], label: str) -> Trainer:
        from udlcli.core.spec import RunSpec, spec_to_dict
        from udlcli.tasks.finetune import fit_head

        head = {
            "hidden": spec.finetune.hidden,
            "dropout": spec.finetune.dropout,
            "features": spec.finetune.features,
        }
        run_spec = config.validate(
            RunSpec,
            config.deep_merge(
                spec_to_dict(self.prep.run_spec), {"model": head, "train": spec.train.model_dump()}
            ),
            source="trial spec",
        )
        return fit_head(replace(self.prep, spec=spec, run_spec=run_spec), callbacks=callbacks)


OBJECTIVES = {o.name: o for o in (AEObjective, FinetuneObjective)}
