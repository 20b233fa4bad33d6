"""`udl finetune`: a classifier on a trained AE's encoder, its linear-probe and kNN baselines, and --predict.

The pieces, in the order a run uses them (`udl tune finetune` reuses the first three):

    resolve_finetune_spec()  classifier defaults < YAML < flags < --set  ->  FinetuneSpec
    prepare(spec)            load the AE run, the data and everything else; validate; write nothing
    fit_head(prepared)       build the classifier (encoder weights from the AE) and fit it with the
                             shared Trainer; epoch callbacks (e.g. a pruner) go to the Trainer
    finetune(spec) / resume(run)  the command: run folder, fit, baselines, test scores, figures
    finetune_eval            baselines, test scores, figures, and predict(paths) for a user's own images
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import torch

from udlcli import config, ui
from pydantic import model_validator

from udlcli.config import DataConfig, Strict, TrainConfig
from udlcli.data import ImageDataset, TensorImages
from udlcli.core import runs
from udlcli.core.checkpoint import load_checkpoint
from udlcli.core.device import describe
from udlcli.tasks.finetune.scores import BASELINES_FILE, baselines, features_of, per_class_scores, predict_classes, write_figures
from udlcli.core.loading import LoadedRun, load_run
from udlcli.core.spec import RunSpec, spec_to_dict
from udlcli.tasks.train.run import RunOptions, TrainResult, _check_same_data, _data_line, _setup
from udlcli.core.trainer import EpochCallback, Trainer
from udlcli.errors import CheckpointError, DataError, SpecError
from udlcli.models import get
from udlcli.models.classifier import Classifier, HeadConfig

ENCODER_KINDS = ("ae", "dae")
"""Run kinds whose model has the AE's encoder and to_latent modules, so a classifier can start from them."""
TASK = get("classifier").task


class FinetuneConfig(HeadConfig):
    """The YAML `finetune:` section: the head (hidden, dropout, unfreeze, encoder_lr) and what it starts from."""

    ae: Optional[str] = None
    """The AE run (folder or checkpoint) whose encoder is used; None: the newest AE run under --out."""
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
    def _epochs_of_the_mode(self) -> "FinetuneSpec":
        # Fine-tuning the encoder needs fewer epochs than training a head alone; either default
        # applies only when no file, flag or --set gave the epochs.
        if "epochs" not in self.train.model_fields_set:
            self.train.epochs = UNFROZEN_EPOCHS if self.finetune.unfreeze else FROZEN_EPOCHS
        return self


def resolve_finetune_spec(config_path: str | None = None, flags: dict | None = None, sets: Sequence[str] = ()) -> FinetuneSpec:
    """The classifier's training defaults < YAML file < CLI flags < --set overrides, validated once."""
    file_spec = config.load_yaml(config_path) if config_path else {}
    base = {"train": dict(get("classifier").train_defaults)}
    return config.layered(FinetuneSpec, base, file_spec, flags, list(sets), source=f"spec ({config_path})" if config_path else "spec")


@dataclass
class Prepared:
    """Everything a fit needs, loaded and validated; nothing has been written yet."""

    spec: FinetuneSpec
    """As given, with finetune.ae set to the AE run used and data filled in from the AE's spec."""
    run_spec: RunSpec
    """model = the ClassifierConfig; stored in checkpoints so load_run can rebuild the classifier."""
    data: ImageDataset
    device: torch.device
    ae: LoadedRun | None = None
    head_state: dict | None = None
    """Head weights from --init-head, loaded into the new classifier's head."""


