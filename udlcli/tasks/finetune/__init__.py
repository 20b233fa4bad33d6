"""`udl finetune`: a classifier on a trained AE's encoder: spec and preparation, the run, and its scores and --predict."""

from udlcli.core.lifecycle import RunOptions
from udlcli.tasks.finetune.run import (
    FeatureHead,
    FeatureSplit,
    FinetuneResult,
    classifier_of,
    finetune,
    fit_head,
    make_trainer,
    resume,
)
from udlcli.tasks.finetune.scores import baselines, features_of, predict
from udlcli.tasks.finetune.spec import (
    FROZEN_EPOCHS,
    TASK,
    UNFROZEN_EPOCHS,
    FinetuneConfig,
    FinetuneSpec,
    Prepared,
    prepare,
    resolve_finetune_spec,
)

__all__ = [
    "FROZEN_EPOCHS",
    "TASK",
    "UNFROZEN_EPOCHS",
    "FeatureHead",
    "FeatureSplit",
    "FinetuneConfig",
    "FinetuneResult",
    "FinetuneSpec",
    "Prepared",
    "RunOptions",
    "baselines",
    "classifier_of",
    "features_of",
    "finetune",
    "fit_head",
    "make_trainer",
    "predict",
    "prepare",
    "resolve_finetune_spec",
    "resume",
]
