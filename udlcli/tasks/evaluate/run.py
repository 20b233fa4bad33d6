"""`udl evaluate`: sample quality of generative runs or image folders against the test split, with floor and ceiling rows.

Each source (a run folder or a folder of images) gives n images (n, C, H, W) in [0, 1]; the
dataset's feature network (featurenet.py) maps them to features and class probabilities,
and udlcli.metrics compares them with the test split. Two reference rows use the same n and the
same network: the train split (the ceiling a perfect model could reach) and uniform noise (the floor).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch

from udlcli import metrics
from udlcli.core import runs
from udlcli.core.contracts import Generates
from udlcli.core.generate import flag_of, options_tag
from udlcli.core.progress import status
from udlcli.data import load_configured
from udlcli.errors import CheckpointError, SpecError
from udlcli.models import families
from udlcli.tasks.evaluate.featurenet import writable
from udlcli.tasks.evaluate.images import check_images, image_files, load_images
from udlcli.tasks.evaluate.training import featurenet_for

RESULT_FILE = "evaluation.json"


@dataclass
class Source:
    """One row of the table: where the images come from and how to get them."""

    label: str
    kind: str
    """The run kind (ae, vae, gan) or "images"."""
    path: Path
    dataset: str | None = None
    data_dir: str | None = None
    generate: Callable | None = None
    images: torch.Tensor | None = None
    """(N, C, H, W) in [0, 1] for an image folder, read once the dataset's shape is known."""
    data: dict | None = None
    """A run's data section (its spec's): how to load the data it was trained on."""


@dataclass
class Reference:
    """The test split's features (N_test, f) and k-NN radii (N_test,), computed once for every row."""

    features: np.ndarray
    radii: np.ndarray

    def metrics(self, features: np.ndarray, probs: np.ndarray) -> dict:
        return metrics.all_metrics(self.features, features, probs, real_radii=self.radii)


@dataclass
class Row:
    label: str
    kind: str
    metrics: dict
    saved: Path | None = None
    seconds: float = 0.0


@dataclass
class EvalReport:
    rows: list[Row]
    references: list[Row]
    """The ceiling (train split) and floor (uniform noise) rows."""
    dataset: dict
    featurenet: dict
    n_test: int
    notes: list[str] = field(default_factory=list)


# ------------------------------------------------------------------ sources


def run_source(path: str | Path) -> Source:
    """A run folder (or checkpoint) whose model generates images; a one-line CheckpointError otherwise."""
    from udlcli.core.generate import generate_run
    from udlcli.core.loading import read_checkpoint, refusal, tasks_for
    from udlcli.models import REGISTRY

    tasks, makes = tasks_for((Generates,))
    run_dir, ck = runs.resolve_checkpoint(path, "runs", tasks, make=makes)
    payload = read_checkpoint(ck)
    kind = payload.get("kind") or "unknown"
    family = REGISTRY.get(kind)
    if family is None:
        raise CheckpointError(
            f"{run_dir} is a {kind} run, which this version of udl does not know (no such model family is installed)"
        )
    if not family.can(Generates):
        hint = (
            "evaluate a run that generates ("
            + ", ".join(f.name for f in families(Generates))
            + "), or --images, instead"
        )
        raise refusal(run_dir, kind, [Generates], hint)
    spec_data = (payload.get("spec") or {}).get("data") or {}
    dataset = (payload.get("data") or {}).get("name") or spec_data.get("dataset")
    if dataset != spec_data.get("dataset"):
        # mnist asked for, mnist-sample used (offline): evaluate on what it saw
        spec_data = {**spec_data, "dataset": dataset}
    return Source(
        str(run_dir),
        kind,
        run_dir,
        dataset,
        spec_data.get("data_dir"),
        generate_run,
        data=spec_data,
    )


# ------------------------------------------------------------------ evaluation


