"""`udl sample ae`: decode codes drawn from a Gaussian (or mixture) fitted to the training-set codes, or walk between two test images.

Every sampler that `udl sample KIND` dispatches to takes the keyword arguments
run, root, seed, data_dir, device and command, plus its own options (for the AE: n, gmm,
interpolate, interpolate_index), and returns a SampleResult.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from udlcli import plots, ui
from udlcli.core import runs
from udlcli.core.device import resolve_device
from udlcli.core.latent import class_index, decode, encode, run_dataset, status
from udlcli.core.loading import LoadedRun, load_run
from udlcli.errors import SpecError

AE_HINT = "udl sample ae needs an autoencoder run (udl train ae); for a VAE use udl sample vae"
MAX_SAMPLES = 1024  # one picture; more would be unreadable
STEPS = 10  # decoded codes along an interpolation, both ends included


@dataclass
class SampleResult:
    """What a sampler wrote and what the terminal shows (label -> value)."""

    run_dir: Path
    files: list[Path]
    rows: dict[str, str] = field(default_factory=dict)


class LatentDensity:
    """A full-covariance Gaussian mixture fitted to codes (K=1: the single Gaussian of the report's Fig. 12)."""

    def __init__(self, codes: np.ndarray, k: int = 1, seed: int = 0):
        from sklearn.mixture import GaussianMixture

        # float64 so the covariance of 60,000 codes is well conditioned; sklearn adds 1e-6 to its diagonal.
        self.k, self.seed = k, seed
        self.gm = GaussianMixture(n_components=k, covariance_type="full", random_state=seed).fit(codes.astype(np.float64))

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
        raise SpecError(f"--gmm {k}: more components than the {len(data.train):,} training images; use fewer")
    with status(f"encoding {len(data.train):,} training images and fitting {'a Gaussian' if k == 1 else f'a {k}-component mixture'}"):
        codes = encode(loaded.model, data.train, dev)  # (N_train, d)
        return LatentDensity(codes, k, seed), codes


def generate_ae(run: Path, n: int, seed: int = 0, device: str = "cpu", data_dir: str | Path | None = None) -> torch.Tensor:
    """n images (n, 1, 28, 28) float32 in [0, 1] on the CPU, drawn exactly as `udl sample ae --n n --seed seed` draws them."""
    loaded, dev, data = _load_ae(run, "runs", data_dir, device)
    density, _ = _fit(loaded, data, dev, 1, seed)
    return decode(loaded.model, density.draw(n), dev)


def _pair(option: str, value: str) -> tuple[str, str]:
    parts = [p.strip() for p in value.split(",")]
    if len(parts) != 2 or not all(parts):
        raise SpecError(f"{option} {value!r}: expected two values separated by a comma, e.g. {option} 3,8")
    return parts[0], parts[1]


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", text).strip("-") or "x"


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
        raise SpecError("give --interpolate A,B (two classes) or --interpolate-index i,j (two test images), not both")
    walk = interpolate or interpolate_index
    if walk and gmm is not None:
        raise SpecError("--gmm applies to random samples, not to --interpolate; drop one of them")
    if not walk and not 1 <= n <= MAX_SAMPLES:
        raise SpecError(f"--n {n}: draw between 1 and {MAX_SAMPLES} samples")
    if gmm is not None and gmm < 1:
        raise SpecError(f"--gmm {gmm}: the number of mixture components must be at least 1")
    pair = _pair("--interpolate" if interpolate else "--interpolate-index", walk) if walk else None

    loaded, dev, data = _load_ae(run, root, data_dir, device)
    meta = {"command": command, "checkpoint": str(loaded.checkpoint), "seed": seed, "dataset": data.name}
    if pair is not None:
        return _interpolate(loaded, data, dev, pair, by_class=bool(interpolate), seed=seed, meta=meta)

    k = gmm or 1
    density, _ = _fit(loaded, data, dev, k, seed)
    images = decode(loaded.model, density.draw(n), dev)  # (n, 1, 28, 28)
    test_ll = density.loglik(encode(loaded.model, data.test, dev))
    label = "Gaussian (full covariance)" if gmm is None else f"{k}-component Gaussian mixture (full covariance)"
    stem = "ae_samples" if gmm is None else f"ae_samples_gmm{k}"
    out = loaded.run_dir / "samples"
    png = plots.image_grid(images, out / f"{stem}.png", title=f"{n} samples decoded from a {label} fitted to the training codes")
    info = {**meta, "n": n, "density": label, "components": k, "train_codes": len(data.train), "test_code_loglik": round(test_ll, 4)}
    js = runs.write_json(out / f"{stem}.json", info)
    rows = {"density": f"{label}, fitted to {len(data.train):,} training codes", "samples": str(n),
            "test-code log-likelihood": f"{test_ll:.3f} per code (higher: the density fits the latent space better)"}
    return SampleResult(loaded.run_dir, [png, js], rows)


def _interpolate(loaded: LoadedRun, data, dev, pair: tuple[str, str], by_class: bool, seed: int, meta: dict, prefix: str = "ae") -> SampleResult:
    """A strip of decoded codes between two test images; files are named <prefix>_interpolate_* (ae, vae)."""
    y = data.test.y.cpu().numpy()
    if by_class:
        labels = [class_index(t, data.classes) for t in pair]
        for tok, lab in zip(pair, labels):
            if lab < 0 or not (y == lab).any():
                names = ", ".join(data.classes) or "none (unlabeled data)"
                raise SpecError(f"--interpolate: class {tok!r} does not exist in {data.name}; classes are {names}")
        rng = np.random.default_rng(seed)  # a seeded test image of each class
        idx = [int(rng.choice(np.flatnonzero(y == lab))) for lab in labels]
    else:
        try:
            idx = [int(t) for t in pair]
        except ValueError:
            raise SpecError(f"--interpolate-index {','.join(pair)}: expected two test indices, e.g. 0,1") from None
        if any(not 0 <= i < len(y) for i in idx):
            raise SpecError(f"--interpolate-index {','.join(pair)}: indices must be in 0..{len(y) - 1} (the test split)")
    ends = data.test.images(torch.tensor(idx))  # (2, 1, 28, 28)
    za, zb = encode(loaded.model, data.test.subset(idx), dev)  # (d,), (d,)
    t = np.linspace(0.0, 1.0, STEPS, dtype=np.float32)[:, None]
    walk = decode(loaded.model, (1 - t) * za + t * zb, dev)  # (STEPS, 1, 28, 28)
    names = [data.classes[y[i]] if 0 <= y[i] < len(data.classes) else "?" for i in idx]
    stem = f"{prefix}_interpolate_{_slug(names[0])}_{_slug(names[1])}" if by_class else f"{prefix}_interpolate_index_{idx[0]}_{idx[1]}"
    cols = [f"#{idx[0]} ({names[0]})"] + [f"t={v:.2f}" for v in t[:, 0]] + [f"#{idx[1]} ({names[1]})"]
    out = loaded.run_dir / "samples"
    # No suptitle: it would sit on the column labels of a one-row figure; those name both test images.
    png = plots.image_rows([torch.cat([ends[:1], walk, ends[1:]])], ["latent walk"], out / f"{stem}.png", col_labels=cols)
    js = runs.write_json(out / f"{stem}.json", {**meta, "test_indices": idx, "labels": names, "steps": STEPS})
    ui.info(f"walk between test images #{idx[0]} ({names[0]}) and #{idx[1]} ({names[1]})")
    return SampleResult(loaded.run_dir, [png, js], {"from": f"test #{idx[0]} ({names[0]})", "to": f"test #{idx[1]} ({names[1]})", "steps": str(STEPS)})
