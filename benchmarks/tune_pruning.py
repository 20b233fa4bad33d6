"""Pruning benefit of `udl tune`: the same seeded TPE study with --pruner median and with none; epochs trained and best loss.

The issue's target: median pruning trains at most half the epochs, with a best validation loss within 5%.
Usage (the budgets measured in docs/tuning.md; run it with nice on a shared machine):

    python benchmarks/tune_pruning.py --trials 20 --max-epochs 5 --limit 1000 --batch-size 64 --channels 4 12
    python benchmarks/tune_pruning.py --trials 40 --max-epochs 10 --limit 2000 --batch-size 64 --channels 4 12
    python benchmarks/tune_pruning.py --trials 100 --max-epochs 10 --limit 2000 --batch-size 64 --channels 4 12 --pruners median hyperband
    python benchmarks/tune_pruning.py --trials 100 --max-epochs 40 --limit 2000 --batch-size 64 --channels 4 12 --pruners median hyperband --seed 0 1 2   (the report's budget)

A study that already has --trials finished trials in --out is reused as it is (0 s of wall):
its epochs and best loss are the same, as the seeded TPE on the CPU is reproducible. `--seed 0 1 2`
runs the comparison once per seed and prints the mean ratios too: how much median pruning saves
depends on the path TPE takes, which one seed does not show.
"""

from __future__ import annotations

import argparse
import os
import platform
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=16)
    ap.add_argument("--max-epochs", type=int, default=6)
    ap.add_argument("--dataset", default="mnist-sample")
    ap.add_argument("--limit", type=int, default=1000)
    ap.add_argument(
        "--batch-size",
        type=int,
        default=64,
        help="small batches give a trial enough steps on a small split",
    )
    ap.add_argument(
        "--seed",
        type=int,
        nargs="+",
        default=[0],
        help="one study per pruner and seed; with several seeds the ratios are also averaged (one seed's TPE path varies a lot)",
    )
    ap.add_argument(
        "--channels",
        type=int,
        nargs=2,
        default=None,
        metavar=("LOW", "HIGH"),
        help="narrow the channels range (the report's is 4 32) to fit a small CPU budget",
    )
    ap.add_argument(
        "--pruners",
        nargs="+",
        default=["median"],
        choices=["median", "hyperband"],
        help="pruners measured against none (hyperband is not the issue's target, but shows what a harder pruner saves)",
    )
    ap.add_argument("--out", type=Path, default=Path("/tmp/udl-bench-prune"))
    args = ap.parse_args()

    import optuna
    import torch

    from udlcli import ui
    from udlcli.tasks.tune.run import TuneOptions, tune

    ui.set_quiet(True)
    ui.console.quiet = True  # per-epoch lines of 100 trials would drown the result
    print(
        f"machine: {platform.machine()} {platform.processor() or ''} {os.cpu_count()} CPUs, {platform.platform()}; torch CPU, {torch.get_num_threads()} thread(s) a process"
    )
    config = None
    if args.channels:
        config = args.out / "search.yaml"
        args.out.mkdir(parents=True, exist_ok=True)
        config.write_text(f"search:\n  channels: [{args.channels[0]}, {args.channels[1]}]\n")
    print(
        f"budget: {args.trials} trials x max {args.max_epochs} epochs, {args.dataset} limit {args.limit} (80/20 split), batch {args.batch_size}, "
        f"seed(s) {' '.join(map(str, args.seed))}, channels {args.channels or 'the report range 4-32'}; other ranges as the report's"
    )
    ratios: dict[str, list[tuple[float, float, float]]] = {p: [] for p in args.pruners}
    for seed in args.seed:
        res = {}
        for pruner in ("none", *args.pruners):
            # Seed 0 keeps the study names of earlier invocations, so their studies are reused.
            name = f"prune-{pruner}" if seed == 0 else f"prune-{pruner}-seed{seed}"
            opts = TuneOptions(
                objective="ae",
                study_name=name,
                trials=args.trials,
                max_epochs=args.max_epochs,
                pruner=pruner,
                seed=seed,
                out=args.out,
            )
            r = tune(
                opts,
                str(config) if config else None,
                {
                    "data.dataset": args.dataset,
                    "data.limit": args.limit,
                    "train.batch_size": args.batch_size,
                    "train.device": "cpu",
                },
            )
            s = r.summary
            # Time inside the trials, from the storage: the same whether the study ran now or is reused.
            trials = optuna.load_study(study_name=s["study"], storage=s["storage"]).trials
            busy = sum(t.duration.total_seconds() for t in trials if t.duration is not None)
            res[pruner] = (s["epochs_trained"], s["best"]["value"], busy)
            print(
                f"seed {seed} pruner {pruner:9s}: {s['epochs_trained']:4d} epochs trained, {s['pruned']:2d} pruned, best val MSE {s['best']['value']:.5f}, "
                f"time in trials {busy:.0f} s (study {r.study_dir})",
                flush=True,
            )
        e0, b0, w0 = res["none"]
        for pruner in args.pruners:
            e1, b1, w1 = res[pruner]
            ratios[pruner].append((e1 / e0, b1 / b0, w1 / w0))
            print(
                f"seed {seed} {pruner} / none: epochs {e1 / e0:.2f} (target <= 0.50), best loss {b1 / b0:.3f} (target <= 1.05), time in trials {w1 / w0:.2f}"
            )
    if len(args.seed) > 1:
        for pruner, rows in ratios.items():
            e, b, w = (sum(col) / len(rows) for col in zip(*rows))
            print(
                f"mean of {len(rows)} seeds, {pruner} / none: epochs {e:.2f} (range {min(r[0] for r in rows):.2f}-{max(r[0] for r in rows):.2f}; target <= 0.50), "
                f"best loss {b:.3f} (range {min(r[1] for r in rows):.3f}-{max(r[1] for r in rows):.3f}; target <= 1.05), time in trials {w:.2f}"
            )


if __name__ == "__main__":
    main()
