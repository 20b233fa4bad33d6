"""Training a feature network for udl evaluate (the LeNet recipe on the shared trainer, cached as a run folder), and finding the one to use.

The same function makes the shipped networks (udlcli/featurenets/build.py) and the ones trained on
first use for other data (featurenet_for, below).
"""

from __future__ import annotations

import dataclasses
import json
import os
from datetime import datetime, timezone
from pathlib import Path

from udlcli import ui
from udlcli.config import MNIST_SHAPE
from udlcli.core import runs
from udlcli.core.device import describe, resolve_device
from udlcli.data import ImageDataset, TensorImages
from udlcli.errors import CheckpointError, DataError
from udlcli.tasks.evaluate import featurenet as nets
from udlcli.tasks.evaluate.featurenet import (
    MNIST_ACCURACY_BAR,
    RECIPE,
    RECORD,
    WEIGHTS_FILE,
    FeatureNet,
    save_network,
    writable,
)


def train_network(
    data: ImageDataset,
    key: str,
    data_dir,
    device: str,
    epochs: int | None,
    limit: int | None,
    root: Path,
) -> Path:
    """Train a feature network with the shared trainer into root/lenet/<key>/; the same recipe makes the shipped ones."""
    from udlcli.core.loading import load_run
    from udlcli.core.spec import resolve_spec, spec_to_dict
    from udlcli.tasks.train import RunOptions, train

    why = data.why_unlabelled()
    if why:
        raise DataError(
            f"dataset {data.name!r} {why}; udl evaluate's feature network is a classifier trained on the dataset's labelled "
            "training split, so it needs two or more classes (a folder with one sub-folder per class)"
        )
    if not writable(root):
        raise DataError(
            f"cannot write the feature network's cache in {root}; set UDL_CACHE_DIR to a writable folder"
        )
    if limit:
        data = dataclasses.replace(
            data, train=TensorImages(data.train.x[:limit], data.train.y[:limit])
        )
    flags = {
        # 10% held out for choosing the best epoch is plenty for a classifier; the rest trains it.
        "data.dataset": data.name,
        "data.data_dir": str(data_dir) if data_dir else None,
        "data.limit": limit,
        "data.val_fraction": 0.1,
        "model.classes": len(data.classes),
        "train.epochs": epochs,
        "train.device": device,
    }
    spec = resolve_spec("lenet", flags=flags)
    ui.info(
        f"udl evaluate needs a feature network for {data.name}: training it once ({spec.train.epochs} epochs); it is cached in {root}"
    )
    result = train(
        spec, RunOptions(out=root, name=key, command="udl evaluate (feature network)"), data=data
    )
    s = result.summary
    acc = s["test"].get("acc", float("nan"))
    d = spec_to_dict(spec)
    record = {
        "key": key,
        "recipe": RECIPE,
        "what": "udl evaluate's feature network: LeNet penultimate layer for FID and precision/recall; class probabilities for balance, confidence and IS",
        "dataset": data.info(),
        "model": d["model"],
        "data": {"mean": d["data"]["mean"], "std": d["data"]["std"], "shape": d["data"]["shape"]},
        "train": d["train"],
        "test_accuracy": acc,
        "test_loss": s["test"].get("loss"),
        "best_epoch": s["best_epoch"],
        "train_time_s": s["train_time_s"],
        "device": describe(resolve_device(device)),
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "versions": runs.versions(),
    }
    best = load_run(result.run_dir, family="lenet")  # the epoch of lowest validation loss
    record["sha256"] = save_network(best.model, record, result.run_dir / WEIGHTS_FILE)
    runs.write_json(result.run_dir / RECORD, record)  # last: marks the cache entry complete
    ui.info(
        f"feature network: test accuracy {acc:.2%}; sha256 {record['sha256'][:12]}…; cached in [cyan]{result.run_dir}[/]"
    )
    if data.name == "mnist" and not limit and acc < MNIST_ACCURACY_BAR:
        ui.warn(
            f"the feature network reached only {acc:.2%} MNIST test accuracy (expected >= {MNIST_ACCURACY_BAR:.0%}); FIDs from it are less reliable"
        )
    return result.run_dir


def featurenet_for(
    data: ImageDataset,
    data_dir: str | os.PathLike | None = None,
    device: str = "auto",
    epochs: int | None = None,
    limit: int | None = None,
    shipped: bool = True,
) -> FeatureNet:
    """The feature network of data's dataset: the shipped one, else the cached one, else one trained now (once).

    epochs and limit change the recipe (quick test networks), so they never use a shipped network;
    limit is part of the cache key, so a network trained on part of a dataset is never used for the whole.
    shipped=False skips the shipped networks (to test the training path).
    """
    # Through the module, so a test (or a plug-in) that points SHIPPED_DIR elsewhere is heard.
    plain = shipped and epochs is None and limit is None and tuple(data.shape) == MNIST_SHAPE
    entry = (
        nets.shipped_entry(data.name) if plain else None
    )  # the shipped networks are for the 28x28 digits as they are
    if entry is not None:
        return nets.load_network(
            nets.SHIPPED_DIR / entry["file"], device, expected_sha256=entry["sha256"], shipped=True
        )
    key = nets.dataset_key(data.name, limit, data.shape)
    run_dir = nets.find_cached(key)
    if run_dir is None:
        run_dir = train_network(data, key, data_dir, device, epochs, limit, nets.cache_root())
    net = nets.load_network(run_dir / WEIGHTS_FILE, device)
    recorded = json.loads((run_dir / RECORD).read_text()).get("sha256")
    if recorded != net.sha256:
        raise CheckpointError(
            f"{run_dir / WEIGHTS_FILE} changed since it was trained (SHA-256 {net.sha256[:12]}…, recorded {str(recorded)[:12]}…); delete {run_dir} to retrain"
        )
    return net
