"""What `udl tune` searches: the objectives, each with its typed search space (the YAML `search:` section).

An objective turns sampled values into a complete spec (so the best trial's spec is a ready
`--config`) and fits it with the shared Trainer, handing the Trainer the pruning callbacks.

    a family  its registry entry's search space (an AE's: channels n, latent dim, optimiser, lr and
              weight decay, log scale) -> the best epoch's value of the space's `monitor`: the
              validation loss (the AE's validation MSE), or a metric the family's own callbacks
              add to the epoch row (SimCLR's and BYOL's kNN accuracy, maximised)
    finetune  hidden units, dropout p, features, optimiser, lr (log), weight decay (log)
              -> validation cross-entropy of the head on a frozen encoder
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import ClassVar, Optional

from pydantic import Field

from udlcli import config
from udlcli.core.contracts import layer_of
from udlcli.core.trainer import EpochCallback, Trainer
from udlcli.models.registry import a_kind
from udlcli.search import Search


class FinetuneSearch(Search):
    metric: ClassVar[str] = "validation cross-entropy"

    hidden: tuple[int, int] = (64, 1024)
    """Hidden units of the head (the report's 64 .. 1024)."""
    dropout: tuple[float, float] = Field((0.0, 0.5))
    """Dropout p of the head (the report's 0 .. 0.5)."""
    features: Optional[list[str]] = Field(None, min_length=1)
    """The encoder layers the head may see (udl finetune --features; an AE's latent, hidden, conv);
    None: its default layer only (the report searched the code's head only)."""


def _split_file(config_path: str | None) -> tuple[dict, dict]:
    """A tune YAML file: (its `search:` section, everything else as flat flags)."""
    data = config.load_yaml(config_path) if config_path else {}
    search = data.pop("search", None) or {}
    return search, config.flatten(data)


class FamilyObjective:
    """Train a model of a family that declares a search space (registry.Family.search); the value is
    the best validation loss over the trial's epochs (an AE's: its validation MSE)."""

    name = ""
    metric = "validation loss"
    search_cls: type[Search] = Search
    retrain = "udl train --config"
    family = None
    """The registry entry (None: finetune's head, not a family)."""

    def __init__(self, base: dict, search: Search):
        self.base, self.search = base, search
        self.device = self.data = None

    @classmethod
    def of(cls, family) -> type[FamilyObjective]:
        """The objective class of a family, named and spaced by its registry entry."""
        return type(
            f"{family.title}Objective",
            (cls,),
            {
                "name": family.name,
                "metric": family.search.metric,
                "search_cls": family.search,
                "family": family,
                "retrain": f"udl {family.command} --config",
            },
        )

    @classmethod
    def resolve(
        cls, config_path: str | None, flags: dict, sets: Sequence[str], root: Path
    ) -> FamilyObjective:
        from udlcli.core.spec import resolve_spec, spec_to_dict

        search, file_flags = _split_file(config_path)
        spec = resolve_spec(cls.name, None, {**file_flags, **flags}, list(sets))
        return cls(
            spec_to_dict(spec), config.validate(cls.search_cls, search, source="search: section")
        )

    def load(self, root: Path) -> None:
        """Load the data once per worker; every trial reuses it."""
        from udlcli.core import lifecycle

        if self.data is None:
            spec = self.spec_for({})
            model_class = self.family.model if self.family is not None else None
            self.device, self.data = lifecycle.setup(spec.train, spec.data, None, model_class)
            learned = lifecycle.fit_model_to_data(spec, self.data)
            # The loaded data's shape and normalisation, and what the model takes from the data (a
            # conditional model's classes), for every trial's model (and best.yaml).
            fitted = spec.data.model_dump(mode="json", include={"shape", "mean", "std"})
            self.base = config.deep_merge(
                self.base,
                {"data": fitted, "model": learned, "train": {"precision": spec.train.precision}},
            )

    def data_key(self) -> dict:
        """What makes two studies' losses comparable; image_size and color only when set, so studies
        made before they existed still match."""
        d = self.base["data"]
        key = {"dataset": d["dataset"], "limit": d["limit"], "val_fraction": d["val_fraction"]}
        key.update({k: d[k] for k in ("image_size", "color") if d.get(k) is not None})
        return key

    def spec_for(self, params: dict):
        """The trial's spec: the base spec with each sampled value in its section (model or train)."""
        from udlcli.core.spec import parse_spec

        base_model = self.base["model"]
        model: dict = {}
        train: dict = {}
        for k, v in params.items():
            # A model field, one of a model section's own sections (SimCLR's augment.strength), or train's.
            section = next(
                (s for s, d in base_model.items() if isinstance(d, dict) and k in d), None
            )
            if k in base_model:
                model[k] = v
            elif section is not None:
                model.setdefault(section, {})[k] = v
            else:
                train[k] = v
        return parse_spec(
            config.deep_merge(self.base, {"model": model, "train": train}), source="trial spec"
        )

    @property
    def monitor(self) -> str:
        return self.search_cls.monitor

    @property
    def direction(self) -> str:
        return self.search_cls.direction

    def value(self, trainer: Trainer) -> float:
        """The trial's value: the best epoch's `monitor` (lowest or highest, as the study wants)."""
        seen = [row[self.monitor] for row in trainer.history if self.monitor in row]
        if not seen:
            raise ValueError(f"no epoch of the trial reported {self.monitor}")
        return min(seen) if self.direction == "minimize" else max(seen)

    def fit(self, spec, callbacks: list[EpochCallback], label: str) -> Trainer:
        from udlcli.core import lifecycle
        from udlcli.models import get

        model, train, val = lifecycle.seeded_fit_inputs(
            spec, self.data, self.device, lambda: get(spec.model.name).build(spec.model, spec.data)
        )
        own = []
        if self.monitor != "val_loss" and self.family.callbacks:
            # The scored metric comes from the family's own callbacks (its kNN monitor); a trial
            # has no run folder, so they leave their figures out (ctx.run_dir is None).
            ctx = lifecycle.FitContext(None, spec, self.data, train, None, self.device, val)
            own = self.family.callbacks(ctx)
        trainer = Trainer(
            model,
            spec.train,
            train,
            val,
            self.device,
            ckpt_dir=None,
            callbacks=[*own, *callbacks],
            label=label,
        )
        trainer.fit()
        return trainer


class FinetuneObjective(FamilyObjective):
    """Train the classifier head on a frozen AE encoder (udl finetune's fit_head); the value is validation cross-entropy."""

    name = "finetune"
    metric = "validation cross-entropy"
    search_cls = FinetuneSearch
    retrain = "udl finetune --config"
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
        space = config.validate(cls.search_cls, search, source="search: section")
        layers = prep.ae.model.feature_layers()
        for layer in space.features or []:
            layer_of(layers, layer, a_kind(prep.ae.kind))
        if space.features is None:  # the encoder's own default layer, as udl finetune uses it
            space = space.model_copy(update={"features": [prep.run_spec.model.features]})
        obj = cls(prep.spec.model_dump(mode="json"), space)
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
        from udlcli.core.spec import parse_spec, spec_to_dict
        from udlcli.tasks.finetune import fit_head

        head = {
            "hidden": spec.finetune.hidden,
            "dropout": spec.finetune.dropout,
            "features": spec.finetune.features,
        }
        run_spec = parse_spec(
            config.deep_merge(
                spec_to_dict(self.prep.run_spec), {"model": head, "train": spec.train.model_dump()}
            ),
            source="trial spec",
        )
        return fit_head(replace(self.prep, spec=spec, run_spec=run_spec), callbacks=callbacks)


def objectives() -> dict[str, type[FamilyObjective]]:
    """`udl tune NAME`'s choices: every family with a search space, and finetune (a head on a frozen encoder)."""
    from udlcli.models import REGISTRY

    found = {f.name: FamilyObjective.of(f) for f in REGISTRY.values() if f.search is not None}
    return {**found, FinetuneObjective.name: FinetuneObjective}
