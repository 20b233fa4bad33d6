"""`udl embed`: encode the test split, map the codes to 2-D (PCA or t-SNE), plot them and score the latent space.

The scores let runs be compared without judging scatter plots by eye:
  - 5-nearest-neighbour accuracy, cross-validated, in the latent space and in the 2-D map;
  - silhouette score by label, in both;
  - sklearn's trustworthiness of the map (k=10): how far the map's neighbours are true neighbours.

t-SNE is openTSNE's FFT-accelerated t-SNE (benchmarks/embed_tsne.py, docs/embed.md): on 10,000
codes it took about a third of scikit-learn's default time, with the same trustworthiness.
"""

from __future__ import annotations

import csv
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from udlcli import plots, ui
from udlcli.core import runs
from udlcli.core.contracts import Encodes, layer_of
from udlcli.core.device import resolve_device
from udlcli.core.latent import features_of, run_dataset
from udlcli.core.loading import load_run
from udlcli.core.progress import status
from udlcli.data import stratified_indices
from udlcli.errors import SpecError
from udlcli.models.registry import a_kind

HINT = "udl embed maps a run that encodes images (udl train ae, vae, ...)"
KNN_K, TRUST_K, FOLDS = 5, 10, 5


@dataclass
class EmbedResult:
    run_dir: Path
    method: str
    files: list[Path]
    info: dict = field(default_factory=dict)
    """Everything <method>.json holds: settings, timings and the scores."""


# ---------------------------------------------------------------- reducers: codes (N, d) -> map (N, 2)


def pca_map(
    codes: np.ndarray, seed: int = 0, perplexity: float | None = None
) -> tuple[np.ndarray, dict]:
    from sklearn.decomposition import PCA

    with status(f"PCA of {len(codes):,} codes"):
        pca = PCA(n_components=2, random_state=seed).fit(codes)
        xy = pca.transform(codes)
    return xy, {
        "implementation": "sklearn PCA",
        "explained_variance_ratio": [round(float(v), 4) for v in pca.explained_variance_ratio_],
    }


class _TsneProgress:
    """An openTSNE callback driving a rich bar over both phases (early exaggeration, then the main run)."""

    def __init__(self, bar, task, every: int):
        self.bar, self.task, self.every = bar, task, every

    def __call__(self, iteration: int, error: float, embedding) -> bool:
        self.bar.update(self.task, advance=self.every, kl=float(error))
        return False  # False: keep optimising


FFT_FROM = 5_000
"""t-SNE of this many codes or more uses FFT-interpolated gradients; fewer use Barnes-Hut."""
EXACT_KNN_MAX_DIM = 32
"""Codes of at most this many dimensions get exact nearest neighbours for the affinities; wider ones Annoy's."""


