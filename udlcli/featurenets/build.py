"""Train the shipped feature networks once: `python -m udlcli.featurenets.build --data-dir DIR [--datasets mnist fashion-mnist]`.

Each network is trained exactly as `udl evaluate` trains one on first use for a dataset without
a shipped network (udlcli.tasks.evaluate.training.train_network: the LeNet recipe, seed 0, the shared
trainer), on the CPU, in a throwaway folder. Its best epoch's weights and its record are written to
udlcli/featurenets/<name>.safetensors, and manifest.json gets the file's SHA-256, its test accuracy
and the datasets it serves. Rebuilding changes the yardstick: every FID in the docs must then be
measured again, so only do it when the recipe changes (bump featurenet.RECIPE).
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import torch

from udlcli.data import load_dataset
from udlcli.tasks.evaluate import featurenet, training

SERVES = {"mnist": ["mnist", "mnist-sample"], "fashion-mnist": ["fashion-mnist"]}
"""Shipped network -> the datasets it scores (mnist-sample is 5,000 of MNIST's own digits)."""


def build(name: str, data_dir: str | None, out: Path) -> dict:
    data = load_dataset(name, data_dir, download=False)
    if data.name != name:
        raise SystemExit(
            f"{name} was not found in {data_dir}; the shipped networks are trained on the full dataset"
        )
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as tmp:
        run_dir = training.train_network(data, name, data_dir, "cpu", None, None, Path(tmp))
        record = json.loads((run_dir / featurenet.RECORD).read_text())
        net = featurenet.load_network(run_dir / featurenet.WEIGHTS_FILE, "cpu")
        record.pop("sha256", None)
        target = out / f"{name}.safetensors"
        digest = featurenet.save_network(net.model, record, target)
    return {
        "file": target.name,
        "sha256": digest,
        "test_accuracy": record["test_accuracy"],
        "recipe": record["recipe"],
        "datasets": SERVES[name],
        "train_size": record["dataset"]["train_size"],
        "versions": record["versions"],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--data-dir",
        required=True,
        help="folder with MNIST/raw and FashionMNIST/raw (torchvision layout)",
    )
    ap.add_argument("--datasets", nargs="+", default=list(SERVES), choices=list(SERVES))
    ap.add_argument("--threads", type=int, default=None)
    a = ap.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    out = featurenet.SHIPPED_DIR
    entries = featurenet.manifest()
    for name in a.datasets:
        entries[name] = build(name, a.data_dir, out)
        print(
            f"{name}: test accuracy {entries[name]['test_accuracy']:.4%}, sha256 {entries[name]['sha256']}"
        )
        featurenet.MANIFEST.write_text(json.dumps(entries, indent=2, sort_keys=True) + "\n")


if __name__ == "__main__":
    main()
