"""The training run spec (model/data/train), assembled from family defaults, YAML, CLI flags and --set."""

from __future__ import annotations

from typing import Annotated, Optional, Union

from pydantic import Field

from udlcli import config
from udlcli.config import DataConfig, Strict, TrainConfig
from udlcli.errors import SpecError
from udlcli.models import REGISTRY, get


def _model_field():
    configs = tuple(e.config for e in REGISTRY.values())
    if len(configs) == 1:
        return configs[0]
    return Annotated[Union[configs], Field(discriminator="name")]


class RunSpec(Strict):
    """A complete, validated description of a training run."""

    model: _model_field()  # type: ignore[valid-type]
    data: DataConfig = DataConfig()
    train: TrainConfig = TrainConfig()


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
    name = model_name or file_model or "ae"
    entry = get(name)
    base = {"model": {"name": name}, "train": dict(entry.train_defaults)}
    return config.layered(
        RunSpec,
        base,
        file_spec,
        flags,
        sets,
        source=f"spec ({config_path})" if config_path else "spec",
    )


def spec_to_dict(spec: RunSpec) -> dict:
    return spec.model_dump(mode="json")
