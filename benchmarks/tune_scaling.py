"""Trials per hour of `udl tune` with 1 and 2 worker processes (--n-jobs) on this machine, pruning off so every trial does the same work.

Usage (the budget used for the issue note):

    python benchmarks/tune_scaling.py --trials 12 --max-epochs 3 --dataset mnist --limit 30000   (real-sized trials)
    python benchmarks/tune_scaling.py --trials 6 --max-epochs 2 --limit 1000 --out /tmp/udl-bench-scale
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=6)
    ap.add_argument("--max-epochs", type=int, default=2)
    ap.add_argument("--dataset", default="mnist-sample")
    ap.add_argument("--limit", type=int, default=1000)
    ap.add_argument(
        "--channels",
        type=int,
        default=12,
        help="fixed, so every trial costs the same whichever values TPE draws",
    )
    ap.add_argument("--out", type=Path, default=Path("/tmp/udl-bench-scale"))
    args = ap.parse_args()

    import torch

    from udlcli import ui
    from udlcli.tasks.tune.run import TuneOptions, tune

    ui.set_quiet(True)
    ui.console.quiet = True
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(
        f"machine: {platform.machine()} {os.cpu_count()} CPUs, {platform.platform()}; torch CPU, {torch.get_num_threads()} thread(s) a process; load average at start {load:.1f}"
    )
    config = args.out / "search.yaml"
    args.out.mkdir(parents=True, exist_ok=True)
    config.write_text(f"search:\n  channels: [{args.channels}, {args.channels}]\n")
    print(
        f"budget: {args.trials} trials x {args.max_epochs} epochs (pruner none), {args.dataset} limit {args.limit}, channels fixed at {args.channels}"
    )
    rate = {}
    for jobs in (1, 2):
        t0 = time.perf_counter()
        opts = TuneOptions(
            objective="ae",
            study_name=f"scale-{jobs}",
            trials=args.trials,
            max_epochs=args.max_epochs,
            pruner="none",
            n_jobs=jobs,
            out=args.out,
        )
        r = tune(
            opts,
            str(config),
            {"data.dataset": args.dataset, "data.limit": args.limit, "train.device": "cpu"},
        )
        wall = time.perf_counter() - t0
        rate[jobs] = r.summary["finished"] / wall * 3600
        print(
            f"{jobs} worker(s): {r.summary['finished']} trials in {wall:.0f} s = {rate[jobs]:.0f} trials/hour "
            f"(storage {r.summary['storage']})",
            flush=True,
        )
    print(f"2 workers / 1 worker: {rate[2] / rate[1]:.2f}x trials/hour")


if __name__ == "__main__":
    main()
