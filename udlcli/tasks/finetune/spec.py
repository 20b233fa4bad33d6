"""`udl finetune`'s spec and preparation: the classifier's section, the mode's defaults, and everything a fit needs loaded.

resolve_finetune_spec()  classifier defaults < YAML < flags < --set  ->  FinetuneSpec
prepare(spec)            load the AE run (and --init-head), resolve the data config from the AE's,
                         load the data; validate; write nothing -> Prepared
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import torch
from pydantic import model_validator

from udlcli import config
from udlcli.config import DataConfig, Strict, TrainConfig
from udlcli.core import lifecycle
from udlcli.core.contracts import Encodes, layer_of
from udlcli.core.loading import LoadedRun, load_run
from udlcli.core.spec import RunSpec, parse_spec
from udlcli.data import ImageDataset
from udlcli.errors import CheckpointError, DataError, SpecError
from udlcli.models import get
from udlcli.models.classifier import HeadConfig
from udlcli.models.registry import a_kind, title

FAMILY = "classifier"
TASK = get(FAMILY).task


class FinetuneConfig(HeadConfig):
    """The YAML `finetune:` section: the head (hidden, dropout, unfreeze, encoder_lr) and what it starts from."""

    ae: Optional[str] = None
    """The run (folder or checkpoint) whose encoder is used: any run that encodes images (an AE, a DAE,
    a VAE, a self-supervised encoder); None: the newest such run under --out."""
    init_head: Optional[str] = None
    """A classifier run whose head weights (and, unless given, hidden size) start this run."""
    baselines: bool = True
    """Also fit a logistic-regression probe and 5-NN on the encoder's codes, for comparison."""


FROZEN_EPOCHS = 30
"""Epochs of the head on a frozen encoder (cosine schedule) unless --epochs says otherwise: docs/finetune.md."""
UNFROZEN_EPOCHS = 10
"""--unfreeze's epochs: the measured recipe (encoder at the head's lr, shifts of 2 pixels, cosine) reached 99.3%."""


class FinetuneSpec(Strict):
    """A complete `udl finetune` spec. Data fields left unset are taken from the AE run's spec."""

    finetune: FinetuneConfig = FinetuneConfig()
    data: DataConfig = DataConfig()
    train: TrainConfig = TrainConfig()

    @model_validator(mode="after")
    def _epochs_of_the_mode(self) -> FinetuneSpec:
        # Fine-tuning the encoder needs fewer epochs than training a head alone; either default
        # applies only when no file, flag or --set gave the epochs.
        if "epochs" not in self.train.model_fields_set:
            self.train.epochs = UNFROZEN_EPOCHS if self.finetune.unfreeze else FROZEN_EPOCHS
        return self


def resolve_finetune_spec(
    config_path: str | None = None, flags: dict | None = None, sets: Sequence[str] = ()
) -> FinetuneSpec:
    """The classifier's training defaults < YAML file < CLI flags < --set overrides, validated once."""
    file_spec = config.load_yaml(config_path) if config_path else {}
    base = {"train": dict(get("classifier").train_defaults)}
    return config.layered(
        FinetuneSpec,
        base,
        file_spec,
        flags,
        list(sets),
        source=f"spec ({config_path})" if config_path else "spec",
    )


@dataclass
class Prepared:
    """Everything a fit needs, loaded and validated; nothing has been written yet."""

    spec: FinetuneSpec
    """As given, with finetune.ae set to the AE run used and data filled in from the AE's spec."""
    run_spec: RunSpec
    """model = the classifier's config (with its backbone's); stored in checkpoints so load_run can rebuild it."""
    data: ImageDataset
    device: torch.device
    ae: LoadedRun | None = None
    head_state: dict | None = None
    """Head weights from --init-head, loaded into the new classifier's head."""


def prepare(
    spec: FinetuneSpec,
    root: str | Path = "runs",
    data: ImageDataset | None = None,
    ae: LoadedRun | None = None,
) -> Prepared:
    """Load the AE run (and --init-head run), resolve the data config from the AE's, load the data."""
    ft = spec.finetune
    ae = ae or load_run(
        ft.ae,
        root,
        needs=(Encodes,),
        hint="give a run that encodes images (runs/ae/<name>, ...) to put the classifier on",
    )
    layers = ae.model.feature_layers()
    layer = layer_of(layers, ft.features, a_kind(ae.kind))
    # The data the encoder saw, unless the finetune spec sets a field; the normalisation is the encoder's own.
    data_cfg = {**ae.spec.data.model_dump(), **spec.data.model_dump(exclude_unset=True)}
    data_cfg.update(mean=ae.spec.data.mean, std=ae.spec.data.std)
    head = {**ft.model_dump(include=set(HeadConfig.model_fields)), "features": layer}
    head_state = None
    if ft.init_head:
        init = load_run(
            ft.init_head, root, family=FAMILY, hint="--init-head takes a udl finetune run"
        )
        width = int(init.payload["model"]["standardize.mean"].shape[0])
        if init.spec.model.features != layer:
            raise SpecError(
                f"--init-head {init.run_dir} is a head on {init.spec.model.features} features, not {layer}; give --features {init.spec.model.features} or drop --init-head"
            )
        if width != layers[layer]:
            raise CheckpointError(
                f"--init-head {init.run_dir} has a head for {layer} size {width}, but the {title(ae.kind)} run "
                f"{ae.run_dir} has {layer} size {layers[layer]}; use an encoder with {layer} size {width} or drop --init-head"
            )
        if "hidden" not in ft.model_fields_set:
            head["hidden"] = init.spec.model.hidden
        elif ft.hidden != init.spec.model.hidden:
            raise SpecError(
                f"--hidden {ft.hidden} does not fit --init-head {init.run_dir}, whose head has {init.spec.model.hidden} hidden units; drop --hidden"
            )
        # The head and the standardisation it was trained behind (its numbers belong to its encoder's features).
        head_state = {
            k: v
            for k, v in init.payload["model"].items()
            if k.startswith(("head.", "standardize."))
        }
    spec = spec.model_copy(
        update={
            "finetune": ft.model_copy(
                update={"ae": str(ae.run_dir), "hidden": head["hidden"], "features": layer}
            )
        }
    )
    spec = config.validate(FinetuneSpec, {**spec.model_dump(), "data": data_cfg}, source="spec")
    backbone = ae.spec.model.model_dump(mode="json")
    model_cfg = {"name": FAMILY, "backbone": backbone, **head}
    run_spec = parse_spec(
        {"model": model_cfg, "data": data_cfg, "train": spec.train.model_dump()}, source="spec"
    )
    device, data = lifecycle.setup(run_spec.train, run_spec.data, data)
    why = data.why_unlabelled()
    if why:
        raise DataError(
            f"{data.name} {why}; a classifier needs two or more classes (a folder with one sub-folder per class)"
        )
    if len(data.classes) != run_spec.model.classes:
        run_spec.model.classes = len(data.classes)
    out_classes = (
        head_state[
            max(k for k in head_state if k.startswith("head.") and k.endswith(".weight"))
        ].shape[0]
        if head_state
        else len(data.classes)
    )
    if out_classes != len(data.classes):
        raise CheckpointError(
            f"--init-head {ft.init_head} predicts {out_classes} classes but {data.name} has {len(data.classes)}"
        )
    return Prepared(spec, run_spec, data, device, ae, head_state)
