"""Data-parallel training on the CPU: 2 gloo ranks x 1 thread against 1 process x 2 threads, the AE's images/s.

Both run the same `udl train ae` (the report's AE, global batch 64 or --batch-size, --limit MNIST images) in one
invocation of this script, alternating, --repeats times each; the training epochs' images/s come
from each run's summary.json (process start, data loading and the final figures are left out, and
printed apart as the wall time). The baseline named in issue #19 is the one process with 2 threads.

Usage:  python benchmarks/distributed_cpu.py [--limit 12000] [--epochs 2] [--repeats 2]
"""

from __future__ import annotations

import argparse
import json
import os
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
    r = subprocess.run(
        [sys.executable, "-m", "udlcli", *args, "--out", str(out), "--name", name, "--quiet"],
        capture_output=True,
        text=True,
    )
    wall = time.perf_counter() - t0
    if r.returncode != 0:
        sys.exit(f"{' '.join(args)} failed: {r.stderr.strip()}")
    s = json.loads((out / "ae" / name / "summary.json").read_text())
    return s["images_per_s"], wall


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument(
        "--limit", type=int, default=12000, help="training images (before the 80/20 split)"
    )
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--batch-size", type=int, default=64, help="the global batch (64: the report's)")
    a = p.parse_args()
    base = ["train", "ae", "--device", "cpu", "--epochs", str(a.epochs), "--limit", str(a.limit)]
    base += ["--batch-size", str(a.batch_size)]
    print(f"machine: {machine()}; threads: {os.cpu_count()} in one process, 1 per rank")
    print(f"AE, global batch {a.batch_size}, {a.limit} images (80% trained on), {a.epochs} epochs,")
    print(f"{a.repeats} runs each\n")
    one, two = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(a.repeats):
            one.append(run(base, Path(tmp), f"one{i}"))
            two.append(run([*base, "--devices", "2"], Path(tmp), f"two{i}"))
    for label, rs in (("1 process x 2 threads", one), ("2 gloo ranks x 1 thread", two)):
        ips = statistics.median(r[0] for r in rs)
        wall = statistics.median(r[1] for r in rs)
        print(
            f"{label:<26} {ips:8,.0f} images/s   wall {wall:5.1f} s (process start and figures included)"
        )
    ratio = statistics.median(r[0] for r in two) / statistics.median(r[0] for r in one)
    print(f"\n2 ranks / 1 process: {ratio:.2f}x images/s")


if __name__ == "__main__":
    main()