def prepare(spec: FinetuneSpec, root: str | Path = "runs", data: ImageDataset | None = None, ae: LoadedRun | None = None) -> Prepared:
    """Load the AE run (and --init-head run), resolve the data config from the AE's, load the data."""
    ft = spec.finetune
    ae = ae or load_run(ft.ae, root, kinds=ENCODER_KINDS, hint="give an AE run folder (runs/ae/<name>) to put the classifier on")
    ae_model = ae.spec.model  # the AE's config: channels, latent_dim
    # The data the AE saw, unless the finetune spec sets a field; the normalisation is the encoder's own.
    data_cfg = {**ae.spec.data.model_dump(), **spec.data.model_dump(exclude_unset=True)}
    data_cfg.update(mean=ae.spec.data.mean, std=ae.spec.data.std)
    head = ft.model_dump(include=set(HeadConfig.model_fields))
    head_state = None
    if ft.init_head:
        init = load_run(ft.init_head, root, kinds=("classifier",), hint="--init-head takes a udl finetune run")
        if init.spec.model.latent_dim != ae_model.latent_dim:
            raise CheckpointError(
                f"--init-head {init.run_dir} has a head for latent size {init.spec.model.latent_dim}, but the AE run "
                f"{ae.run_dir} has latent size {ae_model.latent_dim}; use an AE with latent size {init.spec.model.latent_dim} or drop --init-head"
            )
        if "hidden" not in ft.model_fields_set:
            head["hidden"] = init.spec.model.hidden
        elif ft.hidden != init.spec.model.hidden:
            raise SpecError(f"--hidden {ft.hidden} does not fit --init-head {init.run_dir}, whose head has {init.spec.model.hidden} hidden units; drop --hidden")
        if init.spec.model.features != ft.features:
            raise SpecError(f"--init-head {init.run_dir} is a head on {init.spec.model.features} features, not {ft.features}; give --features {init.spec.model.features} or drop --init-head")
        # The head and the standardisation it was trained behind (its numbers belong to its encoder's features).
        head_state = {k: v for k, v in init.payload["model"].items() if k.startswith(("head.", "standardize."))}
    spec = spec.model_copy(update={"finetune": ft.model_copy(update={"ae": str(ae.run_dir), "hidden": head["hidden"]})})
    spec = config.validate(FinetuneSpec, {**spec.model_dump(), "data": data_cfg}, source="spec")
    model_cfg = {"name": "classifier", "channels": ae_model.channels, "latent_dim": ae_model.latent_dim, **head}
    run_spec = config.validate(RunSpec, {"model": model_cfg, "data": data_cfg, "train": spec.train.model_dump()}, source="spec")
    device, data = _setup(run_spec, data)
    if len(data.classes) < 2 or int(data.train.y.min()) < 0:
        raise DataError(f"{data.name} has no class labels; a classifier needs a labelled dataset (a folder with one sub-folder per class)")
    if len(data.classes) != run_spec.model.classes:
        run_spec.model.classes = len(data.classes)
    out_classes = head_state[max(k for k in head_state if k.startswith("head.") and k.endswith(".weight"))].shape[0] if head_state else len(data.classes)
    if out_classes != len(data.classes):
        raise CheckpointError(f"--init-head {ft.init_head} predicts {out_classes} classes but {data.name} has {len(data.classes)}")
    return Prepared(spec, run_spec, data, device, ae, head_state)


def fit_head(prep: Prepared, callbacks: Sequence[EpochCallback] = (), ckpt_dir: Path | None = None) -> Trainer:
    """Build the classifier and fit it with the shared Trainer; returns the trainer (history, best_val, model).

    This is the tuning objective's core: without ckpt_dir nothing is written. Callbacks get (epoch,
    metrics row) after each epoch, row["val_loss"] being the validation cross-entropy, and may raise
    (e.g. optuna.TrialPruned) to stop.
    """
    trainer = make_trainer(prep, ckpt_dir, callbacks)
    trainer.fit()
    return trainer


