"""CPU time of the report's MLP GAN: seconds per iteration and per full-MNIST epoch, extrapolated to the default run.

Usage:  python benchmarks/gan_epoch_time.py [--iters N] [--threads 1,2] [--batch-size 128]
Times N real training iterations (D step + G step, udl's GAN.train_step on full-MNIST batches)
for each torch thread count, after 3 warm-up iterations, and prints the epoch time (469 iterations
at batch 128) and the time of the default run (GanTrainConfig().epochs epochs). The baseline is the
1-thread row measured in the same run: the ratio column says how much the extra threads give.
The machine's load (os.getloadavg) is printed too: on a shared machine it dominates the wall times; the CPU seconds
per iteration (process time) of the 1-thread row is what one idle core would take.
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import torch

from udlcli.core.spec import resolve_spec
from udlcli.core.trainer import Trainer
from udlcli.data import load_dataset
from udlcli.models import get
from udlcli.models.gan import GanTrainConfig


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--iters", type=int, default=20)
    p.add_argument("--threads", default="1,2")
    p.add_argument("--batch-size", type=int, default=GanTrainConfig().batch_size)
    a = p.parse_args()
    print(
        f"machine: {platform.machine()} {platform.processor() or ''}, {os.cpu_count()} cores, torch {torch.__version__}, "
        f"load average {os.getloadavg()[0]:.1f}"
    )
    data = load_dataset("mnist")
    spec = resolve_spec("gan", None, {"train.device": "cpu", "train.batch_size": a.batch_size})
    n_batches = data.train.n_batches(a.batch_size)
    epochs = spec.train.epochs
    base = None
    print(
        f"{'threads':>7} {'s/iter':>8} {'CPU s/iter':>12} {'s/epoch':>9} {f'{epochs} epochs':>12} {'vs 1 thread':>12}"
    )
    for t in (int(x) for x in a.threads.split(",")):
        torch.set_num_threads(t)
        torch.manual_seed(spec.train.seed)
        model = get("gan").build(spec.model, spec.data)
        trainer = Trainer(model, spec.train, data.train, None, torch.device("cpu"))
        batches = trainer.train_data.batches(a.batch_size, trainer.shuffle_gen)
        for _ in range(3):
            trainer.model.train_step(*next(batches), trainer.optimizers)
        t0, c0 = time.perf_counter(), time.process_time()
        for _ in range(a.iters):
            trainer.model.train_step(*next(batches), trainer.optimizers)
        per, cpu = (time.perf_counter() - t0) / a.iters, (time.process_time() - c0) / a.iters
        base = base or per
        print(
            f"{t:>7} {per:>8.3f} {cpu:>12.3f} {per * n_batches:>9.0f} {per * n_batches * epochs / 60:>10.0f} min {base / per:>11.2f}x"
        )
    print(
        f"({n_batches} iterations per epoch at batch {a.batch_size}; load average now {os.getloadavg()[0]:.1f})"
    )


if __name__ == "__main__":
    main()
