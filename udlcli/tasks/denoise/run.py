"""`udl denoise`: train a denoising AE with the shared trainer, measure it in PSNR/SSIM, and clean a user's images.

Three entry points, one per mode of the command:
    train_and_evaluate(spec, opts, compare)   train runs/denoise/<name>/ via engine.train, then evaluate it
    evaluate_run(run, compare, ...)           the PSNR/SSIM table, summary.json["denoise"] and two figures
    clean_images(paths, out, run, ...)        denoise image files into another folder (never over an input)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from udlcli import plots, ui
from udlcli.config import validate
from udlcli.data import ImageDataset, TensorImages, load_dataset
from udlcli.data.noise import EVAL_KINDS, NoiseConfig, add_noise, pixel_sigma
from udlcli.core import runs
from udlcli.tasks.train import run as train_engine
from udlcli.core.device import resolve_device
from udlcli.core.loading import LoadedRun, load_run
from udlcli.core.spec import RunSpec, resolve_spec
from udlcli.errors import SpecError
from udlcli.metrics_image import psnr, ssim

KIND_LABELS = {"none": "none (clean)", "gaussian": "gaussian", "saltpepper": "salt & pepper", "both": "both"}
NOT_A_DAE = "give a run of `udl denoise` (runs/denoise/...); a plain AE run can only be passed to --compare"


@dataclass
class EvalResult:
    run_dir: Path
    table: dict
    """summary.json["denoise"]: noise settings, and per noise type the mean PSNR/SSIM of noisy, dae, ae."""
    figures: list[Path] = field(default_factory=list)
    train_summary: dict | None = None


@dataclass
class CleanResult:
    written: list[Path]
    notes: list[str]
    run_dir: Path


# ---------------------------------------------------------------- training


def denoise_spec(config: str | None, flags: dict, sets: list[str] | None, like: str | Path | None, root: str | Path = "runs") -> RunSpec:
    """The DAE's run spec: defaults < --like RUN's architecture < YAML < flags < --set."""
    if like is not None:
        src = load_run(like, root, kinds=("ae", "dae"), hint="--like takes an AE (or DAE) run whose architecture to copy")
        arch = {"model.channels": src.spec.model.channels, "model.latent_dim": src.spec.model.latent_dim}
        clash = [k.split(".")[1] for k, v in arch.items() if flags.get(k) not in (None, v)]
        if clash:
            raise SpecError(f"--like {like} sets {', '.join(clash)} from that run; drop --{' --'.join(c.replace('_', '-') for c in clash)} or --like")
        ui.info(f"architecture from {src.run_dir}: channels {arch['model.channels']}, latent_dim {arch['model.latent_dim']}")
        flags = {**flags, **arch}
    return resolve_spec("dae", config, flags, sets)


def train_and_evaluate(spec: RunSpec, opts: train_engine.RunOptions, compare: str | Path | None = None) -> EvalResult:
    """Train a DAE with the shared trainer (same run layout as udl train), then evaluate it on the test split."""
    ae = _load_compare(compare, opts.out)  # before training: a bad --compare must not cost a training run
    data = load_dataset(spec.data.dataset, spec.data.data_dir, spec.data.limit)
    trained = train_engine.train(spec, opts, data=data)
    dae = load_run(trained.run_dir, kinds=("dae",))  # the best checkpoint, as udl train tests it
    result = _evaluate(dae, ae, data, spec.model.noise_config(), spec.train.seed, spec.train.device, default_noise=True)
    result.train_summary = trained.summary
    return result


# ---------------------------------------------------------------- evaluation


def evaluate_run(
    run: str | Path | None,
    compare: str | Path | None = None,
    noise: dict | None = None,
    seed: int | None = None,
    device: str | None = None,
    data_dir: str | None = None,
    root: str | Path = "runs",
) -> EvalResult:
    """Evaluate an existing DAE run (newest under root when run is None); noise overrides sigma/p/salt."""
    validate(NoiseConfig, noise or {}, source="noise options")  # bad --sigma/--p/--salt before any loading
    dae = load_run(run, root, kinds=("dae",), hint=NOT_A_DAE)
    cfg = validate(NoiseConfig, {**dae.spec.model.noise_config().model_dump(), **(noise or {})}, source="noise options")
    ae = _load_compare(compare, root)
    spec = dae.spec
    data = load_dataset(spec.data.dataset, data_dir or spec.data.data_dir, spec.data.limit)
    return _evaluate(dae, ae, data, cfg, spec.train.seed if seed is None else seed, device or spec.train.device, default_noise=not noise)


def _load_compare(compare: str | Path | None, root: str | Path) -> LoadedRun | None:
    if compare is None:
        return None
    return load_run(compare, root, kinds=("ae",), hint="--compare takes a plain AE run (udl train ae)")


def _evaluate(dae: LoadedRun, ae: LoadedRun | None, data: ImageDataset, cfg: NoiseConfig, seed: int, device: str, default_noise: bool) -> EvalResult:
    dev = resolve_device(device)
    std = dae.spec.data.std
    test = data.test.to(dev)
    models = {"dae": dae.model.to(dev)}
    if ae is not None:
        models["ae"] = ae.model.to(dev)
        if ae.payload.get("data", {}).get("name") not in (None, data.name):
            ui.warn(f"--compare {ae.run_dir} was trained on {ae.payload['data']['name']}, the DAE on {data.name}")
    ui.info(
        f"evaluating [cyan]{dae.run_dir}[/] on {data.name} test ({len(test):,} images), noise seed {seed}: "
        f"gaussian sigma {cfg.sigma:g} normalised = {pixel_sigma(cfg, std):.4g} in pixels, salt-and-pepper p {cfg.p:g} salt {cfg.salt:g}"
    )
    rows = {kind: _score(models, test, cfg, std, kind, seed) for kind in _progress(EVAL_KINDS, "PSNR/SSIM")}
    table = {
        "noise": cfg.model_dump(),
        "sigma_pixels": pixel_sigma(cfg, std),
        "seed": seed,
        "test_images": len(test),
        "dataset": data.name,
        "compare": str(ae.run_dir) if ae is not None else None,
        "rows": rows,
    }
    # Other test noise than the run's gets its own summary key and figure names, so nothing is replaced.
    suffix = "" if default_noise else f"_sigma{cfg.sigma:g}_p{cfg.p:g}_salt{cfg.salt:g}"
    figs = _figures(dae.run_dir, models, test, cfg, std, seed, suffix)
    summary_path = dae.run_dir / "summary.json"
    summary = _read_json(summary_path)
    summary["denoise" + suffix] = table
    runs.write_json(summary_path, summary)
    return EvalResult(dae.run_dir, table, figs)


@torch.no_grad()
def _score(models: dict, test: TensorImages, cfg: NoiseConfig, std: float, kind: str, seed: int, batch_size: int = 1000) -> dict:
    """Mean PSNR/SSIM against the clean test images of the noisy input and of each model's output on it."""
    gen = torch.Generator().manual_seed(seed)  # CPU noise: the same numbers on every device
    sums: dict[str, dict[str, float]] = {}
    for x, _ in test.batches(batch_size):  # x: clean (B, 1, 28, 28)
        noisy = add_noise(x, cfg, std, gen, kind)
        outs = {"noisy": noisy, **{name: m.reconstruct(noisy).clamp(0, 1) for name, m in models.items()}}
        for name, img in outs.items():
            s = sums.setdefault(name, {"psnr": 0.0, "ssim": 0.0})
            s["psnr"] += float(psnr(img, x).sum())
            s["ssim"] += float(ssim(img, x).sum())
    row = {name: {k: v / len(test) for k, v in s.items()} for name, s in sums.items()}
    if kind == "none":
        row["noisy"]["psnr"] = None  # the input is the clean image itself: infinite PSNR, SSIM 1
    else:
        row["gain_db"] = row["dae"]["psnr"] - row["noisy"]["psnr"]
    return row


