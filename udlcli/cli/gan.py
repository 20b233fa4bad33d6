"""`udl gan`: parse options, resolve the GAN spec, call the engine, print the result."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from udlcli import ui
from udlcli.cli.common import (
    ColorOpt,
    DataDirOpt,
    DatasetOpt,
    DeviceOpt,
    DevicesOpt,
    FlagTable,
    ImageSizeOpt,
    LimitOpt,
    MlflowUriOpt,
    NameOpt,
    OutOpt,
    PortOpt,
    QuietOpt,
    SeedOpt,
    TrackOpt,
    command_line,
    config_option,
    friendly_errors,
    launch_ranks,
    set_option,
    setup,
)

ConfigOpt = config_option("spec with model:/data:/train:/checks: sections")
SetOpt = set_option("train.label_smoothing=0.1")

FLAGS = FlagTable(
    epochs="train.epochs",
    batch_size="train.batch_size",
    lr="train.lr",
    d_steps="train.d_steps",
    label_smoothing="train.label_smoothing",
    device="train.device",
    track="train.track",
    mlflow_uri="train.mlflow_uri",
    seed="train.seed",
    arch="model.arch",
    noise_dim="model.noise_dim",
    dataset="data.dataset",
    image_size="data.image_size",
    color="data.color",
    limit="data.limit",
    data_dir="data.data_dir",
)


def gan(
    config: ConfigOpt = None,
    set_: SetOpt = None,
    epochs: Annotated[
        Optional[int],
        typer.Option(
            help="Epochs (default 60; with --resume: the new total).", rich_help_panel="Training"
        ),
    ] = None,
    batch_size: Annotated[
        Optional[int], typer.Option(help="Batch size (default 128).", rich_help_panel="Training")
    ] = None,
    lr: Annotated[
        Optional[float],
        typer.Option(
            help="Adam learning rate of G and D (default 2e-4, betas 0.5, 0.999).",
            rich_help_panel="Training",
        ),
    ] = None,
    d_steps: Annotated[
        Optional[int],
        typer.Option(
            help="Discriminator steps per generator step (default 1).", rich_help_panel="Training"
        ),
    ] = None,
    label_smoothing: Annotated[
        Optional[float],
        typer.Option(
            help="One-sided label smoothing: D's real target is 1 - this (default 0).",
            rich_help_panel="Training",
        ),
    ] = None,
    arch: Annotated[
        Optional[str],
        typer.Option(
            help="mlp (the report's GAN, default) | dcgan (small convolutional GAN).",
            rich_help_panel="Model",
        ),
    ] = None,
    noise_dim: Annotated[
        Optional[int],
        typer.Option(help="Size of the noise vector z (default 64).", rich_help_panel="Model"),
    ] = None,
    dataset: DatasetOpt = None,
    image_size: ImageSizeOpt = None,
    color: ColorOpt = None,
    limit: LimitOpt = None,
    resume: Annotated[
        Optional[Path],
        typer.Option(help="Continue the GAN run in this folder from weights/last.pt."),
    ] = None,
    print_spec: Annotated[
        bool, typer.Option("--print-spec", help="Print the resolved spec as YAML and exit.")
    ] = False,
    out: OutOpt = Path("runs"),
    name: NameOpt = None,
    data_dir: DataDirOpt = None,
    device: DeviceOpt = None,
    devices: DevicesOpt = None,
    port: PortOpt = None,
    track: TrackOpt = None,
    mlflow_uri: MlflowUriOpt = None,
    seed: SeedOpt = None,
    quiet: QuietOpt = False,
) -> None:
    """Train the report's GAN and write runs/gan/<name>/ (samples/progress.gif, figures/losses.png, summary.json)."""
    given = dict(locals())
    setup(quiet)
    if launch_ranks(devices, device, port, "gan"):
        return
    with friendly_errors():
        from udlcli.core.lifecycle import RunOptions
        from udlcli.tasks import gan as engine

        if resume is not None:
            FLAGS.refuse_on_resume(given, config=config, set=set_, name=name)
            result = engine.resume_gan(resume, epochs=epochs, device=device)
        else:
            spec = engine.resolve_gan_spec(
                str(config) if config else None, FLAGS.flags(given), set_
            )
            if print_spec:
                from udlcli.config import dump_yaml

                ui.plain(dump_yaml(engine.spec_dict(spec)))
                return
            result = engine.train_gan(spec, RunOptions(out=out, name=name, command=command_line()))
    _report(result)


def _report(result) -> None:
    from rich.table import Table

    s = result.summary
    t = Table(title=f"{result.run_dir}", show_header=False, title_justify="left")
    t.add_row("epochs", f"{s['epochs']} ({s['arch']})")
    f = s["final"]
    t.add_row(
        "last epoch",
        f"D loss {f['d_loss']:.3f}  G loss {f['g_loss']:.3f}  D(x) {f['d_real']:.2f}  D(G(z)) {f['d_fake']:.2f}",
    )
    t.add_row(
        "sample diversity",
        f"{f['diversity']:.2f}x that of real images (mean pairwise distance of the fixed batch)",
    )
    t.add_row(
        "failure",
        ", ".join(s["failures"]) + " (see the warning above)"
        if s["failure_detected"]
        else "none detected",
    )
    t.add_row("dataset", f"{s['dataset']['name']} ({s['dataset']['train_size']:,} train)")
    t.add_row("device", s["device"])
    t.add_row("time", f"{s['wall_time_s']:.1f} s ({s['images_per_s']:,.0f} img/s)")
    t.add_row(
        "figures",
        f"{result.run_dir / 'figures' / 'losses.png'}, {result.run_dir / 'samples' / 'progress.gif'}",
    )
    ui.print_table(t)