def tsne_map(
    codes: np.ndarray, seed: int = 0, perplexity: float | None = None, n_jobs: int = 2
) -> tuple[np.ndarray, dict]:
    """openTSNE: FFT-interpolated repulsive forces (O(N) per iteration) from FFT_FROM codes, Barnes-Hut below."""
    import openTSNE
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    perplexity = 30.0 if perplexity is None else perplexity
    # ints_in_interval=2 halves the FFT grid per axis (a quarter of the cells); numpy's FFT is most of the
    # time of an iteration, and the map keeps its trustworthiness (benchmarks/embed_tsne.py, docs/embed.md).
    # The FFT grid's cost depends on the map's extent, not on N: below ~5,000 points Barnes-Hut is faster
    # (300 codes: 4 s against 29 s; 5,000: about even), as openTSNE's own "auto" choice also reflects.
    fft = len(codes) >= FFT_FROM
    method = (
        dict(negative_gradient_method="fft", ints_in_interval=2)
        if fft
        else dict(negative_gradient_method="bh")
    )
    # Latent codes are low-dimensional: exact k-NN (a k-d tree) finds the 3 x perplexity neighbours of 10,000
    # 7-D codes in under a second, where openTSNE's default Annoy index takes about 5 s, and the map is the same.
    neighbors = "exact" if codes.shape[1] <= EXACT_KNN_MAX_DIM else "auto"
    tsne = openTSNE.TSNE(
        perplexity=perplexity, n_jobs=n_jobs, random_state=seed, neighbors=neighbors, **method
    )
    total = tsne.early_exaggeration_iter + tsne.n_iter
    name = ("FFT gradients, ints_in_interval=2" if fft else "Barnes-Hut gradients") + (
        ", exact k-NN" if neighbors == "exact" else ""
    )
    ui.info(
        f"t-SNE of {len(codes):,} codes (openTSNE, {name}, perplexity {perplexity:g}, {total} iterations)"
    )
    if ui.live_enabled():
        with Progress(
            TextColumn("[bold]t-SNE"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("KL {task.fields[kl]:.3f}"),
            TimeElapsedColumn(),
            console=ui.console,
            transient=True,
        ) as bar:
            task = bar.add_task("t-SNE", total=total, kl=float("nan"))
            tsne.callbacks, tsne.callbacks_every_iters = [_TsneProgress(bar, task, 25)], 25
            xy = np.asarray(tsne.fit(codes))
    else:
        xy = np.asarray(tsne.fit(codes))
    return xy, {
        "implementation": f"openTSNE {openTSNE.__version__} ({name})",
        "perplexity": perplexity,
        "iterations": total,
    }


METHODS: dict[str, Callable[..., tuple[np.ndarray, dict]]] = {"pca": pca_map, "tsne": tsne_map}


# ---------------------------------------------------------------- scores


def knn_accuracy(x: np.ndarray, y: np.ndarray, seed: int = 0) -> float | None:
    """5-NN accuracy, stratified 5-fold cross-validated on these points; None when a class is too small to split."""
    from sklearn.model_selection import StratifiedKFold, cross_val_score
    from sklearn.neighbors import KNeighborsClassifier

    counts = np.bincount(y)
    folds = min(FOLDS, int(counts[counts > 0].min()))
    if folds < 2 or len(y) - len(y) // folds <= KNN_K:
        return None
    cv = StratifiedKFold(folds, shuffle=True, random_state=seed)
    return float(cross_val_score(KNeighborsClassifier(KNN_K), x, y, cv=cv).mean())


def scores(
    codes: np.ndarray, xy: np.ndarray, y: np.ndarray, seed: int = 0
) -> dict[str, float | None]:
    """The numbers <method>.json and the terminal give; labels < 0 (unlabeled data) give only trustworthiness."""
    from sklearn.manifold import trustworthiness
    from sklearn.metrics import silhouette_score

    labeled = len(y) > 0 and (y >= 0).all() and 2 <= len(np.unique(y)) < len(y)
    out: dict[str, float | None] = {}
    out["knn5_latent"] = knn_accuracy(codes, y, seed) if labeled else None
    out["knn5_map"] = knn_accuracy(xy, y, seed) if labeled else None
    out["silhouette_latent"] = float(silhouette_score(codes, y)) if labeled else None
    out["silhouette_map"] = float(silhouette_score(xy, y)) if labeled else None
    out["trustworthiness_k10"] = (
        float(trustworthiness(codes, xy, n_neighbors=TRUST_K)) if len(y) > 2 * TRUST_K else None
    )
    return out


# ---------------------------------------------------------------- the command


def stratified_subset(y: np.ndarray, n: int, seed: int) -> np.ndarray:
    """n test indices (sorted) with the classes in their test-split proportions, seeded; all of them when n is the split."""
    if n == len(y):
        return np.arange(len(y))
    k = len(np.unique(y))
    if (y >= 0).all() and n < k:
        raise SpecError(
            f"--n {n}: a stratified sample needs at least one point per class ({k} classes); use --n {k} or more"
        )
    return stratified_indices(y, n, seed)


def embed(
    run: str | Path | None = None,
    root: str | Path = "runs",
    method: str = "tsne",
    n: int | None = None,
    perplexity: float | None = None,
    seed: int = 0,
    data_dir: str | Path | None = None,
    device: str | None = None,
    command: str = "",
    features: str | None = None,
) -> EmbedResult:
    """Write RUN/embed/<name>.png, .csv and .json (name from map_name); everything is checked before anything is written.

    `features` names the model's layer to map (its feature_layers(); None: the first, an AE's code).
    """
    if method not in METHODS:
        raise SpecError(f"--method {method!r}: unknown method; choose one of {', '.join(METHODS)}")
    if perplexity is not None and method != "tsne":
        raise SpecError(f"--perplexity applies to --method tsne, not {method}")
    if perplexity is not None and not perplexity > 0:
        raise SpecError(
            f"--perplexity {perplexity:g}: must be positive (t-SNE's usual range is 5-50)"
        )
    if n is not None and n < 1:
        raise SpecError(f"--n {n}: give a positive number of test images")

    loaded = load_run(run, root, needs=(Encodes,), hint=HINT)
    layers = loaded.model.feature_layers()
    layer = layer_of(layers, features, a_kind(loaded.kind))
    dev = resolve_device(device or "auto")
    data = run_dataset(loaded, data_dir)
    y_all = data.test.y.cpu().numpy()
    n = len(y_all) if n is None else n
    if n > len(y_all):
        raise SpecError(
            f"--n {n}: larger than the test split of {data.name} ({len(y_all):,} images); use --n {len(y_all)} or less"
        )
    if perplexity is not None and 3 * perplexity >= n:
        raise SpecError(
            f"--perplexity {perplexity:g}: too large for {n} points (needs 3 x perplexity < n); lower it or raise --n"
        )
    idx = stratified_subset(y_all, n, seed)
    y = y_all[idx]

    loaded.model.to(dev)
    with status(f"encoding {n:,} test images with {loaded.run_dir}"):
        codes = features_of(loaded.model, data.test.subset(idx), dev, layer)  # (n, d)
    d = codes.shape[1]
    t0 = time.perf_counter()
    if d <= 2:  # already 2-D (or 1-D, drawn on a line): plot the codes themselves
        xy, detail = (
            np.pad(codes, ((0, 0), (0, 2 - d))),
            {"implementation": f"none: the latent dimension is {d}, codes are plotted directly"},
        )
    else:
        xy, detail = METHODS[method](codes, seed=seed, perplexity=perplexity)
    reduce_s = time.perf_counter() - t0
    with status("scoring: kNN accuracy, silhouette, trustworthiness"):
        metrics = scores(codes, xy, y, seed)

    info = {
        "command": command,
        "run": str(loaded.run_dir),
        "checkpoint": str(loaded.checkpoint),
        "kind": loaded.kind,
        "features": layer,
        "method": method,
        **detail,
        "dataset": data.name,
        "n": int(n),
        "latent_dim": int(d),
        "seed": seed,
        "reduce_time_s": round(reduce_s, 2),
        "metrics": metrics,
    }
    out = loaded.run_dir / "embed"
    out.mkdir(parents=True, exist_ok=True)
    stem = map_name(method, n if n != len(y_all) else None, perplexity, seed)
    if layer != next(iter(layers)):  # another layer than the default gets its own files
        stem = f"{stem}_{layer}"
    files = [
        _plot(out / f"{stem}.png", xy, y, data.classes, info),
        _csv(out / f"{stem}.csv", xy, y, idx),
        runs.write_json(out / f"{stem}.json", info),
    ]
    return EmbedResult(loaded.run_dir, method, files, info)


def map_name(method: str, n: int | None, perplexity: float | None, seed: int) -> str:
    """The files' stem: 'tsne' for the whole test split with the defaults, 'tsne_n2000_perp40_seed1' otherwise.

    Each setting that changes the map is in the name, so a map with other settings is written beside
    the earlier one instead of replacing it; the same settings give the same map, which is rewritten.
    """
    parts = [method]
    if n is not None:
        parts.append(f"n{n}")
    if perplexity is not None:
        parts.append(f"perp{perplexity:g}")
    if seed != 0:
        parts.append(f"seed{seed}")
    return "_".join(parts)


def _fmt(v: float | None) -> str:
    return "n/a" if v is None else f"{v:.3f}"


def _plot(path: Path, xy: np.ndarray, y: np.ndarray, classes: list[str], info: dict) -> Path:
    m = info["metrics"]
    name = {"pca": "PCA", "tsne": "t-SNE"}[info["method"]] if info["latent_dim"] > 2 else "codes"
    title = (
        f"{Path(info['run']).name}: {info['latent_dim']}-D {info['features']} features of {info['n']:,} test images, {name}\n"
        f"5-NN acc latent {_fmt(m['knn5_latent'])} / map {_fmt(m['knn5_map'])}   silhouette {_fmt(m['silhouette_latent'])} / "
        f"{_fmt(m['silhouette_map'])}   trustworthiness {_fmt(m['trustworthiness_k10'])}"
    )
    return plots.scatter_labels(
        xy, y, classes, path, title=title, xlabel=f"{name} 1", ylabel=f"{name} 2"
    )


def _csv(path: Path, xy: np.ndarray, y: np.ndarray, idx: np.ndarray) -> Path:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["x", "y", "label", "test_index"])
        w.writerows((f"{a:.6g}", f"{b:.6g}", int(c), int(i)) for (a, b), c, i in zip(xy, y, idx))
    tmp.replace(path)
    return path
