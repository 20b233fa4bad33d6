"""`udl probe [RUN]`: how much a run's frozen features know of the classes: a linear probe and a kNN, the self-supervised yardsticks.

Any run that encodes images (core/contracts.py's Encodes: an AE, a VAE, SimCLR, BYOL, ...) is
probed the same way, so their numbers compare:

    linear   a logistic regression on the standardised features of the whole training split,
             its accuracy on the test split (what `udl finetune --baselines` also reports)
    kNN      each test image's k = 200 most similar training features (cosine) vote with weight
             exp(similarity / 0.1), as lightly and solo-learn monitor self-supervised training

The numbers go to RUN/probe.json: probe_<layer>.json for another layer than the default, and
_k<k> added for another k than 200 (probe_k10.json), so no setting replaces another's numbers.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from udlcli import metrics, ui
from udlcli.core import runs
from udlcli.core.contracts import Encodes, layer_of
from udlcli.core.device import resolve_device
from udlcli.core.latent import features_of, run_dataset
from udlcli.core.loading import load_run
from udlcli.core.progress import status
from udlcli.errors import DataError, SpecError
from udlcli.models.registry import a_kind

DEFAULT_K = 200
"""The kNN's neighbours, as lightly and solo-learn count them."""


@dataclass
class ProbeResult:
    run_dir: Path
    numbers: dict = field(default_factory=dict)
    file: Path | None = None


def probe(
    run: str | Path | None = None,
    root: str | Path = "runs",
    features: str | None = None,
    k: int = DEFAULT_K,
    data_dir: str | Path | None = None,
    device: str | None = None,
    command: str = "",
) -> ProbeResult:
    """Probe a run's frozen features (the newest run that encodes, under root, when run is None)."""
    if not 1 <= k <= 10_000:
        raise SpecError(f"--k {k}: give 1 to 10,000 neighbours (200 is the usual)")
    loaded = load_run(
        run, root, needs=(Encodes,), hint="udl probe measures a run that encodes images"
    )
    layers = loaded.model.feature_layers()
    layer = layer_of(layers, features, a_kind(loaded.kind))
    data = run_dataset(loaded, data_dir)
    why = data.why_unlabelled()
    if why:
        raise DataError(f"{data.name} {why}; a probe predicts classes, so it needs labelled data")
    dev = resolve_device(device or "auto")
    t0 = time.perf_counter()
    with status(
        f"{layer} features of {len(data.train):,} training and {len(data.test):,} test images"
    ):
        ztr = features_of(loaded.model, data.train, dev, layer)
        zte = features_of(loaded.model, data.test, dev, layer)
    ytr, yte = data.train.y.numpy(), data.test.y.numpy()
    with status("a linear probe and a kNN on the frozen features"):
        knn = metrics.knn_accuracy(
            torch.from_numpy(ztr), data.train.y, torch.from_numpy(zte), data.test.y, k=k
        )
        linear = metrics.linear_probe(ztr, ytr, zte, yte)
    numbers = {
        "run": str(loaded.run_dir),
        "kind": loaded.kind,
        "features": layer,
        "width": layers[layer],
        "dataset": data.name,
        "train_images": len(data.train),
        "test_images": len(data.test),
        "linear_probe": linear,
        f"knn{k}_cosine": knn,  # weighted, cosine (finetune's baselines: knn{k}, plain Euclidean)
        "time_s": round(time.perf_counter() - t0, 2),
        "command": command,
    }
    # A layer or k other than the default has a file of its own, so it never replaces probe.json.
    name = "probe" + ("" if layer == next(iter(layers)) else f"_{layer}")
    name += "" if k == DEFAULT_K else f"_k{k}"
    if (loaded.run_dir / f"{name}.json").is_file():
        ui.info(f"replacing {loaded.run_dir / name}.json (the same layer and k)")
    path = runs.write_json(loaded.run_dir / f"{name}.json", numbers)
    return ProbeResult(loaded.run_dir, numbers, path)