def evaluate(
    run_paths: list[str | Path],
    images: str | Path | None = None,
    n: int = 10_000,
    seed: int = 0,
    device: str = "auto",
    data_dir: str | Path | None = None,
    dataset: str | None = None,
    json_out: str | Path | None = None,
    command: str = "",
    featurenet_epochs: int | None = None,
    featurenet_limit: int | None = None,
    inception_weights: str | Path | None = None,
    options: dict | None = None,
) -> EvalReport:
    """Evaluate every source against the test split; writes evaluation.json into each run folder (and for --images, see below).

    For --images the result goes to json_out when given, else into the image folder when it is
    writable, else nowhere (the report says so). featurenet_epochs/limit make quick test networks.
    inception_weights adds the standard InceptionV3's FID and IS (tasks/evaluate/inception.py);
    options go to every run's sampler (a diffusion model's steps, sampler, class, guidance).
    """
    if not run_paths and images is None:
        raise SpecError("give one or more run folders to evaluate, or --images FOLDER")
    if n < 2:
        raise SpecError(f"--n {n}: FID and precision/recall need at least 2 samples")
    # Validate and load every source before any work, so a bad one costs nothing.
    srcs = [run_source(p) for p in run_paths]
    options = {k: v for k, v in (options or {}).items() if v is not None}
    if options and not run_paths:
        given = ", ".join(flag_of(k) for k in options)
        raise SpecError(f"{given}: sampling options go with runs that generate, not with --images")
    inception = None
    if inception_weights is not None:
        from udlcli.core.device import resolve_device
        from udlcli.tasks.evaluate.inception import Inception

        inception = Inception(
            inception_weights, resolve_device(device)
        )  # a bad file: one line, now
    if images is not None:
        image_files(images)
        srcs.append(Source(str(images), "images", Path(images)))
    name = _dataset_name(srcs, dataset)
    data_dir = data_dir or next((s.data_dir for s in srcs if s.data_dir), None)
    images_json = _images_json_path(Path(images), json_out) if images is not None else None

    data = load_configured(_data_config(srcs, name), data_dir)
    for s in srcs:
        if s.kind == "images":
            s.images = load_images(s.path, data.shape, data.name)
    net = featurenet_for(data, data_dir, device, epochs=featurenet_epochs, limit=featurenet_limit)
    with status(
        f"features of the {data.name} test split ({len(data.test):,} images), the reference of every row"
    ):
        real, _ = net.embed_split(data.test)  # (N_test, f)
        real = Reference(real, metrics.manifold_radii(real))
    n_ref = n if run_paths else len(srcs[-1].images)
    inception_real = None
    if inception is not None:
        with status(
            f"InceptionV3 features of the {data.name} test split (cached after the first time)"
        ):
            inception_real = inception.reference(data)

    def score(x: torch.Tensor) -> dict:
        """Every metric of images x on udl's network, and on InceptionV3 when asked for."""
        feats, probs = net.embed(x)
        m = real.metrics(feats, probs)
        if inception is not None:
            m["inception"] = inception.metrics(inception_real, x)
        return m

    rows = [_row(s, score, net.shape, n, seed, device, data_dir, options) for s in srcs]
    with status("the ceiling (train split) and floor (uniform noise) rows"):
        references = _references(data, score, min(n_ref, len(data.train)), seed)

    report = EvalReport(rows, references, data.info(), net.info(), len(data.test))
    common = {
        "command": command,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "seed": seed,
        "reference": f"{data.name} test split ({len(data.test):,} images)",
        "dataset": report.dataset,
        "featurenet": report.featurenet,
        **({"inception_network": inception.info()} if inception is not None else {}),
        **({"sampler": options} if options else {}),
        "references": {r.label: r.metrics for r in references},
        "versions": runs.versions(),
    }
    # Each setting of the sampler has a file of its own (evaluation_class_3_guidance2.0.json), so
    # --class 8 does not replace --class 3's numbers; the same setting again replaces, and says so.
    name = Path(RESULT_FILE).stem + options_tag(options) + ".json"
    for row, src in zip(rows, srcs):
        target = (
            images_json
            if src.kind == "images"
            else (src.path / name if writable(src.path) else None)
        )
        if target is not None:
            if target.is_file():
                report.notes.append(f"replaced {target} (the same run, sampler setting and file)")
            runs.write_json(
                target, {"source": row.label, "kind": row.kind, **row.metrics, **common}
            )
            row.saved = target
        else:
            hint = "; pass --json PATH to keep it" if src.kind == "images" else ""
            report.notes.append(
                f"{src.path} is read-only, so its evaluation.json was not written{hint}"
            )
    return report


def _data_config(srcs: list[Source], name: str):
    """How to load the data: the runs' own data section (all runs must have the same image shape), else the dataset's defaults."""
    from udlcli.config import DataConfig, validate

    own = [s.data for s in srcs if s.data]
    shapes = {tuple(d["shape"]) for d in own if d.get("shape")}
    if len(shapes) > 1:
        raise SpecError(
            f"these runs were trained on images of different shapes ({', '.join('x'.join(map(str, s)) for s in sorted(shapes))}); evaluate one shape at a time"
        )
    keep = ("dataset", "data_dir", "image_size", "color", "shape")
    base = {k: v for k, v in (own[0] if own else {}).items() if k in keep}
    return validate(DataConfig, {**base, "dataset": name}, source="the runs' data section")


def _dataset_name(srcs: list[Source], dataset: str | None) -> str:
    names = {s.dataset for s in srcs if s.dataset}
    if len(names) > 1:
        raise SpecError(
            f"these runs were trained on different datasets ({', '.join(sorted(names))}); evaluate one dataset at a time"
        )
    if dataset and names and dataset not in names:
        raise SpecError(
            f"--dataset {dataset}: the runs were trained on {names.pop()}; drop --dataset or evaluate runs of {dataset}"
        )
    return dataset or (names.pop() if names else "mnist")


def _images_json_path(folder: Path, json_out: str | Path | None) -> Path | None:
    if json_out is not None:
        p = Path(json_out)
        if not p.parent.is_dir():
            raise SpecError(f"--json {p}: the folder {p.parent} does not exist; create it first")
        return p
    return folder / RESULT_FILE if writable(folder) else None


def _generate(src: Source, n: int, seed: int, device: str, data_dir, options: dict) -> torch.Tensor:
    # A sampler fitted on the training split (the AE's Gaussian) reads it from data_dir when given.
    return src.generate(src.path, n, seed=seed, device=device, data_dir=data_dir, **options)


def _row(src: Source, score, shape, n: int, seed: int, device: str, data_dir, options: dict) -> Row:
    t0 = time.perf_counter()
    if src.images is not None:
        x = src.images
    else:
        with status(f"drawing {n:,} samples from {src.label} ({src.kind}, seed {seed})"):
            x = _generate(src, n, seed, device, data_dir, options)
    x = check_images(torch.as_tensor(x), src.label, shape)
    return Row(src.label, src.kind, score(x), seconds=time.perf_counter() - t0)


def _references(data, score, n: int, seed: int) -> list[Row]:
    """Ceiling: n seeded train images; floor: n seeded uniform-noise images. Same n as the samples, since FID grows as n shrinks."""
    g = torch.Generator().manual_seed(seed)
    idx = torch.randperm(len(data.train), generator=g)[:n]
    out = []
    for label, kind, x in (
        ("ceiling: train split", "reference", data.train.images(idx)),
        ("floor: uniform noise", "reference", torch.rand(n, *data.shape, generator=g)),
    ):
        t0 = time.perf_counter()
        out.append(Row(label, kind, score(x), seconds=time.perf_counter() - t0))
    return out
