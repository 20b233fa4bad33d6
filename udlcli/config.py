"""Typed run specs (data/model/train), YAML loading, CLI overrides and one-line validation errors."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal, Optional

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from udlcli.errors import SpecError

# Keys written into a run's spec.yaml by udl itself; ignored when a spec is read back.
WRITTEN_ONLY_KEYS = ("meta",)


class Strict(BaseModel):
    """Base for every config section: unknown keys are errors, assignments are validated."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)


DATASET_NAMES = ("mnist", "fashion-mnist", "kmnist", "mnist-sample")


class DataConfig(Strict):
    dataset: str = "mnist"
    """mnist | fashion-mnist | kmnist | mnist-sample | folder:PATH"""
    data_dir: Optional[str] = None
    """Where datasets live; None means $UDL_DATA_DIR, then the user cache folder."""
    val_fraction: float = Field(0.2, gt=0.0, lt=1.0)
    """Share of the training split held out for validation (the report's 80/20)."""
    limit: Optional[int] = Field(None, ge=10)
    """Use only the first N training images (quick runs); None uses them all."""
    mean: float = 0.1307
    std: float = Field(0.3081, gt=0.0)
    """Normalize((mean,), (std,)) applied per batch on the device before the encoder (the report's values)."""

    @field_validator("dataset")
    @classmethod
    def _known_dataset(cls, v: str) -> str:
        if v in DATASET_NAMES or (v.startswith("folder:") and len(v) > len("folder:")):
            return v
        raise ValueError(f"unknown dataset {v!r}; choose one of {', '.join(DATASET_NAMES)} or folder:PATH")


class TrainConfig(Strict):
    epochs: int = Field(20, ge=1, le=100_000)
    batch_size: int = Field(256, ge=1, le=65_536)
    optimizer: Literal["adam", "sgd", "rmsprop"] = "adam"
    lr: float = Field(2.218e-3, gt=0.0, le=10.0)
    weight_decay: float = Field(1.01e-5, ge=0.0)
    momentum: float = Field(0.9, ge=0.0, lt=1.0)
    """Used by SGD and RMSprop only."""
    scheduler: Literal["none", "cosine"] = "none"
    """cosine: the learning rate follows a half cosine from lr to 0 over all steps."""
    seed: int = 0
    device: Literal["auto", "cpu", "cuda", "mps"] = "auto"

    @field_validator("optimizer", mode="before")
    @classmethod
    def _lower(cls, v: Any) -> Any:
        # The report writes 'Adam'; accept any case.
        return v.lower() if isinstance(v, str) else v


# ---------------------------------------------------------------- YAML and overrides


def load_yaml(path: str | Path) -> dict:
    """Read a YAML spec file into a dict, with one-line errors for a missing or unparsable file."""
    p = Path(path)
    if not p.is_file():
        raise SpecError(f"spec file not found: {p} (check the path given to --config)")
    try:
        data = yaml.safe_load(p.read_text())
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise SpecError(f"{p}: not valid YAML{where}: {problem}") from None
    except UnicodeDecodeError:
        raise SpecError(f"{p}: not a text file; a spec is a YAML file") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise SpecError(f"{p}: a spec must be a mapping with sections like data:, model:, train:")
    for key in WRITTEN_ONLY_KEYS:
        data.pop(key, None)
    return data


def deep_merge(base: dict, over: dict) -> dict:
    """Return base updated by over, recursing into nested mappings (over wins)."""
    out = dict(base)
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = deep_merge(out[k], v)
        else:
            out[k] = v
    return out


def parse_set(item: str) -> dict:
    """Turn 'train.lr=1e-3' into {'train': {'lr': 1e-3}}; the value is read as YAML."""
    if "=" not in item:
        raise SpecError(f"--set {item!r}: expected KEY.SUB=VALUE, for example --set train.lr=1e-3")
    key, raw = item.split("=", 1)
    parts = [p for p in key.strip().split(".")]
    if not all(parts):
        raise SpecError(f"--set {item!r}: empty key part in {key!r}")
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError:
        value = raw
    if isinstance(value, str):
        # YAML 1.1 reads '1e-3' as a string; a user writing it means a number.
        try:
            value = float(value)
        except ValueError:
            pass
    out: dict = {}
    cur = out
    for p in parts[:-1]:
        cur = cur.setdefault(p, {})
    cur[parts[-1]] = value
    return out


def format_validation_error(err: ValidationError, source: str = "spec") -> str:
    """One line naming each bad field, what was given and what is allowed."""
    msgs = []
    for e in err.errors():
        loc = ".".join(str(p) for p in e["loc"] if not (isinstance(p, str) and p in ("function-after", "function-before")))
        msg = e["msg"]
        if e["type"] == "extra_forbidden":
            msg = "unknown key"
            parent = _allowed_keys(err, e["loc"])
            if parent:
                msg += f" (allowed: {', '.join(parent)})"
        elif "input" in e and e["type"] != "missing" and not isinstance(e["input"], dict):
            msg += f" (got {e['input']!r})"
        msgs.append(f"{loc}: {msg}")
    return f"invalid {source}: " + "; ".join(msgs)


def _allowed_keys(err: ValidationError, loc: tuple) -> list[str]:
    # Walk the model class along loc[:-1] to list the fields allowed at the bad key's level.
    cls = getattr(err, "_udl_model", None)
    if cls is None:
        return []
    for part in loc[:-1]:
        field = cls.model_fields.get(part) if isinstance(part, str) else None
        if field is None:
            # A discriminated union member: the tag is in loc (e.g. model.ae.channels).
            member = _union_member(cls, part)
            if member is None:
                return []
            cls = member
            continue
        ann = field.annotation
        sub = _model_in(ann)
        if sub is None:
            # discriminated unions: pick by tag on the next loc part
            return []
        cls = sub
    return list(cls.model_fields)


def _model_in(ann: Any) -> type[BaseModel] | None:
    if isinstance(ann, type) and issubclass(ann, BaseModel):
        return ann
    for a in getattr(ann, "__args__", ()) or ():
        if isinstance(a, type) and issubclass(a, BaseModel):
            return a
    return None


def _union_member(cls: type[BaseModel], tag: Any) -> type[BaseModel] | None:
    for field in cls.model_fields.values():
        for a in getattr(field.annotation, "__args__", ()) or ():
            if isinstance(a, type) and issubclass(a, BaseModel):
                name_field = a.model_fields.get("name")
                if name_field is not None and name_field.default == tag:
                    return a
    return None


def validate(cls: type[BaseModel], data: dict, source: str = "spec") -> Any:
    """Validate data into cls, turning pydantic's report into one SpecError line."""
    try:
        return cls.model_validate(data)
    except ValidationError as e:
        e._udl_model = cls  # type: ignore[attr-defined]
        raise SpecError(format_validation_error(e, source)) from None


def dump_yaml(data: dict) -> str:
    return yaml.safe_dump(data, sort_keys=False, default_flow_style=None)
