"""Typed run specs (data/model/train), YAML loading, CLI overrides and one-line validation errors."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal, Optional

import yaml
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, field_validator

from udlcli.datasets import DATASET_NAMES
from udlcli.errors import SpecError

# Keys written into a run's spec.yaml by udl itself; ignored when a spec is read back.
WRITTEN_ONLY_KEYS = ("meta",)
MIN_SIZE, MAX_SIZE = 28, 64
"""The image sizes udl's models take (the smallest the report's conv stack fits; the largest DCGAN's)."""
MNIST_SHAPE = (1, 28, 28)
"""(C, H, W) of the MNIST family, the report's shape and every model's default."""
LEGACY_SHAPE = MNIST_SHAPE
"""The image shape of runs and feature networks written before udl recorded shapes (all were MNIST-shaped)."""


class Strict(BaseModel):
    """Base for every config section: unknown keys are errors, assignments are validated."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class DataConfig(Strict):
    dataset: str = "mnist"
    """mnist | fashion-mnist | kmnist | mnist-sample | cifar10 | cifar100 | svhn | stl10 | stl10-unlabeled | celeba | folder:PATH"""
    data_dir: Optional[str] = None
    """Where datasets live; None means $UDL_DATA_DIR, then the user cache folder."""
    val_fraction: float = Field(0.2, gt=0.0, lt=1.0)
    """Share of the training split held out for validation (the report's 80/20)."""
    limit: Optional[int] = Field(None, ge=10)
    """Use N training images, a stratified seeded sample (quick runs); None uses them all."""
    image_size: Optional[int] = None
    """Resize every image to N x N (28 to 64); None keeps the dataset's size (96-pixel STL-10: 64; CelebA: 64)."""
    color: Optional[Literal["gray", "rgb"]] = None
    """Convert to one channel (gray) or three (rgb); None keeps the dataset's own (a folder's: detected)."""
    shape: Optional[tuple[int, int, int]] = None
    """(C, H, W) of the images, filled in when the data is loaded and kept in spec.yaml: a run's data must match it."""
    mean: Optional[list[float]] = None
    std: Optional[list[float]] = None
    """Per-channel Normalize applied per batch on the device before the encoder. None: computed from the
    training split when the run starts and kept in spec.yaml (MNIST: the report's 0.1307 and 0.3081)."""

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """(C, H, W) of the run's images; a spec written before udl recorded shapes is MNIST's."""
        return tuple(self.shape or LEGACY_SHAPE)

    @field_validator("dataset")
    @classmethod
    def _known_dataset(cls, v: str) -> str:
        if v in DATASET_NAMES or (v.startswith("folder:") and len(v) > len("folder:")):
            return v
        raise ValueError(
            f"unknown dataset {v!r}; choose one of {', '.join(DATASET_NAMES)} or folder:PATH"
        )

    @field_validator("image_size")
    @classmethod
    def _size_in_range(cls, v: Optional[int]) -> Optional[int]:
        if v is not None and not MIN_SIZE <= v <= MAX_SIZE:
            raise ValueError(
                f"{v} pixels: udl's models take images of {MIN_SIZE} to {MAX_SIZE} pixels "
                f"(give {MIN_SIZE} to {MAX_SIZE})"
            )
        return v

    @field_validator("mean", "std", mode="before")
    @classmethod
    def _per_channel(cls, v: Any) -> Any:
        # A single number (a spec written before colour, or --set data.std=0.5) is the same for every channel.
        return [v] if isinstance(v, (int, float)) and not isinstance(v, bool) else v

    @field_validator("std")
    @classmethod
    def _positive(cls, v: Optional[list[float]]) -> Optional[list[float]]:
        if v is not None and any(s <= 0 for s in v):
            raise ValueError(f"every std must be > 0 (got {v})")
        return v


class TrainConfig(Strict):
    epochs: int = Field(20, ge=1, le=100_000)
    batch_size: int = Field(256, ge=1, le=65_536)
    optimizer: Literal["adam", "adamw", "sgd", "rmsprop"] = "adam"
    """adamw: Adam with decoupled weight decay (Loshchilov and Hutter), the usual choice for U-Nets and ResNets."""
    lr: float = Field(2.218e-3, gt=0.0, le=10.0)
    weight_decay: float = Field(1.01e-5, ge=0.0)
    momentum: float = Field(0.9, ge=0.0, lt=1.0)
    """Used by SGD and RMSprop only."""
    scheduler: Literal["none", "cosine"] = "none"
    """cosine: the learning rate follows a half cosine from lr to 0 over all steps (after the warmup)."""
    warmup_steps: int = Field(0, ge=0, le=10_000_000)
    """Raise the learning rate linearly from lr/warmup_steps to lr over this many optimiser steps first."""
    grad_clip: Optional[float] = Field(None, gt=0.0)
    """Clip the gradients' global L2 norm to this before each step (unscaled first under 16-mixed); None: no clipping."""
    ema: Optional[float] = Field(None, gt=0.0, lt=1.0)
    """Keep an exponential moving average of the weights with this decay (0.999: about the last 1,000 steps);
    validation, the test numbers, samples and exports then use the averaged weights. None: off."""
    drop_last: bool = False
    """Skip each epoch's last batch when it is smaller than batch_size (losses that need full batches)."""
    n_fixed: int = Field(64, ge=2, le=1024)
    """Models that generate: the size of the fixed noise batch decoded after every epoch (samples/, progress.gif)."""
    fid_n: int = Field(0, ge=0, le=100_000)
    """Models that generate: after every epoch, the FID of this many samples on udl evaluate's network
    (metrics.csv's fid: FID against training time); 0: off. Costs a sampling pass an epoch."""

    @field_validator("fid_n")
    @classmethod
    def _two_or_more(cls, v: int) -> int:
        if v == 1:
            raise ValueError(
                "an FID needs at least 2 samples; give 0 (off) or 2 and more (1,000 is usual)"
            )
        return v

    seed: int = 0
    device: Literal["auto", "cpu", "cuda", "mps"] = "auto"
    precision: Literal["auto", "32", "bf16", "16-mixed"] = "auto"
    """Autocast of the forward pass and loss: auto (bf16 where the device has bf16 units and the
    model gains, else 32), 32 (none), bf16, or 16-mixed (float16 with loss scaling); see
    core/fastpath.py. A run's spec.yaml keeps what auto chose, and its meta says why."""
    compile: bool = False
    """Run the model's forward and loss through torch.compile (the first batches compile)."""
    _precision_why: Optional[str] = PrivateAttr(None)
    """Why the run trains in its precision (core/fastpath.resolve); spec.yaml's meta keeps it."""
    track: Literal["none", "tensorboard", "mlflow"] = "none"
    """Log the run to a tracker as well as its folder (core/tracking.py); an optional extra."""
    mlflow_uri: Optional[str] = None
    """With track: mlflow, where runs go (sqlite:///mlruns.db, a folder, http://host:port); None: MLflow's default."""

    @field_validator("precision", mode="before")
    @classmethod
    def _precision_text(cls, v: Any) -> Any:
        # YAML reads `precision: 32` as a number.
        return str(v) if isinstance(v, int) else v

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


def nest(flat: dict[str, object]) -> dict:
    """{'train.lr': 1e-3, 'model.channels': None} -> {'train': {'lr': 1e-3}}; None values are dropped."""
    out: dict = {}
    for key, value in flat.items():
        if value is None:
            continue
        cur = out
        *parents, leaf = key.split(".")
        for p in parents:
            cur = cur.setdefault(p, {})
        cur[leaf] = value
    return out


def layered(
    cls: type[BaseModel],
    base: dict,
    file_spec: dict,
    flags: dict | None,
    sets: list[str] | None,
    source: str,
) -> Any:
    """Every spec's layering: defaults (base) < YAML file < CLI flags < --set overrides, validated once into cls."""
    merged = deep_merge(deep_merge(base, file_spec), nest(flags or {}))
    for item in sets or []:
        merged = deep_merge(merged, parse_set(item))
    return validate(cls, merged, source=source)


def flatten(d: dict, prefix: str = "") -> dict:
    """{'train': {'lr': 1}} -> {'train.lr': 1}: nested spec values as the dotted flags the spec resolvers take."""
    out: dict = {}
    for k, v in d.items():
        if isinstance(v, dict) and v:
            out.update(flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
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
    tags = _union_tags(getattr(err, "_udl_model", None))
    for e in err.errors():
        # Hide pydantic's internal parts of the path: validator wrappers and the discriminated
        # union's tag (model.ae.latent_dim -> model.latent_dim).
        parts = [
            p
            for i, p in enumerate(e["loc"])
            if not (isinstance(p, str) and (p.startswith("function-") or (i > 0 and p in tags)))
        ]
        loc = ".".join(str(p) for p in parts)
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
    """The field names allowed at the level of loc's last part, by walking the model class along loc."""
    cls = getattr(err, "_udl_model", None)
    union: dict[str, type[BaseModel]] = {}
    for part in loc[:-1]:
        if union:  # the previous part was a discriminated union: this part is its tag
            cls, union = union.get(part), {}
        elif cls is not None and isinstance(part, str) and part in cls.model_fields:
            members = _models_in(cls.model_fields[part].annotation)
            if len(members) == 1:
                cls = members[0]
            else:
                union = {
                    m.model_fields["name"].default: m for m in members if "name" in m.model_fields
                }
                cls = None
        else:
            return []
        if cls is None and not union:
            return []
    return list(cls.model_fields) if cls is not None else []


def _models_in(ann: Any) -> list[type[BaseModel]]:
    if isinstance(ann, type) and issubclass(ann, BaseModel):
        return [ann]
    out: list[type[BaseModel]] = []
    for a in getattr(ann, "__args__", ()) or ():
        out += _models_in(a)
    return out


def _union_tags(cls: type[BaseModel] | None) -> set[str]:
    """The `name` tags of every discriminated-union member among cls's fields."""
    tags: set[str] = set()
    for field in cls.model_fields.values() if cls is not None else ():
        members = _models_in(field.annotation)
        if len(members) > 1:
            tags |= {m.model_fields["name"].default for m in members if "name" in m.model_fields}
    return tags


def validate(cls: type[BaseModel], data: dict, source: str = "spec") -> Any:
    """Validate data into cls, turning pydantic's report into one SpecError line."""
    try:
        return cls.model_validate(data)
    except ValidationError as e:
        e._udl_model = cls  # type: ignore[attr-defined]
        raise SpecError(format_validation_error(e, source)) from None


def dump_yaml(data: dict) -> str:
    """Block-style YAML in the spec's own key order, never wrapped (a long path stays on its line)."""
    return yaml.safe_dump(data, sort_keys=False, default_flow_style=None, width=float("inf"))