def make_trainer(
    prep: Prepared,
    ckpt_dir: Path | None = None,
    callbacks: Sequence[EpochCallback] = (),
    payload: dict | None = None,
    extra: dict | None = None,
) -> Trainer:
    """The classifier (encoder weights from the AE, head from --init-head) in a Trainer, ready to fit()."""
    cfg = prep.run_spec.train
    torch.manual_seed(cfg.seed)
    model: Classifier = get("classifier").build(prep.run_spec.model, prep.run_spec.data)
    if prep.ae is not None:
        model.load_encoder(prep.ae.model)
    train_split, val_split = prep.data.split(prep.run_spec.data.val_fraction, cfg.seed)
    train_split, val_split = train_split.to(prep.device), val_split.to(prep.device)
    model.to(prep.device)
    frozen = not prep.run_spec.model.unfreeze
    features = features_of(model, train_split) if frozen or (payload is None and prep.head_state is None) else None
    if prep.head_state is not None:
        model.load_state_dict(prep.head_state, strict=False)  # head and standardize only; the encoder is the AE's
    elif payload is None and prep.run_spec.model.standardize:
        model.standardize.fit(features)  # the training split's mean and std, fixed from now on
    trainee: torch.nn.Module = model
    if frozen:
        # A frozen encoder maps each image to the same features every epoch: encode the splits once
        # and train the head on them, so an epoch costs only the head (about 10x faster on a CPU).
        trainee = FeatureHead(model)
        train_split, val_split = FeatureSplit(features, train_split.y), FeatureSplit.encode(model, val_split)
    trainer = Trainer(
        trainee, cfg, train_split, val_split, prep.device, ckpt_dir=ckpt_dir,
        extra={"kind": "classifier", "spec": spec_to_dict(prep.run_spec), "finetune": prep.spec.model_dump(mode="json"),
               "data": prep.data.info(), **(extra or {})},
        callbacks=list(callbacks), label="finetune",
    )
    if payload is not None:
        trainer.load_state(payload)
    return trainer