def _figures(run_dir: Path, models: dict, test: TensorImages, cfg: NoiseConfig, std: float, seed: int, suffix: str = "") -> list[Path]:
    """figures/noise_types.png (the report's Fig. 15) and figures/denoised.png (Figs. 5 and 16)."""
    fig_dir = run_dir / "figures"
    digits = test.images(train_engine.fixed_digits(test).to(test.x.device))  # one test digit per class (B, 1, 28, 28)
    noisy = {k: add_noise(digits, cfg, std, torch.Generator().manual_seed(seed), k) for k in EVAL_KINDS}
    titles = {"none": "none\n", "gaussian": f"gaussian\nsigma {cfg.sigma:g}", "saltpepper": f"salt & pepper\np {cfg.p:g}", "both": "both\n"}
    one = torch.stack([noisy[k][0] for k in EVAL_KINDS])  # (4, 1, 28, 28): the first digit under each noise
    # No suptitle: on a one-row figure it would overlap the column titles.
    paths = [plots.image_rows([one], [""], fig_dir / f"noise_types{suffix}.png", col_labels=[titles[k] for k in EVAL_KINDS])]
    rows, labels = [digits], ["clean"]
    with torch.no_grad():
        for k in EVAL_KINDS:
            if k != "none":  # the clean input is the first row already
                rows.append(noisy[k])
                labels.append(f"{KIND_LABELS[k]}: input")
            for name, m in models.items():
                rows.append(m.reconstruct(noisy[k]).clamp(0, 1))
                labels.append(("clean -> " if k == "none" else "") + ("DAE" if name == "dae" else "plain AE"))
    paths.append(plots.image_rows(rows, labels, fig_dir / f"denoised{suffix}.png", title="Clean, noisy and denoised test digits (best checkpoint)"))
    return paths


