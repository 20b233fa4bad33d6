"""udl evaluate's feature network: a fixed LeNet shipped for MNIST and Fashion-MNIST, trained once and cached for other data.

Shipped networks (`udlcli/featurenets/<name>.safetensors`, listed with their SHA-256 in
`manifest.json`) were trained once by `python -m udlcli.featurenets.build` with the recipe below,
so every install scores with the same weights: numbers from two machines compare, as FIDs on
Inception's fixed weights do. mnist-sample is MNIST's digits and uses MNIST's network.

Any other dataset (kmnist, folder:PATH) gets a network trained on first use with the same recipe,
cached as an ordinary run folder in the user cache, `~/.cache/udl/featurenets/lenet/<dataset>/`
(`$UDL_CACHE_DIR/featurenets/...` when that is set; never beside the data). Its
`featurenet.safetensors` is the same format as a shipped file, and `featurenet.json`, written last
(a folder without it is an interrupted training and is never used), records how it was made and its
SHA-256: its numbers compare only with numbers from a network of the same hash.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from udlcli.config import LEGACY_SHAPE
from udlcli.core import runs
from udlcli.core.device import resolve_device
from udlcli.data import TensorImages
from udlcli.data.sources import default_cache_dir
from udlcli.errors import CheckpointError

RECIPE = 3
"""Bump when the architecture or training recipe changes, so cached networks of the old recipe are retrained.
3: the reject output trained on synthetic non-images (outlier exposure)."""
RECORD = "featurenet.json"
WEIGHTS_FILE = "featurenet.safetensors"
CACHE_DIR = "featurenets"
SHIPPED_DIR = Path(__file__).resolve().parents[2] / "featurenets"  # udlcli/featurenets/
MANIFEST = SHIPPED_DIR / "manifest.json"
MNIST_ACCURACY_BAR = 0.99


@dataclass
class FeatureNet:
    """A LeNet in eval mode, the record of how it was made, and where its weights come from."""

    model: torch.nn.Module
    source: Path
    """The .safetensors file the weights were read from."""
    record: dict
    device: torch.device
    sha256: str
    shipped: bool
    """True for a network shipped with udl (the same on every install)."""

    @property
    def shape(self) -> tuple[int, int, int]:
        """The (C, H, W) of the images the network takes."""
        return tuple((self.record.get("data") or {}).get("shape") or LEGACY_SHAPE)

    @torch.no_grad()
    def embed(self, images: torch.Tensor, batch_size: int = 1000) -> tuple[np.ndarray, np.ndarray]:
        """Images (N, C, H, W) in [0, 1] (or uint8 pixels) -> (features (N, f) float32, probabilities of the data's classes (N, C) float64).

        The probabilities sum to 1 - P(not data) (see udlcli.models.lenet): near 0 for noise.
        """
        feats, probs = [], []
        for i in range(0, len(images), batch_size):
            x = images[i : i + batch_size].to(self.device)
            x = x.float().div_(255.0) if x.dtype == torch.uint8 else x.float()  # uint8 pixels too
            f = self.model.features(x)  # (B, f)
            feats.append(f.cpu())
            probs.append(self.model.data_probs(f).cpu())  # (B, C)
        return torch.cat(feats).numpy(), torch.cat(probs).numpy()

    def embed_split(
        self, split: TensorImages, batch_size: int = 1000
    ) -> tuple[np.ndarray, np.ndarray]:
        return self.embed(
            split.x, batch_size
        )  # uint8, made float a batch at a time (CelebA's is 1 GB as float)

    def info(self) -> dict:
        """What evaluation.json and the table footer say about the yardstick."""
        r = self.record
        return {
            "sha256": self.sha256,
            "shipped": self.shipped,
            "source": str(self.source),
            "dataset": (r.get("dataset") or {}).get("name"),
            "recipe": r.get("recipe"),
            "test_accuracy": r.get("test_accuracy"),
            "features": (r.get("model") or {}).get("features"),
            "train_size": (r.get("dataset") or {}).get("train_size"),
            "note": None
            if self.shipped
            else "a network trained on this machine: these numbers compare only with numbers from a network of the same sha256",
        }


def sha256_of(path: Path) -> str:
    from udlcli.data.fetch import digest

    return digest(path, "sha256")


# ---------------------------------------------------------------- safetensors files (shipped or cached)


def save_network(model: torch.nn.Module, record: dict, path: Path) -> str:
    """Write the weights and the record (as safetensors metadata) to path; returns the file's SHA-256."""
    from safetensors.torch import save_file

    path.parent.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    tmp = path.with_name(path.name + ".tmp")
    save_file(tensors, str(tmp), metadata={"udl": json.dumps(record, sort_keys=True, default=str)})
    tmp.replace(path)
    return sha256_of(path)


def load_network(
    path: Path, device: str = "auto", expected_sha256: str | None = None, shipped: bool = False
) -> FeatureNet:
    """A feature network from its .safetensors file (no pickle: only tensors and a JSON header are read)."""
    from safetensors import safe_open
    from safetensors.torch import load_file

    from udlcli.models.lenet import LeNet

    digest = sha256_of(path)
    if expected_sha256 is not None and digest != expected_sha256:
        raise CheckpointError(
            f"{path}: SHA-256 {digest[:12]}… is not the {expected_sha256[:12]}… it was shipped with; reinstall udl"
        )
    try:
        with safe_open(str(path), framework="pt") as f:
            record = json.loads((f.metadata() or {})["udl"])
        state = load_file(str(path))
        m, d = record["model"], record["data"]
        model = LeNet(
            m["channels"],
            m["features"],
            m["classes"],
            m["dropout"],
            d["mean"],
            d["std"],
            m.get("reject", False),
            m.get("negatives", 0.0),
            tuple(d.get("shape") or LEGACY_SHAPE),
        )
        model.load_state_dict(state)
    except (OSError, ValueError, KeyError, RuntimeError) as e:
        raise CheckpointError(
            f"{path} is not a readable udl feature network ({e.__class__.__name__}); delete it to retrain, or reinstall udl"
        ) from None
    dev = resolve_device(device)
    return FeatureNet(model.to(dev).eval(), path, record, dev, digest, shipped)


def manifest() -> dict:
    """The shipped networks: {name: {"file", "sha256", "test_accuracy", "datasets": [dataset names it serves]}}."""
    try:
        return json.loads(MANIFEST.read_text())
    except (OSError, ValueError):
        return {}


def shipped_entry(dataset: str) -> dict | None:
    return next((e for e in manifest().values() if dataset in e.get("datasets", [])), None)


# ---------------------------------------------------------------- the user cache (datasets without a shipped network)


def dataset_key(name: str, limit: int | None = None, shape=LEGACY_SHAPE) -> str:
    """The cache folder name of a dataset: its name (a hash for folder:PATH), its shape unless 1x28x28, a limited train split."""
    key = name
    if name.startswith("folder:"):
        path = str(Path(name[len("folder:") :]).expanduser().resolve())
        key = "folder-" + hashlib.sha1(path.encode()).hexdigest()[:10]
    if tuple(shape) != LEGACY_SHAPE:
        key += "-" + "x".join(map(str, shape))
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


def cache_root() -> Path:
    """Where trained networks are cached: the user cache only (a data folder is never written)."""
    return default_cache_dir() / CACHE_DIR


def find_cached(key: str) -> Path | None:
    """The run folder of a finished feature network for this dataset key and recipe, or None."""
    for run_dir in sorted((cache_root() / "lenet").glob(f"{key}*"), key=runs.natural_key):
        try:
            rec = json.loads((run_dir / RECORD).read_text())
        except (OSError, ValueError):
            continue  # no record: an interrupted training, or another dataset's folder
        if (
            rec.get("key") == key
            and rec.get("recipe") == RECIPE
            and (run_dir / WEIGHTS_FILE).is_file()
        ):
            return run_dir
    return None
