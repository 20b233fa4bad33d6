"""Class balance of a VAE's prior samples without udl evaluate's LeNet: PCA-50 + 5-NN on raw pixels labels them.

A cross-check of the VAE quality bar (every class 4-16% of 10,000 prior samples), usable before
the evaluator's feature network is cached. Prints the proxy's own test accuracy first.

    python benchmarks/vae_class_balance.py runs/vae/vae [more VAE runs] [--n 10000] [--data-dir DIR]
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import numpy as np
from sklearn.decomposition import PCA
from sklearn.neighbors import KNeighborsClassifier

from udlcli.core.generate import generate_run as generate_vae
from udlcli.data import load_dataset


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", nargs="+")
    ap.add_argument("--n", type=int, default=10_000)
    ap.add_argument("--data-dir", default=None)
    args = ap.parse_args()
    print(
        f"machine: {platform.platform()}, {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs"
    )
    t0 = time.perf_counter()
    d = load_dataset("mnist", args.data_dir)
    flat = lambda split: (
        split.x.reshape(len(split), -1).numpy().astype(np.float32) / 255
    )  # (N, 784) in [0, 1]
    pca = PCA(50, random_state=0).fit(flat(d.train)[:20_000])
    knn = KNeighborsClassifier(5).fit(pca.transform(flat(d.train)), d.train.y.numpy())
    acc = float((knn.predict(pca.transform(flat(d.test))) == d.test.y.numpy()).mean())
    print(
        f"proxy classifier: PCA-50 + 5-NN, test accuracy {acc:.4f} ({time.perf_counter() - t0:.0f} s)"
    )
    for run in args.runs:
        x = generate_vae(run, args.n, seed=0).reshape(args.n, -1).numpy()
        share = np.bincount(knn.predict(pca.transform(x)), minlength=10) / args.n
        ok = "inside" if share.min() >= 0.04 and share.max() <= 0.16 else "OUTSIDE"
        print(
            f"{run}: class shares {np.round(share, 3).tolist()}, min {share.min():.3f}, max {share.max():.3f} ({ok} the 4-16% band)"
        )


if __name__ == "__main__":
    main()
