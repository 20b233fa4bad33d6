"""`udl denoise`: train a denoising AE with the shared trainer, measure it in PSNR/SSIM, and clean a user's images.

Four entry points, one per mode of the command:
    train_and_evaluate(spec, opts, compare)   train runs/denoise/<name>/ with udl train's engine, then evaluate it
    resume_and_evaluate(run, epochs, ...)     continue such a run (udl denoise --resume), then evaluate it
    evaluate_run(run, compare, ...)           the PSNR/SSIM table, summary.json["denoise"] and two figures
    clean_images(paths, out, run, ...)        denoise image files into another folder (never over an input)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from udlcli import ui
from udlcli.config import validate
from udlcli.core import runs
from udlcli.core.contracts import Reconstructs
from udlcli.core.device import resolve_device
from udlcli.core.lifecycle import RunOptions
from udlcli.core.loading import LoadedRun, load_run
from udlcli.core.spec import RunSpec, resolve_spec
from udlcli.data import ImageDataset, load_configured
from udlcli.data.noise import EVAL_KINDS, NoiseConfig, pixel_sigma
from udlcli.errors import SpecError
from udlcli.tasks import train as train_engine
from udlcli.tasks.denoise.scores import figures, progress, read_json, score

FAMILY = "dae"
"""udl denoise trains and scores this family (its registry entry's command)."""
NOT_A_DAE = (
    "give a run of `udl denoise` (runs/denoise/...); a plain AE run can only be passed to --compare"
)


@dataclass
class EvalResult:
    run_dir: Path
    table: dict
    """summary.json["denoise"]: noise settings, and per noise type the mean PSNR/SSIM of noisy, dae, ae."""
    figures: list[Path] = field(default_factory=list)
    train_summary: dict | None = None


def denoise_spec(
    config: str | None,
    flags: dict,
    sets: list[str] | None,
    like: str | Path | None,
    root: str | Path = "runs",
) -> RunSpec:
    """The DAE's run spec: defaults < --like RUN's architecture < YAML < flags < --set."""
    if like is not None:
        src = load_run(
            like,
            root,
            needs=(Reconstructs,),
            hint="--like takes an autoencoder run (AE, DAE, VAE) whose architecture to copy",
        )
        own = src.spec.model.model_dump()
        if "channels" not in own or "latent_dim" not in own:
            raise SpecError(f"--like {like}: its model has no channels and latent_dim to copy")
        arch = {"model.channels": own["channels"], "model.latent_dim": own["latent_dim"]}
        clash = [k.split(".")[1] for k, v in arch.items() if flags.get(k) not in (None, v)]
        if clash:
            raise SpecError(
                f"--like {like} sets {', '.join(clash)} from that run; drop --{' --'.join(c.replace('_', '-') for c in clash)} or --like"
            )
        ui.info(
            f"architecture from {src.run_dir}: channels {arch['model.channels']}, latent_dim {arch['model.latent_dim']}"
        )
        flags = {**flags, **arch}
    return resolve_spec(FAMILY, config, flags, sets)


def train_and_evaluate(
    spec: RunSpec, opts: RunOptions, compare: str | Path | None = None
) -> EvalResult:
    """Train a DAE with the shared trainer (same run layout as udl train), then evaluate it on the test split."""
    ae = _load_compare(
        compare, opts.out
    )  # before training: a bad --compare must not cost a training run
    data = load_configured(spec.data)
    trained = train_engine.train(spec, opts, data=data)
    dae = load_run(trained.run_dir, family=FAMILY)  # the best checkpoint, as udl train tests it
    result = _evaluate(
        dae,
        ae,
        data,
        spec.model.noise_config(),
        spec.train.seed,
        spec.train.device,
        default_noise=True,
    )
    result.train_summary = trained.summary
    return result


def resume_and_evaluate(
    run: str | Path,
    epochs: int | None = None,
    device: str | None = None,
    compare: str | Path | None = None,
    root: str | Path = "runs",
) -> EvalResult:
    """Continue a DAE run from its last checkpoint (the run lifecycle of udl train), then evaluate it as a fresh run is."""
    from udlcli.core import lifecycle

    # A run of another kind is refused before anything is loaded.
    lifecycle.open_resume(run, command="denoise")
    ae = _load_compare(compare, root)
    trained = train_engine.resume(run, epochs=epochs, device=device, command="denoise")
    dae = load_run(trained.run_dir, family=FAMILY)
    spec = dae.spec
    data = load_configured(spec.data)
    result = _evaluate(
        dae,
        ae,
        data,
        spec.model.noise_config(),
        spec.train.seed,
        spec.train.device,
        default_noise=True,
    )
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
    validate(
        NoiseConfig, noise or {}, source="noise options"
    )  # bad --sigma/--p/--salt before any loading
    dae = load_run(run, root, family=FAMILY, hint=NOT_A_DAE)
    cfg = validate(
        NoiseConfig,
        {**dae.spec.model.noise_config().model_dump(), **(noise or {})},
        source="noise options",
    )
    ae = _load_compare(compare, root)
    spec = dae.spec
    data = load_configured(spec.data, data_dir)
    return _evaluate(
        dae,
        ae,
        data,
        cfg,
        spec.train.seed if seed is None else seed,
        device or spec.train.device,
        default_noise=not noise,
    )


def _load_compare(compare: str | Path | None, root: str | Path) -> LoadedRun | None:
    if compare is None:
        return None
    return load_run(
        compare,
        root,
        needs=(Reconstructs,),
        hint="--compare takes an autoencoder run (udl train ae) to compare with",
    )


def _evaluate(
    dae: LoadedRun,
    ae: LoadedRun | None,
    data: ImageDataset,
    cfg: NoiseConfig,
    seed: int,
    device: str,
    default_noise: bool,
) -> EvalResult:
    dev = resolve_device(device)
    std = dae.spec.data.std
    test = data.test.to(dev)
    models = {"dae": dae.model.to(dev)}
    if ae is not None:
        models["ae"] = ae.model.to(dev)
        if ae.payload.get("data", {}).get("name") not in (None, data.name):
            ui.warn(
                f"--compare {ae.run_dir} was trained on {ae.payload['data']['name']}, the DAE on {data.name}"
            )
    ui.info(
        f"evaluating [cyan]{dae.run_dir}[/] on {data.name} test ({len(test):,} images), noise seed {seed}: "
        f"gaussian sigma {cfg.sigma:g} normalised = {pixel_sigma(cfg, std):.4g} in pixels, salt-and-pepper p {cfg.p:g} salt {cfg.salt:g}"
    )
    rows = {
        kind: score(models, test, cfg, std, kind, seed)
        for kind in progress(EVAL_KINDS, "PSNR/SSIM")
    }
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
    figs = figures(dae.run_dir, models, test, cfg, std, seed, suffix)
    summary_path = dae.run_dir / "summary.json"
    summary = read_json(summary_path)
    summary["denoise" + suffix] = table
    runs.write_json(summary_path, summary)
    return EvalResult(dae.run_dir, table, figs)
