"""`udl finetune`: a classifier on a trained AE's encoder, fitted with the shared trainer, and its run folder.

The pieces, in the order a run uses them (`udl tune finetune` reuses the first three):

    spec.resolve_finetune_spec() / spec.prepare()   the spec, and everything loaded and validated
    make_trainer(prepared)     the classifier (encoder weights from the AE) in a Trainer; with a frozen
                               encoder it trains through FeatureHead on features computed once
    fit_head(prepared)         make_trainer + fit, writing nothing (the tuning objective)
    finetune(spec) / resume(run)   the command: run folder, fit, baselines, test scores, figures
    scores                     baselines, test scores, figures, and predict(paths) for a user's own images
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch

from udlcli import config, ui
from udlcli.config import TrainConfig
from udlcli.core import distributed, lifecycle, runs
from udlcli.core.callbacks import MetricsCSV
from udlcli.core.device import describe
from udlcli.core.lifecycle import RunOptions, TrainResult
from udlcli.core.loading import read_checkpoint
from udlcli.core.spec import parse_spec, spec_to_dict
from udlcli.core.trainer import EpochCallback, Trainer
from udlcli.data import TensorImages
from udlcli.errors import Interrupted, TrainingDiverged
from udlcli.models import get
from udlcli.models.classifier import Classifier
from udlcli.tasks.finetune.scores import (
    BASELINES_FILE,
    baselines,
    features_of,
    per_class_scores,
    predict_classes,
    write_figures,
)
from udlcli.tasks.finetune.spec import FAMILY, TASK, FinetuneSpec, Prepared, prepare

__all__ = ["FinetuneResult", "RunOptions", "fit_head", "finetune", "make_trainer", "resume"]


def fit_head(
    prep: Prepared, callbacks: Sequence[EpochCallback] = (), ckpt_dir: Path | None = None
) -> Trainer:
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
    model, train_split, val_split = lifecycle.seeded_fit_inputs(
        prep.run_spec,
        prep.data,
        prep.device,
        lambda: get(FAMILY).build(prep.run_spec.model, prep.run_spec.data),
    )
    if prep.ae is not None:
        model.load_backbone(prep.ae.model)
    if payload is not None:
        # A resumed run's weights (its backbone's above all) before its features are computed: the
        # features of a frozen backbone are computed once, here, and trained on for every epoch.
        model.load_state_dict(payload["model"])
    model.to(prep.device)
    frozen = not prep.run_spec.model.unfreeze
    features = (
        features_of(model, train_split)
        if frozen or (payload is None and prep.head_state is None)
        else None
    )
    if prep.head_state is not None:
        model.load_state_dict(
            prep.head_state, strict=False
        )  # head and standardize only; the encoder is the AE's
    elif payload is None and prep.run_spec.model.standardize:
        model.standardize.fit(features)  # the training split's mean and std, fixed from now on
    trainee: torch.nn.Module = model
    if frozen:
        # A frozen encoder maps each image to the same features every epoch: encode the splits once
        # and train the head on them, so an epoch costs only the head (about 10x faster on a CPU).
        trainee = FeatureHead(model)
        train_split, val_split = (
            FeatureSplit(features, train_split.y),
            FeatureSplit.encode(model, val_split),
        )
    trainer = Trainer(
        trainee,
        cfg,
        train_split,
        val_split,
        prep.device,
        ckpt_dir=ckpt_dir,
        extra={
            "kind": FAMILY,
            "spec": spec_to_dict(prep.run_spec),
            "finetune": prep.spec.model_dump(mode="json"),
            "data": prep.data.info(),
            **(extra or {}),
        },
        callbacks=list(callbacks),
        label="finetune",
        resume_command=get(FAMILY).resumes(),
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

    def loss(self, f: torch.Tensor, y: torch.Tensor, rows=None) -> dict[str, torch.Tensor]:
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
    def encode(cls, model: Classifier, data: TensorImages) -> FeatureSplit:
        return cls(features_of(model, data), data.y)

    def __len__(self) -> int:
        return len(self.z)

    def n_batches(self, batch_size: int) -> int:
        return (len(self) + batch_size - 1) // batch_size

    def batches(self, batch_size: int, generator: torch.Generator | None = None):
        """(features (B, f), labels (B,)); the shuffle uses the same CPU generator draw as TensorImages.batches."""
        order = (
            torch.randperm(len(self), generator=generator).to(self.z.device)
            if generator is not None
            else None
        )
        for start in range(0, len(self), batch_size):
            idx = (
                slice(start, start + batch_size)
                if order is None
                else order[start : start + batch_size]
            )
            yield self.z[idx], self.y[idx]


# ---------------------------------------------------------------- the command


@dataclass
class FinetuneResult(TrainResult):
    classes: list[str] = field(default_factory=list)


def finetune(spec: FinetuneSpec, opts: RunOptions | None = None, data=None) -> FinetuneResult:
    """A fresh classifier run: everything is loaded and validated before runs/finetune/<name>/ is created."""
    opts = opts or RunOptions()
    prep = prepare(spec, opts.out, data)
    run_dir = lifecycle.new_run(
        TASK,
        prep.spec.model_dump(mode="json"),
        opts,
        prep.device,
        prep.data,
        train_cfg=prep.run_spec.train,
    )
    enc = "fine-tuned (--unfreeze)" if prep.run_spec.model.unfreeze else "frozen"
    ui.info(
        f"[bold]classifier[/] on the {enc} encoder of [cyan]{prep.ae.run_dir}[/]; {lifecycle.data_line(prep.data)}; "
        f"device {describe(prep.device)}; run folder [cyan]{run_dir}[/]"
    )
    main = distributed.world().is_main  # rank 0 alone scores the baselines into the run folder
    base = baselines(prep, run_dir) if prep.spec.finetune.baselines and main else {}
    return _run(run_dir, prep, base, payload=None)


def resume(
    run: str | Path,
    epochs: int | None = None,
    device: str | None = None,
    opts: RunOptions | None = None,
) -> FinetuneResult:
    """Continue a classifier run from weights/last.pt (the encoder and head weights come from it, not the AE)."""
    r = lifecycle.open_resume(run, command="finetune")
    spec = config.validate(
        FinetuneSpec, r.payload.get("finetune") or {}, source=f"spec stored in {r.checkpoint}"
    )
    run_spec = parse_spec(r.payload["spec"], source=f"spec stored in {r.checkpoint}")
    lifecycle.extend(run_spec.train, r.done, epochs, device, r.run_dir)
    spec.train.epochs, spec.train.device = run_spec.train.epochs, run_spec.train.device
    dev, data = lifecycle.setup(run_spec.train, run_spec.data)
    lifecycle.check_same_data(r.payload, data)
    prep = Prepared(spec, run_spec, data, dev)
    lifecycle.say_resuming(r, run_spec.train.epochs, dev)
    path = r.run_dir / BASELINES_FILE
    base = json.loads(path.read_text()) if path.is_file() else {}
    return _run(r.run_dir, prep, base, payload=r.payload)


def _run(run_dir: Path, prep: Prepared, base: dict, payload: dict | None) -> FinetuneResult:
    callbacks = [
        MetricsCSV(run_dir),
        *lifecycle.trackers(prep.run_spec.train, run_dir, prep.spec.model_dump(mode="json")),
    ]
    trainer = make_trainer(
        prep,
        run_dir / runs.WEIGHTS,
        callbacks,
        payload=payload,
        extra={"ae_run": prep.spec.finetune.ae},
    )
    if payload is not None:
        lifecycle.write_metrics(run_dir, trainer.history)
    t0 = time.perf_counter()
    try:
        trainer.fit()
    except (Interrupted, TrainingDiverged) as e:
        if trainer.world.is_main:  # what the epochs done show, kept beside the checkpoint
            status = "interrupted" if isinstance(e, Interrupted) else "diverged"
            summary = lifecycle.base_summary(
                trainer, FAMILY, prep.data, prep.device, status, time.perf_counter() - t0
            )
            runs.write_json(run_dir / "summary.json", summary)
        raise
    wall = time.perf_counter() - t0
    # Final evaluation uses the best checkpoint (lowest validation cross-entropy), written by rank 0.
    distributed.barrier()
    best = read_checkpoint(run_dir / runs.WEIGHTS / "best.pt")
    model = classifier_of(trainer)
    model.load_state_dict(best["model"])
    test = prep.data.test.to(prep.device)
    test_metrics = trainer.evaluate(  # all-reduced over the ranks
        FeatureSplit.encode(model, test) if isinstance(trainer.model, FeatureHead) else test
    )
    distributed.rest_on_main()  # the other ranks end here: the run folder is rank 0's
    if not trainer.world.is_main:
        return FinetuneResult(run_dir, {}, trainer.history, prep.data.classes)
    pred = predict_classes(model, test)
    true = test.y.cpu().numpy()
    classes = prep.data.classes
    history = trainer.history
    summary = {
        "model": FAMILY,
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
        **lifecycle.timing(history, wall),
        "dataset": prep.data.info(),
        "device": describe(prep.device),
    }
    write_figures(run_dir, history, test, true, pred, classes)
    runs.write_json(run_dir / "summary.json", summary)
    lifecycle.finish_tracking(trainer, summary)
    return FinetuneResult(run_dir, summary, history, classes)
