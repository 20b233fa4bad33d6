"""The training run spec (model/data/train, and any section a family adds), assembled from family defaults, YAML, CLI flags and --set.

Each family's spec class is made from its registry entry: `model` is the family's config, `train`
its train config (TrainConfig or a subclass with its own knobs), plus its extra sections. A spec
is validated against the class of the family its `model.name` names, so an error names that
family's own fields.
"""

from __future__ import annotations

from typing import Any, Optional

from pydantic import create_model

from udlcli import config, ui
from udlcli.config import DataConfig, Strict, TrainConfig
from udlcli.errors import SpecError
from udlcli.models import REGISTRY, Family, default, get


class RunSpec(Strict):
    """A complete, validated description of a training run: the base of every family's spec class."""

    model: Any
    data: DataConfig = DataConfig()
    train: TrainConfig = TrainConfig()


_CLASSES: dict[str, tuple[Family, type[RunSpec]]] = {}


def spec_class(name: str) -> type[RunSpec]:
    """The spec class of a family (made once per registry entry)."""
    family = get(name)
    cached = _CLASSES.get(name)
    if cached is not None and cached[0] is family:
        return cached[1]
    train = family.train_config or TrainConfig
    sections = {k: (cls, cls()) for k, cls in family.sections.items()}
    cls = create_model(
        f"{family.title}Spec",
        __base__=RunSpec,
        __doc__=f"A complete, validated description of a {family.title} run.",
        model=(family.config, family.config()),
        train=(train, train()),
        **sections,
    )
    _CLASSES[name] = (family, cls)
    return cls


def family_of(spec: dict | RunSpec) -> Family:
    """The family a spec (validated, or a dict with model.name) is of; a one-line error without one."""
    if isinstance(spec, RunSpec):
        return get(spec.model.name)
    model = spec.get("model") if isinstance(spec, dict) else None
    name = model.get("name") if isinstance(model, dict) else None
    if not name:
        raise SpecError(f"the spec has no model.name; give one of: {', '.join(sorted(REGISTRY))}")
    return get(name)


def parse_spec(data: dict, source: str = "spec") -> RunSpec:
    """Validate a whole spec (a run's stored spec, a --config file's contents) into its family's class."""
    return config.validate(spec_class(family_of(data).name), data, source=source)


def resolve_spec(
    model_name: Optional[str] = None,
    config_path: Optional[str] = None,
    flags: Optional[dict[str, object]] = None,
    sets: Optional[list[str]] = None,
) -> RunSpec:
    """Layer family defaults < YAML file < CLI flags < --set overrides, then validate once."""
    file_spec = config.load_yaml(config_path) if config_path else {}
    file_model = (
        (file_spec.get("model") or {}).get("name")
        if isinstance(file_spec.get("model"), dict)
        else None
    )
    if model_name and file_model and model_name != file_model:
        raise SpecError(
            f"the command names model {model_name!r} but {config_path} has model.name {file_model!r}; drop one"
        )
    family = get(model_name or file_model) if (model_name or file_model) else default()
    base = {
        "model": {"name": family.name},
        "train": dict(family.train_defaults),
        "data": dict(family.data_defaults),
    }
    spec = config.layered(
        spec_class(family.name),
        base,
        file_spec,
        flags,
        sets,
        source=f"spec ({config_path})" if config_path else "spec",
    )
    for line in family.check(spec) if family.check else []:
        ui.warn(line)
    return spec


def spec_to_dict(spec: RunSpec) -> dict:
    return spec.model_dump(mode="json")
