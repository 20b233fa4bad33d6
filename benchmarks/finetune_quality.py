"""`udl finetune`'s accuracy bars on full MNIST: the defaults, frozen on each kind of features and --unfreeze, beside the baselines.

    python benchmarks/finetune_quality.py runs/ae/ae [--features latent hidden conv] [--no-unfreeze] [--ceiling] [--out /tmp/ftq]

Runs, one after the other, the exact commands a user would type, with every default:

    udl finetune AE_RUN --features F --name frozen_F      for each F (latent is the report's head on the code)
    udl finetune AE_RUN --unfreeze --name unfrozen --no-baselines

and prints each run's test accuracy against its bar (frozen on the code: the report's 96.3%; conv
features: 98.5%; --unfreeze: 99.2%), the linear-probe and 5-NN accuracies on the same features, the
epochs and the wall time. The AE run should be `udl train ae` on full MNIST.

--ceiling also fits an RBF support-vector machine (scikit-learn's SVC, C=10, on standardised features)
to the frozen encoder's features of the same 80% train split (at most --svm-limit of them, stratified):
the strongest classifier we know for such data, so its test accuracy estimates what any head on those
features can reach.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

BARS = {"frozen_latent": 0.963, "frozen_hidden": None, "frozen_conv": 0.985, "unfrozen": 0.992}
"""The report's 96.3% for the frozen code; issue 16's 98.5% for conv features and 99.2% for --unfreeze."""


def run(cmd: list[str]) -> float:
    print("$", " ".join(cmd), flush=True)
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True)
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("ae_run")
    ap.add_argument("--out", default="/tmp/finetune_quality")
    ap.add_argument(
        "--features",
        nargs="+",
        default=["latent", "hidden", "conv"],
        choices=["latent", "hidden", "conv"],
    )
    ap.add_argument("--no-unfreeze", action="store_true", help="skip the --unfreeze run")
    ap.add_argument(
        "--ceiling",
        action="store_true",
        help="also fit an RBF SVM to each frozen run's features (what any head could reach)",
    )
    ap.add_argument(
        "--svm-limit",
        type=int,
        default=48_000,
        help="train the SVM on at most this many features (stratified)",
    )
    a = ap.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "2")
    print(
        f"machine: {platform.platform()}, {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs; "
        f"python {platform.python_version()}; OMP_NUM_THREADS={os.environ['OMP_NUM_THREADS']}"
    )
    udl = [sys.executable, "-m", "udlcli", "finetune", a.ae_run, "--out", a.out, "-q"]
    walls = {
        f"frozen_{f}": run([*udl, "--features", f, "--name", f"frozen_{f}"]) for f in a.features
    }
    if not a.no_unfreeze:
        walls["unfrozen"] = run([*udl, "--unfreeze", "--name", "unfrozen", "--no-baselines"])
    print(
        f"\n{'run':<14} {'test acc':>9} {'bar':>8} {'linear probe':>13} {'5-NN':>7} {'RBF SVM':>8} {'epochs (best)':>14} {'wall s':>8}"
    )
    for name, wall in walls.items():
        s = json.loads((Path(a.out) / "finetune" / name / "summary.json").read_text())
        acc, base, bar = s["test_accuracy"], s.get("baselines") or {}, BARS[name]
        mark = "" if bar is None else f"{bar:.1%}{'+' if acc >= bar else '-'}"
        svm = ""
        if a.ceiling and name.startswith("frozen"):
            svm_acc, secs = svm_ceiling(Path(a.out) / "finetune" / name, a.svm_limit)
            svm = f"{svm_acc:.2%}"
        probe = f"{base['linear_probe']:.2%}" if "linear_probe" in base else ""
        knn = f"{base['knn5']:.2%}" if "knn5" in base else ""
        print(
            f"{name:<14} {acc:>9.2%} {mark:>8} {probe:>13} {knn:>7} {svm:>8} {s['epochs']:>8} ({s['best_epoch']}) {wall:>8.0f}",
            flush=True,
        )
    print(
        "(bar: '+' met, '-' missed; probe and 5-NN are fitted on the same frozen features as the head)"
    )


def svm_ceiling(run_dir: Path, limit: int) -> tuple[float, float]:
    """Test accuracy of an RBF SVM on a frozen classifier run's features of its train split (the same split and seed)."""
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import SVC

    from udlcli.core.loading import load_run
    from udlcli.data import load_dataset, stratified_indices
    from udlcli.tasks.finetune.scores import features_of

    t0 = time.perf_counter()
    clf = load_run(run_dir, family="classifier")
    d = clf.spec.data
    data = load_dataset(d.dataset, d.data_dir, d.limit)
    train, _ = data.split(d.val_fraction, clf.spec.train.seed)
    train = train.subset(stratified_indices(train.y, min(limit, len(train)), seed=0))
    ftr = features_of(clf.model, train).double().numpy()
    fte = features_of(clf.model, data.test).double().numpy()
    svm = make_pipeline(StandardScaler(), SVC(C=10.0, gamma="scale")).fit(ftr, train.y.numpy())
    acc = float((svm.predict(fte) == data.test.y.numpy()).mean())
    return acc, time.perf_counter() - t0


if __name__ == "__main__":
    main()
