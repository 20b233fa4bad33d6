"""`udl denoise`: parse options, call one engine function (train+evaluate, evaluate, or clean files), print the result."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from udlcli import ui
from udlcli.cli.common import (
    ChannelsOpt,
    ColorOpt,
    DataDirOpt,
    DatasetOpt,
    DeviceOpt,
    DevicesOpt,
    FlagTable,
    ImageSizeOpt,
    LatentDimOpt,
    LimitOpt,
    MlflowUriOpt,
    PortOpt,
    QuietOpt,
    SeedOpt,
    TrackOpt,
    command_line,
    config_option,
    error,
    friendly_errors,
    launch_ranks,
    set_option,
    setup,
)

ConfigOpt = config_option("run spec (model.name: dae)")
SetOpt = set_option("model.sigma=0.5")

NOISE = "Noise"
FLAGS = FlagTable(
    noise="model.noise",
    sigma="model.sigma",
    p="model.p",
    salt="model.salt",
    channels="model.channels",
    latent_dim="model.latent_dim",
    epochs="train.epochs",
    batch_size="train.batch_size",
    lr="train.lr",
    device="train.device",
    track="train.track",
    mlflow_uri="train.mlflow_uri",
    seed="train.seed",
    dataset="data.dataset",
    image_size="data.image_size",
    color="data.color",
    limit="data.limit",
    data_dir="data.data_dir",
)


def denoise(
    files: Annotated[
        Optional[list[str]],
        typer.Argument(
            metavar="FILES",
            help="More files for --input (what a shell glob like scans/*.png expands to).",
            show_default=False,
        ),
    ] = None,
    noise: Annotated[
        Optional[str],
        typer.Option(
            help="Training noise: none | gaussian | saltpepper | both | mix (default mix: per image one of none/gaussian/s&p/both).",
            rich_help_panel=NOISE,
        ),
    ] = None,
    sigma: Annotated[
        Optional[float],
        typer.Option(
            help="Gaussian std in normalised units (default 1.0 = one std of the data's pixels: 0.3081 on MNIST).",
            rich_help_panel=NOISE,
        ),
    ] = None,
    p: Annotated[
        Optional[float],
        typer.Option(
            "--p",
            help="Salt-and-pepper: share of pixels replaced (default 0.2).",
            rich_help_panel=NOISE,
        ),
    ] = None,
    salt: Annotated[
        Optional[float],
        typer.Option(
            help="Salt-and-pepper: chance a replaced pixel is white (default 0.5).",
            rich_help_panel=NOISE,
        ),
    ] = None,
    epochs: Annotated[
        Optional[int], typer.Option(help="Epochs (default 20).", rich_help_panel="Training")
    ] = None,
    batch_size: Annotated[
        Optional[int], typer.Option(help="Batch size (default 128).", rich_help_panel="Training")
    ] = None,
    lr: Annotated[
        Optional[float],
        typer.Option(
            help="Learning rate (default the report's 0.002218).", rich_help_panel="Training"
        ),
    ] = None,
    channels: ChannelsOpt = None,
    latent_dim: LatentDimOpt = None,
    like: Annotated[
        Optional[Path],
        typer.Option(
            help="Copy channels and latent_dim from this AE run.", rich_help_panel="Model"
        ),
    ] = None,
    config: ConfigOpt = None,
    set_: SetOpt = None,
    dataset: DatasetOpt = None,
    image_size: ImageSizeOpt = None,
    color: ColorOpt = None,
    limit: LimitOpt = None,
    resume: Annotated[
        Optional[Path],
        typer.Option(
            help="Continue this DAE run from weights/last.pt (up to --epochs), then evaluate it."
        ),
    ] = None,
    eval_: Annotated[
        Optional[Path],
        typer.Option(
            "--eval",
            help="Only evaluate this DAE run (no training); --sigma/--p/--salt change the test noise.",
        ),
    ] = None,
    compare: Annotated[
        Optional[Path], typer.Option(help="A plain AE run to score on the same noisy inputs.")
    ] = None,
    input_: Annotated[
        Optional[str],
        typer.Option(
            "--input",
            help="Clean these image files (files, folders or patterns) with a DAE; needs --out.",
            rich_help_panel="Your images",
        ),
    ] = None,
    run: Annotated[
        Optional[Path],
        typer.Option(
            help="The DAE run --input uses (default: the newest under runs/denoise/).",
            rich_help_panel="Your images",
        ),
    ] = None,
    keep_size: Annotated[
        bool,
        typer.Option(
            "--keep-size",
            help="Scale outputs back to each input's size (default: the run's image size).",
            rich_help_panel="Your images",
        ),
    ] = False,
    overwrite: Annotated[
        bool,
        typer.Option(
            "--overwrite",
            help="With --input: replace cleaned images already in --out (default: refuse).",
            rich_help_panel="Your images",
        ),
    ] = False,
    out: Annotated[
        Optional[Path],
        typer.Option(
            "--out",
            help="Runs root (default runs); with --input, the folder for the cleaned PNGs.",
            rich_help_panel="Run",
        ),
    ] = None,
    name: Annotated[
        Optional[str],
        typer.Option(
            help="Run name (auto-incremented if taken). Default: dae.", rich_help_panel="Run"
        ),
    ] = None,
    data_dir: DataDirOpt = None,
    device: DeviceOpt = None,
    devices: DevicesOpt = None,
    port: PortOpt = None,
    track: TrackOpt = None,
    mlflow_uri: MlflowUriOpt = None,
    seed: SeedOpt = None,  # with --eval: the seed of the test noise
    quiet: QuietOpt = False,
) -> None:
    """Train a denoising AE and measure it in PSNR/SSIM (runs/denoise/<name>/), evaluate one, or clean your images."""
    everything = dict(locals())
    setup(quiet)
    if devices and (eval_ or input_):
        raise error("--devices trains on several ranks; --eval and --input run in one process", 2)
    if launch_ranks(devices, device, port, "denoise"):
        return
    with friendly_errors():
        from udlcli.errors import SpecError
        from udlcli.tasks import denoise as engine

        given = dict(
            noise=noise,
            sigma=sigma,
            p=p,
            salt=salt,
            epochs=epochs,
            batch_size=batch_size,
            lr=lr,
            channels=channels,
            image_size=image_size,
            color=color,
            latent_dim=latent_dim,
            like=like,
            config=config,
            set=set_,
            dataset=dataset,
            limit=limit,
            name=name,
            resume=resume,
        )
        if files and input_ is None:
            raise SpecError(
                f"unexpected argument {files[0]!r}; to clean image files use --input FILES... --out DIR"
            )
        if input_ is not None:
            _refuse({**given, "eval": eval_, "compare": compare, "seed": seed}, "--input")
            if out is None:
                raise SpecError(
                    "--input needs --out DIR, a folder for the cleaned images (not the inputs' folder)"
                )
            result = engine.clean_images(
                [input_, *(files or [])], out, run=run, keep_size=keep_size, overwrite=overwrite
            )
            return _report_clean(result)
        if run is not None or keep_size or overwrite:
            raise SpecError("--run, --keep-size and --overwrite go with --input")
        root = out or Path("runs")
        if resume is not None:
            FLAGS.refuse_on_resume(
                everything, like=like, config=config, set=set_, name=name, eval=eval_
            )
            result = engine.resume_and_evaluate(
                resume, epochs=epochs, device=device, compare=compare, root=root
            )
        elif eval_ is not None:
            _refuse({k: v for k, v in given.items() if k not in ("sigma", "p", "salt")}, "--eval")
            overrides = {
                k: v for k, v in dict(sigma=sigma, p=p, salt=salt).items() if v is not None
            }
            result = engine.evaluate_run(
                eval_,
                compare,
                overrides,
                seed,
                device,
                str(data_dir) if data_dir else None,
                root=root,
            )
        else:
            from udlcli.core.lifecycle import RunOptions

            spec = engine.denoise_spec(
                str(config) if config else None, FLAGS.flags(everything), set_, like, root=root
            )
            result = engine.train_and_evaluate(
                spec, RunOptions(out=root, name=name or "dae", command=command_line()), compare
            )
    _report_eval(result)


def _refuse(given: dict, mode: str) -> None:
    from udlcli.errors import SpecError

    bad = [k for k, v in given.items() if v not in (None, [], False)]
    if bad:
        raise SpecError(
            f"{mode} does not train, so --{', --'.join(k.replace('_', '-') for k in bad)} do(es) not apply; drop them"
        )


def _fmt(v, digits: int) -> str:
    return "inf" if v is None else f"{v:.{digits}f}"


def _report_eval(result) -> None:
    from rich.table import Table

    t = result.table
    has_ae = t["compare"] is not None
    tab = Table(
        title=f"{result.run_dir}: mean over {t['test_images']:,} {t['dataset']} test images (PSNR in dB, SSIM)",
        title_justify="left",
    )
    tab.add_column("noise", no_wrap=True)
    for col in ["noisy PSNR", "SSIM", "DAE PSNR", "SSIM", "gain dB"] + (
        ["AE PSNR", "SSIM"] if has_ae else []
    ):
        tab.add_column(col, justify="right")
    from udlcli.tasks.denoise.labels import KIND_LABELS

    for kind, row in t["rows"].items():
        cells = [
            KIND_LABELS[kind],
            _fmt(row["noisy"]["psnr"], 2),
            _fmt(row["noisy"]["ssim"], 3),
            _fmt(row["dae"]["psnr"], 2),
            _fmt(row["dae"]["ssim"], 3),
            f"{row['gain_db']:+.2f}" if "gain_db" in row else "-",
        ]
        if has_ae:
            cells += [_fmt(row["ae"]["psnr"], 2), _fmt(row["ae"]["ssim"], 3)]
        tab.add_row(*cells)
    ui.print_table(tab)
    n = t["noise"]
    ui.console.print(
        f"noise: gaussian sigma {n['sigma']:g} (normalised) = {t['sigma_pixels']:.4f} (pixels); salt-and-pepper p {n['p']:g}, salt {n['salt']:g}; seed {t['seed']}"
    )
    if result.train_summary:
        s = result.train_summary
        ui.console.print(
            f"trained {s['epochs']} epochs (best {s['best_epoch']}) in {s['wall_time_s']:.1f} s; test MSE on clean inputs {s['test_mse']:.5f}"
        )
    ui.console.print(
        f"summary: {result.run_dir / 'summary.json'}; figures: {', '.join(str(f) for f in result.figures)}"
    )


def _report_clean(result) -> None:
    for note in result.notes:
        ui.console.print(f"note: {note}")
    ui.console.print(f"cleaned {len(result.written)} image(s) with {result.run_dir}:")
    for f in result.written:
        ui.console.print(f"  {f}")