def _progress(items, label: str):
    """Iterate with a transient rich bar on a terminal (evaluating a noise type takes seconds on a CPU)."""
    if not ui.live_enabled():
        yield from items
        return
    from rich.progress import Progress

    with Progress(console=ui.console, transient=True) as bar:
        task = bar.add_task(label, total=len(items))
        for item in items:
            yield item
            bar.advance(task)


def _read_json(path: Path) -> dict:
    import json

    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


# ---------------------------------------------------------------- a user's own images


def clean_images(paths: list[str], out: str | Path, run: str | Path | None = None, keep_size: bool = False, root: str | Path = "runs",
                 overwrite: bool = False) -> CleanResult:
    """Denoise image files with a DAE (the newest under root by default) into out/, keeping their file names.

    A file already in out/ is replaced only with overwrite=True; otherwise the first one is named and nothing is written.
    """
    from udlcli.data.user_images import expand_paths, load_user_images

    files = expand_paths(paths)  # DataError for a path or pattern that matches nothing
    out = Path(out)
    targets = _targets(files, out)
    existing = [t for t in targets if t.exists()]
    if existing and not overwrite:
        more = f" (and {len(existing) - 1} more)" if len(existing) > 1 else ""
        raise SpecError(f"{existing[0]} already exists{more}; pass --overwrite to replace it, or choose another --out")
    dae = load_run(run, root, kinds=("dae",), hint=NOT_A_DAE)
    imgs = load_user_images(files)
    with torch.no_grad():
        clean = dae.model.reconstruct(imgs.x).clamp(0, 1)  # (N, 1, 28, 28), white on black
    out.mkdir(parents=True, exist_ok=True)
    for i, target in enumerate(targets):
        _write_png(clean[i, 0], target, imgs.inverted[i], imgs.sizes[i] if keep_size else None)
    notes = list(imgs.notes)
    if any(imgs.inverted):
        notes.append("inverted images were inverted back, so each output has its input's polarity")
    return CleanResult(targets, notes, dae.run_dir)


def _targets(files: list[Path], out: Path) -> list[Path]:
    """out/<input stem>.png for each input; refuses an input's own folder, a clash, or a target that is an input."""
    out_r = out.resolve()
    inputs = {f.resolve() for f in files}
    for f in files:
        if f.resolve().parent == out_r:
            raise SpecError(f"--out {out} is the folder of the input {f}; choose another folder, the inputs are never overwritten")
    targets = [out / f"{f.stem}.png" for f in files]
    seen: dict[Path, Path] = {}
    for f, t in zip(files, targets):
        if t.resolve() in inputs:
            raise SpecError(f"{t} is an input file; choose another --out, the inputs are never overwritten")
        if t in seen:
            raise SpecError(f"{seen[t]} and {f} would both be written to {t}; rename one or clean them in two runs")
        seen[t] = f
    return targets


def _write_png(img: torch.Tensor, path: Path, invert: bool, size: tuple[int, int] | None) -> None:
    from PIL import Image

    a = (1.0 - img if invert else img).cpu().numpy()  # (28, 28) in [0, 1], in the input's polarity
    im = Image.fromarray((a * 255).round().astype(np.uint8), mode="L")
    if size is not None and size != im.size:
        im = im.resize(size, Image.BICUBIC)
    tmp = path.with_name(path.name + ".tmp")
    im.save(tmp, format="PNG")
    tmp.replace(path)
