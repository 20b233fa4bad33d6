"""udl evaluate's feature network: first-use training time and accuracy, and the cost of a later (cached) call.

The issue asks for >= 99.0% MNIST test accuracy, about a minute of CPU training with a progress
bar, and reuse afterwards. This trains the network exactly as `udl evaluate` does on first use
(udlcli.tasks.evaluate.training.featurenet_for) into a throwaway cache, then calls it again, and prints
the machine, the accuracy, the training wall time against the issue's 60 s, and the ratio of the
first call to the cached one.

Usage:  python benchmarks/featurenet.py [--data-dir DIR] [--dataset mnist] [--threads N]
(On a machine shared with other jobs, --threads 1 avoids intra-op threads waiting on each other.)
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from train_throughput import machine  # noqa: E402  (the benchmarks' one machine line)

TARGET_S = 60.0  # the issue: "about a minute on CPU"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-dir", default=os.environ.get("UDL_DATA_DIR"))
    ap.add_argument("--dataset", default="mnist")
    ap.add_argument("--threads", type=int, default=None)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["XDG_CACHE_HOME"] = tmp  # a fresh user cache: the data dir may be read-only
        from udlcli.data import load_dataset
        from udlcli.tasks.evaluate.training import featurenet_for

        data = load_dataset(args.dataset, args.data_dir)
        t0 = time.perf_counter()
        net = featurenet_for(data, args.data_dir, device="cpu")
        first = time.perf_counter() - t0
        t0 = time.perf_counter()
        again = featurenet_for(data, args.data_dir, device="cpu")
        cached = time.perf_counter() - t0
        assert again.run_dir == net.run_dir
        r = net.record
        print(f"machine: {machine()}")
        print(f"dataset: {data.name} ({len(data.train):,} train / {len(data.test):,} test)")
        print(
            f"feature network: {r['model']['features']} features, {r['train']['epochs']} epochs, test accuracy {r['test_accuracy']:.4f} (bar 0.99)"
        )
        print(
            f"training: {r['train_time_s']:.1f} s in epochs, {first:.1f} s first call in all = {first / TARGET_S:.2f}x the issue's ~{TARGET_S:.0f} s"
        )
        print(
            f"cached call: {cached:.2f} s = {first / max(cached, 1e-9):.0f}x faster than the first"
        )


if __name__ == "__main__":
    main()
