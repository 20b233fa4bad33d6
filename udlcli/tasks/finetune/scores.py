"""`udl finetune`'s scores: linear-probe and kNN baselines on the AE's codes, test scores, figures, and --predict."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from udlcli import plots, ui
from udlcli.core import runs
from udlcli.core.loading import load_run
from udlcli.data import TensorImages
from udlcli.tasks.finetune.spec import Prepared

BASELINES_FILE = "baselines.json"
KNN_K = 5


@torch.no_grad()
def predict_proba(model: torch.nn.Module, x: torch.Tensor, batch_size: int = 2048) -> torch.Tensor:
    """Images (N, C, H, W) in [0, 1] -> class probabilities (N, classes), in eval mode."""
    model.eval()
    return torch.cat(
        [torch.softmax(model(x[i : i + batch_size]), 1) for i in range(0, len(x), batch_size)]
    )


@torch.no_grad()
def predict_classes(
    model: torch.nn.Module, data: TensorImages, batch_size: int = 2048
) -> np.ndarray:
    model.eval()
    return torch.cat([model(x).argmax(1) for x, _ in data.batches(batch_size)]).cpu().numpy()


def per_class_scores(true: np.ndarray, pred: np.ndarray, classes: list[str]) -> dict[str, dict]:
    from sklearn.metrics import precision_recall_fscore_support

    p, r, f, n = precision_recall_fscore_support(
        true, pred, labels=range(len(classes)), zero_division=0
    )
    return {
        c: {
            "precision": float(p[i]),
            "recall": float(r[i]),
            "f1": float(f[i]),
            "support": int(n[i]),
        }
        for i, c in enumerate(classes)
    }


@torch.no_grad()
def features_of(model, data: TensorImages, batch_size: int = 2048) -> torch.Tensor:
    """A classifier's head-input features (N, f) of a split (Classifier.encode), in eval mode, on the split's device."""
    was = model.training
    model.eval()
    f = torch.cat([model.encode(x) for x, _ in data.batches(batch_size)])
    model.train(was)
    return f


def baselines(prep: Prepared, run_dir: Path | None = None) -> dict:
    """Test accuracy of a logistic-regression probe and of 5-NN on the encoder's features the head sees.

    The features are the encoder run's own (its --features layer), even with --unfreeze, so these
    say what the frozen encoder holds. The probe sees standardised features (lbfgs converges on them);
    kNN uses the feature space's own distances.
    """
    from sklearn.neighbors import KNeighborsClassifier

    from udlcli.metrics import linear_probe
    from udlcli.models import get

    t0 = time.perf_counter()
    frozen = get(prep.run_spec.model.name).build(
        prep.run_spec.model.model_copy(update={"unfreeze": False}), prep.run_spec.data
    )
    frozen.load_backbone(prep.ae.model)
    frozen.to(prep.device)
    train_split, _ = prep.data.split(prep.run_spec.data.val_fraction, prep.run_spec.train.seed)
    ztr, ytr = (
        features_of(frozen, train_split.to(prep.device)).double().cpu().numpy(),
        train_split.y.numpy(),
    )
    zte, yte = (
        features_of(frozen, prep.data.test.to(prep.device)).double().cpu().numpy(),
        prep.data.test.y.numpy(),
    )
    knn = KNeighborsClassifier(n_neighbors=KNN_K).fit(ztr, ytr)
    out = {
        "features": prep.run_spec.model.features,
        "linear_probe": linear_probe(ztr, ytr, zte, yte),
        f"knn{KNN_K}": float((knn.predict(zte) == yte).mean()),
        "time_s": round(time.perf_counter() - t0, 2),
    }
    ui.info(
        f"baselines on the encoder's {out['features']} features: linear probe {out['linear_probe']:.2%}, {KNN_K}-NN {out[f'knn{KNN_K}']:.2%} test accuracy"
    )
    if run_dir is not None:
        runs.write_json(run_dir / BASELINES_FILE, out)
    return out


def write_figures(
    run_dir: Path,
    history: list[dict],
    test: TensorImages,
    true: np.ndarray,
    pred: np.ndarray,
    classes: list[str],
) -> None:
    from sklearn.metrics import confusion_matrix

    fig = run_dir / "figures"
    plots.loss_curves(history, fig / "loss.png", keys=("loss", "acc"), title=f"{run_dir.name}:")
    cm = confusion_matrix(true, pred, labels=range(len(classes)), normalize="true")
    plots.confusion(
        cm,
        classes,
        fig / "confusion.png",
        title=f"{run_dir.name}: confusion matrix (rows: true class, normalised)",
    )
    wrong = np.flatnonzero(true != pred)[:64]  # the first misclassified test images, in test order
    if len(wrong):
        x = test.images(torch.as_tensor(wrong, device=test.x.device))
        labels = [f"{classes[true[i]]}→{classes[pred[i]]}" for i in wrong]
        plots.image_grid(
            x,
            fig / "mistakes.png",
            nrow=min(8, len(wrong)),
            labels=labels,
            title=f"Misclassified test images (true→predicted), {int((true != pred).sum())} of {len(true)}",
        )


# ---------------------------------------------------------------- --predict


@dataclass
class Prediction:
    run_dir: Path
    rows: list[dict]
    """Per file: file, class (index), label, probability, resized, inverted, size."""
    notes: list[str]


def predict(
    paths: Sequence[str | Path], run: str | Path | None = None, root: str | Path = "runs"
) -> Prediction:
    """Classify a user's image files with a classifier run (the newest under root when run is None)."""
    from udlcli.data.folders import probe
    from udlcli.data.sources import light_on_dark
    from udlcli.data.user_images import expand_paths, load_user_images

    for f in expand_paths(paths):  # a missing or unreadable file is named before any run is loaded
        probe(f)
    loaded = load_run(
        run, root, family="classifier", hint="--run takes a run written by udl finetune"
    )
    d = loaded.spec.data
    imgs = load_user_images(paths, d.image_shape, light_on_dark(d.dataset))  # the run's C, H, W
    classes = (loaded.payload.get("data") or {}).get("classes") or [
        str(i) for i in range(loaded.spec.model.classes)
    ]
    probs = predict_proba(loaded.model, imgs.x)  # (N, classes)
    p, c = probs.max(1)
    rows = [
        {
            "file": str(f),
            "class": int(ci),
            "label": classes[int(ci)],
            "probability": round(float(pi), 6),
            "resized": r,
            "inverted": inv,
            "size": list(s),
        }
        for f, ci, pi, r, inv, s in zip(imgs.paths, c, p, imgs.resized, imgs.inverted, imgs.sizes)
    ]
    return Prediction(loaded.run_dir, rows, imgs.notes)
