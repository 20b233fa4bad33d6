"""The cost of --track: the report's AE for 5 epochs with no tracker, TensorBoard and MLflow, images/s in one run.

Each configuration runs `udl train ae --epochs 5` on --limit MNIST images, alternating, --repeats
times; images/s is the training epochs' mean from summary.json (start-up, the final figures and the
tracker's upload of them are left out, and shown apart as the wall time). MLflow writes to a SQLite
file in a temporary folder. The baseline named in issue #20 is the run without a tracker; the
target is at most 2% slower.

Usage:  python benchmarks/tracking_overhead.py [--limit 12000] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from train_throughput import machine  # noqa: E402


def run(args: list[str], out: Path, name: str) -> tuple[float, float]:
    t0 = time.perf_counter()
    cmd = [sys.executable, "-m", "udlcli", *args, "--out", str(out), "--name", name, "--quiet"]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"{' '.join(args)} failed: {r.stderr.strip()}")
    s = json.loads((out / "ae" / name / "summary.json").read_text())
    return s["images_per_s"], time.perf_counter() - t0


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--limit", type=int, default=12000)
    p.add_argument("--repeats", type=int, default=3)
    a = p.parse_args()
    base = ["train", "ae", "--device", "cpu", "--epochs", "5", "--limit", str(a.limit)]
    print(f"machine: {machine()}")
    print(
        f"the report's AE, 5 epochs on {a.limit} MNIST images, {a.repeats} runs each, alternating\n"
    )
    with tempfile.TemporaryDirectory() as tmp:
        uri = f"sqlite:///{Path(tmp) / 'mlruns.db'}"
        configs = {
            "none": [],
            "tensorboard": ["--track", "tensorboard"],
            "mlflow": ["--track", "mlflow", "--mlflow-uri", uri],
        }
        results: dict[str, list[tuple[float, float]]] = {k: [] for k in configs}
        names = list(configs)
        for i in range(a.repeats):
            # The order rotates each round, so no configuration always runs first (this 2-core VM's
            # speed drifts by 10-20% from run to run; see docs/tracking.md).
            for k in names[i % len(names) :] + names[: i % len(names)]:
                results[k].append(run([*base, *configs[k]], Path(tmp), f"{k}{i}"))
    ref = statistics.median(r[0] for r in results["none"])
    for k, rs in results.items():
        ips = statistics.median(r[0] for r in rs)
        wall = statistics.median(r[1] for r in rs)
        each = ", ".join(f"{r[0]:,.0f}" for r in rs)
        print(
            f"{k:<12} {ips:8,.0f} images/s  {ips / ref:5.3f}x of none   wall {wall:5.1f} s   (runs: {each})"
        )


if __name__ == "__main__":
    main()
