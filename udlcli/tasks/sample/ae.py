"""`udl sample ae`: decode codes drawn from a Gaussian (or mixture) fitted to the training-set codes, or walk between two test images.

Every sampler that `udl sample KIND` dispatches to takes the keyword arguments
run, root, seed, data_dir, device and command, plus its own options (for the AE: n, gmm,
interpolate, interpolate_index), and returns a SampleResult.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from udlcli import plots
from udlcli.core import runs
from udlcli.core.device import resolve_device
from udlcli.core.latent import decode, encode, run_dataset
from udlcli.core.loading import LoadedRun, load_run
from udlcli.core.progress import status
from udlcli.errors import SpecError
from udlcli.tasks.sample.common import MAX_SAMPLES, SampleResult, interpolate_strip, parse_pair

AE_HINT = "udl sample ae needs an autoencoder run (udl train ae); for a VAE use udl sample vae"


class LatentDensity:
    """A full-covariance Gaussian mixture fitted to codes (K=1: the single Gaussian of the report's Fig. 12)."""

    def __init__(self, codes: np.ndarray, k: int = 1, seed: int = 0):
        from sklearn.mixture import GaussianMixture

        # float64 so the covariance of 60,000 codes is well conditioned; sklearn adds 1e-6 to its diagonal.
        self.k, self.seed = k, seed
        self.gm = GaussianMixture(n_components=k, covariance_type="full", random_state=seed).fit(
            codes.astype(np.float64)
        )

    def draw(self, n: int) -> np.ndarray:
        """n codes (n, d), seeded. sklearn returns them grouped by component, so they are shuffled for the grid."""
        z, _ = self.gm.sample(n)
        return z[np.random.default_rng(self.seed).permutation(n)].astype(np.float32)

    def loglik(self, codes: np.ndarray) -> float:
        """Mean log-likelihood per code: on held-out test codes, higher means the density fits the latent space better."""
        return float(self.gm.score(codes.astype(np.float64)))


def _load_ae(run, root, data_dir, device):
    loaded = load_run(run, root, kinds=("ae",), hint=AE_HINT)
    dev = resolve_device(device or "auto")
    data = run_dataset(loaded, data_dir)
    loaded.model.to(dev)
    return loaded, dev, data


def _fit(loaded: LoadedRun, data, dev, k: int, seed: int) -> tuple[LatentDensity, np.ndarray]:
    if k > len(data.train):
        raise SpecError(
            f"--gmm {k}: more components than the {len(data.train):,} training images; use fewer"
        )
    with status(
        f"encoding {len(data.train):,} training images and fitting {'a Gaussian' if k == 1 else f'a {k}-component mixture'}"
    ):
        codes = encode(loaded.model, data.train, dev)  # (N_train, d)
        return LatentDensity(codes, k, seed), codes


def generate_ae(
    run: Path, n: int, seed: int = 0, device: str = "cpu", data_dir: str | Path | None = None
) -> torch.Tensor:
    """n images (n, C, H, W) float32 in [0, 1] on the CPU, drawn exactly as `udl sample ae --n n --seed seed` draws them."""
    loaded, dev, data = _load_ae(run, "runs", data_dir, device)
    density, _ = _fit(loaded, data, dev, 1, seed)
    return decode(loaded.model, density.draw(n), dev)


def sample_ae(
    run: str | Path | None = None,
    root: str | Path = "runs",
    n: int = 64,
    seed: int = 0,
    gmm: int | None = None,
    interpolate: str | None = None,
    interpolate_index: str | None = None,
    data_dir: str | Path | None = None,
    device: str | None = None,
    command: str = "",
) -> SampleResult:
    """Write RUN/samples/ae_samples.png (or ae_samples_gmmK.png), or an interpolation strip with --interpolate."""
    # Check the options before loading anything.
    if interpolate and interpolate_index:
        raise SpecError(
            "give --interpolate A,B (two classes) or --interpolate-index i,j (two test images), not both"
        )
    walk = interpolate or interpolate_index
    if walk and gmm is not None:
        raise SpecError("--gmm applies to random samples, not to --interpolate; drop one of them")
    if not walk and not 1 <= n <= MAX_SAMPLES:
        raise SpecError(f"--n {n}: draw between 1 and {MAX_SAMPLES} samples")
    if gmm is not None and gmm < 1:
        raise SpecError(f"--gmm {gmm}: the number of mixture components must be at least 1")
    pair = (
        parse_pair("--interpolate" if interpolate else "--interpolate-index", walk)
        if walk
        else None
    )

    loaded, dev, data = _load_ae(run, root, data_dir, device)
    meta = {
        "command": command,
        "checkpoint": str(loaded.checkpoint),
        "seed": seed,
        "dataset": data.name,
    }
    if pair is not None:
        return interpolate_strip(
            loaded, data, dev, pair, by_class=bool(interpolate), seed=seed, meta=meta
        )

    k = gmm or 1
    density, _ = _fit(loaded, data, dev, k, seed)
    images = decode(loaded.model, density.draw(n), dev)  # (n, C, H, W)
    test_ll = density.loglik(encode(loaded.model, data.test, dev))
    label = (
        "Gaussian (full covariance)"
        if gmm is None
        else f"{k}-component Gaussian mixture (full covariance)"
    )
    stem = "ae_samples" if gmm is None else f"ae_samples_gmm{k}"
    out = loaded.run_dir / "samples"
    png = plots.image_grid(
        images,
        out / f"{stem}.png",
        title=f"{n} samples decoded from a {label} fitted to the training codes",
    )
    info = {
        **meta,
        "n": n,
        "density": label,
        "components": k,
        "train_codes": len(data.train),
        "test_code_loglik": round(test_ll, 4),
    }
    js = runs.write_json(out / f"{stem}.json", info)
    rows = {
        "density": f"{label}, fitted to {len(data.train):,} training codes",
        "samples": str(n),
        "test-code log-likelihood": f"{test_ll:.3f} per code (higher: the density fits the latent space better)",
    }
    return SampleResult(loaded.run_dir, [png, js], rows)
