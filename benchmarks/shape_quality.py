"""Images of another shape, measured: the AE against PCA, and the VAE and both GANs under `udl evaluate`, on 32x32 colour patches.

    python benchmarks/shape_quality.py [--per-class 600] [--size 32] [--latent 7 32] [--epochs 40] [--gan-epochs 30] [--out /tmp/shapeq]

There is no CIFAR-10 offline, so the data are real colour photographs: seeded size x size patches of
scikit-image's nine bundled photographs (tests/photos.py), the class of a patch being its photograph,
written as a folder: dataset (1/7 held out as the test split). Runs the commands a user would type:

    udl train ae --dataset folder:P --latent-dim D        for each D, every other option the default
    udl train vae --dataset folder:P --latent-dim D0      D0: the first --latent value
    udl gan --dataset folder:P --arch mlp|dcgan --epochs G
    udl evaluate VAE AE_D0 GAN_MLP GAN_DCGAN

and prints each AE's test MSE beside PCA's with as many components (fitted on the same training
images, scikit-learn), the ratio AE / PCA, and the evaluate table (FID on the feature network
`udl evaluate` trains for this data, precision, recall).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(
    0, str(Path(__file__).resolve().parents[1] / "tests")
)  # the photo patches of the test suite
from photos import patches, write_folder  # noqa: E402
from train_throughput import machine  # noqa: E402  (this folder is on sys.path when run as a script)


def udl(*args: str) -> float:
    cmd = [sys.executable, "-m", "udlcli", *args]
    print("$ udl", " ".join(args), flush=True)
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True)
    return time.perf_counter() - t0


def pca_mse(folder: Path, components: int) -> float:
    """Test MSE (pixels in [0, 1]) of PCA with this many components, fitted on the training split udl uses."""
    from sklearn.decomposition import PCA

    from udlcli import ui
    from udlcli.data import load_dataset

    ui.set_quiet(True)
    ds = load_dataset(f"folder:{folder}")
    train, _ = ds.split(0.2, seed=0)  # the AE's own 80% (it validates on the other 20%)
    xtr = train.images().flatten(1).numpy()
    xte = ds.test.images().flatten(1).numpy()
    p = PCA(components, random_state=0).fit(xtr)
    rec = np.clip(p.inverse_transform(p.transform(xte)), 0, 1)
    return float(((rec - xte) ** 2).mean())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--per-class", type=int, default=600, help="patches per photograph (9 photographs)"
    )
    ap.add_argument("--size", type=int, default=32)
    ap.add_argument("--latent", type=int, nargs="+", default=[7, 32])
    ap.add_argument("--epochs", type=int, default=None, help="AE/VAE epochs (default: udl's)")
    ap.add_argument("--gan-epochs", type=int, default=30)
    ap.add_argument("--n", type=int, default=2000, help="samples per run for udl evaluate")
    ap.add_argument("--out", type=Path, default=Path("/tmp/shapeq"))
    a = ap.parse_args()
    print(f"machine: {machine()}")
    x, y, classes = patches(a.size, a.per_class, seed=0)
    folder = write_folder(a.out / "patches", x, y, classes)
    print(
        f"data: {len(x):,} real {a.size}x{a.size} colour patches of {len(classes)} photographs in {folder}"
    )
    runs = a.out / "runs"
    common = ["--dataset", f"folder:{folder}", "--out", str(runs), "-q"]
    ep = ["--epochs", str(a.epochs)] if a.epochs else []
    times, rows = {}, []
    for d in a.latent:
        times[f"ae{d}"] = udl(
            "train", "ae", *common, "--latent-dim", str(d), "--name", f"ae{d}", *ep
        )
        mse = json.loads((runs / "ae" / f"ae{d}" / "summary.json").read_text())["test"]["loss"]
        rows.append((d, float(mse), pca_mse(folder, d)))
    d0 = a.latent[0]
    times["vae"] = udl("train", "vae", *common, "--latent-dim", str(d0), "--name", "vae", *ep)
    for arch in ("mlp", "dcgan"):
        times[arch] = udl(
            "gan", *common, "--arch", arch, "--epochs", str(a.gan_epochs), "--name", arch
        )
    udl(
        "evaluate",
        str(runs / "vae" / "vae"),
        str(runs / "ae" / f"ae{d0}"),
        str(runs / "gan" / "mlp"),
        str(runs / "gan" / "dcgan"),
        "--n",
        str(a.n),
        "-q",
    )
    print("\nAE against PCA with as many components (test MSE, pixels in [0, 1]):")
    print("| latent / components | AE | PCA | AE / PCA |")
    print("| --- | --- | --- | --- |")
    for d, ae, pca in rows:
        print(f"| {d} | {ae:.5f} | {pca:.5f} | {ae / pca:.2f}x |")
    print("\nudl evaluate:")
    print("| run | FID | precision | recall | train time |")
    print("| --- | --- | --- | --- | --- |")
    for name, path in (
        ("vae", runs / "vae" / "vae"),
        (f"ae{d0}", runs / "ae" / f"ae{d0}"),
        ("mlp", runs / "gan" / "mlp"),
        ("dcgan", runs / "gan" / "dcgan"),
    ):
        m = json.loads((path / "evaluation.json").read_text())
        print(
            f"| {name} | {m['fid']:.1f} | {m['precision']:.3f} | {m['recall']:.3f} | {times[name]:.0f} s |"
        )


if __name__ == "__main__":
    main()