class FeatureHead(torch.nn.Module):
    """A classifier seen through its head, fed features computed once: the trainer's model for a frozen encoder.

    Its loss contract takes features (B, f) instead of images; its state is the whole classifier's,
    so checkpoints load back into a Classifier (load_run, --resume) as they are.
    """

    def __init__(self, classifier: Classifier):
        super().__init__()
        self.classifier = classifier

    def loss(self, f: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
        return self.classifier.feature_loss(f, y)

    def param_groups(self, cfg: TrainConfig) -> list[dict]:
        return self.classifier.param_groups(cfg)

    def state_dict(self, *args, **kwargs):
        return self.classifier.state_dict(*args, **kwargs)

    def load_state_dict(self, state, strict: bool = True, assign: bool = False):
        return self.classifier.load_state_dict(state, strict=strict, assign=assign)


def classifier_of(trainer: Trainer) -> Classifier:
    """The Classifier a trainer trains, whether directly or through its FeatureHead."""
    return trainer.model.classifier if isinstance(trainer.model, FeatureHead) else trainer.model


class FeatureSplit:
    """A split's features (N, f) from a frozen encoder with its labels, batched exactly like TensorImages."""

    def __init__(self, z: torch.Tensor, y: torch.Tensor):
        self.z, self.y = z, y

    @classmethod
    def encode(cls, model: Classifier, data: TensorImages) -> "FeatureSplit":
        return cls(features_of(model, data), data.y)

    def __len__(self) -> int:
        return len(self.z)

    def n_batches(self, batch_size: int) -> int:
        return (len(self) + batch_size - 1) // batch_size

    def batches(self, batch_size: int, generator: torch.Generator | None = None):
        """(features (B, f), labels (B,)); the shuffle uses the same CPU generator draw as TensorImages.batches."""
        order = torch.randperm(len(self), generator=generator).to(self.z.device) if generator is not None else None
        for start in range(0, len(self), batch_size):
            idx = slice(start, start + batch_size) if order is None else order[start : start + batch_size]
            yield self.z[idx], self.y[idx]


# ---------------------------------------------------------------- the command


@dataclass
class FinetuneResult(TrainResult):
    classes: list[str] = field(default_factory=list)


def finetune(spec: FinetuneSpec, opts: RunOptions | None = None, data: ImageDataset | None = None) -> FinetuneResult:
    """A fresh classifier run: everything is loaded and validated before runs/finetune/<name>/ is created."""
    opts = opts or RunOptions()
    prep = prepare(spec, opts.out, data)
    run_dir = runs.new_run_dir(opts.out, TASK, opts.name)
    meta = {"command": opts.command, "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "versions": runs.versions(), "device": describe(prep.device), "dataset": prep.data.info()}
    runs.write_spec(run_dir, prep.spec.model_dump(mode="json"), meta)
    enc = "fine-tuned (--unfreeze)" if prep.run_spec.model.unfreeze else "frozen"
    ui.info(f"[bold]classifier[/] on the {enc} encoder of [cyan]{prep.ae.run_dir}[/]; {_data_line(prep.data)}; "
            f"device {describe(prep.device)}; run folder [cyan]{run_dir}[/]")
    base = {}
    if prep.spec.finetune.baselines:
        base = baselines(prep, run_dir)
    return _run(run_dir, prep, base, payload=None)


def resume(run: str | Path, epochs: int | None = None, device: str | None = None, opts: RunOptions | None = None) -> FinetuneResult:
    """Continue a classifier run from weights/last.pt (the encoder and head weights come from it, not the AE)."""
    run_dir = Path(run)
    last = run_dir / runs.WEIGHTS / "last.pt"
    if not last.is_file():
        raise CheckpointError(f"--resume {run}: no checkpoint at {last}; nothing to resume (start a new run instead)")
    payload = load_checkpoint(last)
    if payload.get("kind") != "classifier" or "finetune" not in payload:
        raise CheckpointError(f"--resume {run}: {last} is not a udl finetune checkpoint; resume it with its own command")
    spec = config.validate(FinetuneSpec, payload["finetune"], source=f"spec stored in {last}")
    run_spec = config.validate(RunSpec, payload["spec"], source=f"spec stored in {last}")
    done = int(payload["epoch"])
    if epochs is not None:
        if epochs <= done:
            raise SpecError(f"--epochs {epochs}: the run already has {done} epochs; give a larger number to extend it")
        run_spec.train.epochs = spec.train.epochs = epochs
    if device is not None:
        run_spec.train.device = spec.train.device = device
    if done >= run_spec.train.epochs:
        raise SpecError(f"{run_dir} already finished {done}/{run_spec.train.epochs} epochs; pass --epochs N (N > {done}) to extend it")
    dev, data = _setup(run_spec)
    _check_same_data(payload, data)
    prep = Prepared(spec, run_spec, data, dev)
    ui.info(f"resuming [cyan]{run_dir}[/] at epoch {done + 1}/{run_spec.train.epochs}; device {describe(dev)}")
    path = run_dir / BASELINES_FILE
    base = json.loads(path.read_text()) if path.is_file() else {}
    return _run(run_dir, prep, base, payload=payload)


def _run(run_dir: Path, prep: Prepared, base: dict, payload: dict | None) -> FinetuneResult:
    trainer = make_trainer(prep, run_dir / runs.WEIGHTS, payload=payload, extra={"ae_run": prep.spec.finetune.ae})
    trainer.callbacks.append(lambda epoch, row: runs.write_metrics(run_dir, trainer.history))
    if payload is not None:
        runs.write_metrics(run_dir, trainer.history)
    t0 = time.perf_counter()
    trainer.fit()
    wall = time.perf_counter() - t0
    # Final evaluation uses the best checkpoint (lowest validation cross-entropy).
    best = load_checkpoint(run_dir / runs.WEIGHTS / "best.pt")
    model = classifier_of(trainer)
    model.load_state_dict(best["model"])
    test = prep.data.test.to(prep.device)
    test_metrics = trainer.evaluate(FeatureSplit.encode(model, test) if isinstance(trainer.model, FeatureHead) else test)
    pred = predict_classes(model, test)
    true = test.y.cpu().numpy()
    classes = prep.data.classes
    history = trainer.history
    summary = {
        "model": "classifier",
        "status": "finished",
        "ae_run": prep.spec.finetune.ae,
        "encoder": "fine-tuned" if prep.run_spec.model.unfreeze else "frozen",
        "features": prep.run_spec.model.features,
        "epochs": trainer.epoch,
        "best_epoch": int(best["epoch"]),
        "best_val_loss": trainer.best_val,
        "test_accuracy": test_metrics["acc"],
        "test": test_metrics,
        "per_class": per_class_scores(true, pred, classes),
        "baselines": base,
        "trainable_params": model.trainable_parameters(),
        "params": sum(p.numel() for p in model.parameters()),
        "wall_time_s": round(wall, 2),
        "train_time_s": round(sum(r["time_s"] for r in history), 2),
        "images_per_s": round(float(np.mean([r["images_per_s"] for r in history])), 1),
        "dataset": prep.data.info(),
        "device": describe(prep.device),
    }
    write_figures(run_dir, history, test, true, pred, classes)
    runs.write_json(run_dir / "summary.json", summary)
    return FinetuneResult(run_dir, summary, history, classes)
