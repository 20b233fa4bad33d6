"""udl evaluate's feature network: a LeNet trained once per dataset with the shared trainer, then cached and reused.

The cache is an ordinary run folder, `<data dir>/featurenets/lenet/<dataset>/` (or the same under the
user cache folder ~/.cache/udl when the data dir is read-only), holding the usual spec.yaml,
metrics.csv, summary.json and weights/, plus `featurenet.json`, which records how the network was
made (dataset, recipe, test accuracy, versions). featurenet.json is written last: a folder without
it is an interrupted training and is never used.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import stat
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch

from udlcli import ui
from udlcli.data import ImageDataset, TensorImages, resolve_data_dir
from udlcli.data.sources import default_cache_dir
from udlcli.engine import runs
from udlcli.engine.device import describe, resolve_device
from udlcli.errors import DataError

RECIPE = 2
"""Bump when the architecture or training recipe changes, so cached networks of the old recipe are retrained."""
RECORD = "featurenet.json"
CACHE_DIR = "featurenets"
MNIST_ACCURACY_BAR = 0.99


@dataclass
class FeatureNet:
    """A trained LeNet in eval mode and the record of how it was made."""

    model: torch.nn.Module
    run_dir: Path
    record: dict
    device: torch.device

    @torch.no_grad()
    def embed(self, images: torch.Tensor, batch_size: int = 1000) -> tuple[np.ndarray, np.ndarray]:
        """Images (N, 1, 28, 28) in [0, 1] -> (features (N, f) float32, class probabilities (N, C) float64)."""
        feats, probs = [], []
        for i in range(0, len(images), batch_size):
            x = images[i : i + batch_size].to(self.device, torch.float32)
            f = self.model.features(x)  # (B, f)
            feats.append(f.cpu())
            probs.append(torch.softmax(self.model.head(f).double(), dim=1).cpu())  # (B, C)
        return torch.cat(feats).numpy(), torch.cat(probs).numpy()

    def embed_split(self, split: TensorImages, batch_size: int = 1000) -> tuple[np.ndarray, np.ndarray]:
        return self.embed(split.images(), batch_size)


def dataset_key(name: str, limit: int | None = None) -> str:
    """The cache folder name of a dataset: its name, a hash for folder:PATH, a suffix for a limited train split."""
    key = name
    if name.startswith("folder:"):
        path = str(Path(name[len("folder:") :]).expanduser().resolve())
        key = "folder-" + hashlib.sha1(path.encode()).hexdigest()[:10]
    return f"{key}-limit{limit}" if limit else key


def writable(folder: Path) -> bool:
    """Whether folder exists or can be made, and may be written. A folder marked read-only (no owner
    write bit, like a shared data folder) counts as read-only even for root, whom os.access lets through."""
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not (existing.stat().st_mode & stat.S_IWUSR) or not os.access(existing, os.W_OK):
        return False
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError:
        return False
    return True


def cache_roots(data_dir: str | os.PathLike | None = None) -> list[Path]:
    """Where cached networks are looked for, in order: beside the data, then the user cache."""
    roots = [resolve_data_dir(data_dir) / CACHE_DIR, default_cache_dir() / CACHE_DIR]
    return list(dict.fromkeys(roots))


def writable_root(data_dir: str | os.PathLike | None = None) -> Path:
    """Where a newly trained network goes: beside the data when that folder is writable, else the user cache."""
    root = next((r for r in cache_roots(data_dir) if writable(r)), None)
    if root is None:
        raise DataError(f"no writable folder to cache the feature network in (tried {', '.join(map(str, cache_roots(data_dir)))}); set XDG_CACHE_HOME")
    return root


def find_cached(key: str, data_dir: str | os.PathLike | None = None) -> Path | None:
    """The run folder of a finished feature network for this dataset key and recipe, or None."""
    for root in cache_roots(data_dir):
        for run_dir in sorted((root / "lenet").glob(f"{key}*"), key=runs._natural_key):
            try:
                rec = json.loads((run_dir / RECORD).read_text())
            except (OSError, ValueError):
                continue  # no record: an interrupted training, or another dataset's folder
            if rec.get("key") == key and rec.get("recipe") == RECIPE and (run_dir / runs.WEIGHTS / "best.pt").is_file():
                return run_dir
    return None


def featurenet_for(
    data: ImageDataset,
    data_dir: str | os.PathLike | None = None,
    device: str = "auto",
    epochs: int | None = None,
    limit: int | None = None,
) -> FeatureNet:
    """The feature network of data's dataset: loaded from the cache, or trained now (once) and cached.

    epochs and limit change the recipe for quick tests; limit is part of the cache key, so a
    network trained on part of a dataset is never used for the whole of it.
    """
    from udlcli.engine.loading import load_run

    key = dataset_key(data.name, limit)
    run_dir = find_cached(key, data_dir)
    if run_dir is None:
        run_dir = _train(data, key, data_dir, device, epochs, limit)
    loaded = load_run(run_dir, kinds=("lenet",))
    dev = resolve_device(device)
    record = json.loads((run_dir / RECORD).read_text())
    return FeatureNet(loaded.model.to(dev).eval(), run_dir, record, dev)


def _train(data: ImageDataset, key: str, data_dir, device: str, epochs: int | None, limit: int | None) -> Path:
    from udlcli.engine.spec import resolve_spec, spec_to_dict
    from udlcli.engine.train import RunOptions, train

    if int((data.train.y >= 0).sum()) < len(data.train) or len(data.classes) < 2:
        raise DataError(
            f"dataset {data.name!r} has no class labels for every training image; the feature network of udl evaluate "
            "is a classifier, so give a dataset with one sub-folder per class (or evaluate against mnist)"
        )
    if limit:
        data = dataclasses.replace(data, train=TensorImages(data.train.x[:limit], data.train.y[:limit]))
    root = writable_root(data_dir)
    flags = {
        # 10% held out for choosing the best epoch is plenty for a classifier; the rest trains it.
        "data.dataset": data.name, "data.data_dir": str(data_dir) if data_dir else None, "data.limit": limit, "data.val_fraction": 0.1,
        "model.classes": len(data.classes), "train.epochs": epochs, "train.device": device,
    }
    spec = resolve_spec("lenet", flags=flags)
    ui.info(f"udl evaluate needs a feature network for {data.name}: training it once ({spec.train.epochs} epochs); it is cached in {root}")
    result = train(spec, RunOptions(out=root, name=key, command="udl evaluate (feature network)"), data=data)
    s = result.summary
    acc = s["test"].get("acc", float("nan"))
    record = {
        "key": key,
        "recipe": RECIPE,
        "what": "udl evaluate's feature network: LeNet penultimate layer for FID and precision/recall, softmax for balance, confidence and IS",
        "dataset": data.info(),
        "model": spec_to_dict(spec)["model"],
        "train": spec_to_dict(spec)["train"],
        "test_accuracy": acc,
        "test_loss": s["test"].get("loss"),
        "best_epoch": s["best_epoch"],
        "train_time_s": s["train_time_s"],
        "device": describe(resolve_device(device)),
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "versions": runs.versions(),
    }
    runs.write_json(result.run_dir / RECORD, record)  # last: marks the cache entry complete
    ui.info(f"feature network: test accuracy {acc:.2%}; cached in [cyan]{result.run_dir}[/]")
    if data.name == "mnist" and not limit and acc < MNIST_ACCURACY_BAR:
        ui.warn(f"the feature network reached only {acc:.2%} MNIST test accuracy (expected >= {MNIST_ACCURACY_BAR:.0%}); FIDs from it are less reliable")
    return result.run_dir
