"""`udl train [MODEL]`: parse options, resolve the spec, call the engine, print the result."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from udlcli import ui
from udlcli.cli.common import (
    ChannelsOpt,
    ColorOpt,
    CompileOpt,
    DataDirOpt,
    DatasetOpt,
    DeviceOpt,
    DevicesOpt,
    FlagTable,
    ImageSizeOpt,
    LatentDimOpt,
    LimitOpt,
    MlflowUriOpt,
    NameOpt,
    OutOpt,
    PortOpt,
    PrecisionOpt,
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

ConfigOpt = config_option("run spec with data:/model:/train: sections")
SetOpt = set_option("train.lr=1e-3")

MODELS_HELP = (
    "Model family to train (`udl train --list` names them all): ae (the report's conv autoencoder), "
    "vae, gan, ... Default: model.name of --config, else ae."
)
FLAGS = FlagTable(
    epochs="train.epochs",
    batch_size="train.batch_size",
    lr="train.lr",
    weight_decay="train.weight_decay",
    optimizer="train.optimizer",
    device="train.device",
    track="train.track",
    mlflow_uri="train.mlflow_uri",
    precision="train.precision",
    compile="train.compile",
    seed="train.seed",
    channels="model.channels",
    latent_dim="model.latent_dim",
    beta="model.beta",
    recon="model.recon",
    arch="model.arch",
    noise_dim="model.noise_dim",
    d_steps="train.d_steps",
    label_smoothing="train.label_smoothing",
    conditional="model.conditional",
    dataset="data.dataset",
    image_size="data.image_size",
    color="data.color",
    limit="data.limit",
    data_dir="data.data_dir",
)


def train(
    model: Annotated[
        Optional[str], typer.Argument(metavar="MODEL", help=MODELS_HELP, show_default=False)
    ] = None,
    config: ConfigOpt = None,
    set_: SetOpt = None,
    epochs: Annotated[
        Optional[int],
        typer.Option(
            help="Epochs (the family's default: AE 40, GAN 60; with --resume: the new total).",
            rich_help_panel="Training",
        ),
    ] = None,
    batch_size: Annotated[
        Optional[int],
        typer.Option(
            help="Batch size, global over ranks (AE default 64).", rich_help_panel="Training"
        ),
    ] = None,
    lr: Annotated[
        Optional[float],
        typer.Option(
            help="Learning rate (AE default: the report's 0.002218; GAN 2e-4).",
            rich_help_panel="Training",
        ),
    ] = None,
    weight_decay: Annotated[
        Optional[float],
        typer.Option(help="Weight decay (AE default 1.01e-5).", rich_help_panel="Training"),
    ] = None,
    optimizer: Annotated[
        Optional[str],
        typer.Option(help="adam | adamw | sgd | rmsprop.", rich_help_panel="Training"),
    ] = None,
    channels: ChannelsOpt = None,
    latent_dim: LatentDimOpt = None,
    beta: Annotated[
        Optional[float],
        typer.Option(
            help="vae: weight of the KL term, >= 0 (default 1: the ELBO).", rich_help_panel="Model"
        ),
    ] = None,
    recon: Annotated[
        Optional[str],
        typer.Option(
            help="vae: reconstruction term, mse (the report's) | bce (default).",
            rich_help_panel="Model",
        ),
    ] = None,
    arch: Annotated[
        Optional[str],
        typer.Option(
            help="gan: mlp (the report's GAN, default) | dcgan (convolutional).",
            rich_help_panel="Model",
        ),
    ] = None,
    noise_dim: Annotated[
        Optional[int],
        typer.Option(help="gan: size of the noise vector z (default 64).", rich_help_panel="Model"),
    ] = None,
    d_steps: Annotated[
        Optional[int],
        typer.Option(
            help="gan: discriminator steps per generator step (default 1).",
            rich_help_panel="Training",
        ),
    ] = None,
    label_smoothing: Annotated[
        Optional[float],
        typer.Option(
            help="gan: one-sided label smoothing, D's real target is 1 - this (default 0).",
            rich_help_panel="Training",
        ),
    ] = None,
    conditional: Annotated[
        Optional[bool],
        typer.Option(
            "--conditional/--unconditional",
            help="ddpm, flow: learn each class too, with label dropout, for `udl sample --class K --guidance W` (default: unconditional).",
            rich_help_panel="Model",
            show_default=False,
        ),
    ] = None,
    dataset: DatasetOpt = None,
    image_size: ImageSizeOpt = None,
    color: ColorOpt = None,
    limit: LimitOpt = None,
    resume: Annotated[
        Optional[Path], typer.Option(help="Continue the run in this folder from weights/last.pt.")
    ] = None,
    print_spec: Annotated[
        bool, typer.Option("--print-spec", help="Print the resolved spec as YAML and exit.")
    ] = False,
    list_: Annotated[
        bool,
        typer.Option(
            "--list", help="List the model families (plug-ins included) and what each can do."
        ),
    ] = False,
    out: OutOpt = Path("runs"),
    name: NameOpt = None,
    data_dir: DataDirOpt = None,
    device: DeviceOpt = None,
    devices: DevicesOpt = None,
    port: PortOpt = None,
    track: TrackOpt = None,
    mlflow_uri: MlflowUriOpt = None,
    precision: PrecisionOpt = None,
    compile: CompileOpt = None,
    seed: SeedOpt = None,
    quiet: QuietOpt = False,
) -> None:
    """Train a model and write runs/<model>/<name>/ (weights, metrics.csv, summary.json, figures/)."""
    _train(**locals())


def _train(model: Optional[str], **given) -> None:
    """The command's body, shared by its aliases (udl gan is udl train gan)."""
    config, set_, resume, print_spec = (
        given[k] for k in ("config", "set_", "resume", "print_spec")
    )
    out, name, device, devices, port = (
        given[k] for k in ("out", "name", "device", "devices", "port")
    )
    epochs = given["epochs"]
    setup(given["quiet"])
    if given.get("list_"):
        return _list()
    if launch_ranks(devices, device, port, "train"):
        return
    with friendly_errors():
        from udlcli.tasks import train as engine

        opts = engine.RunOptions(out=out, name=name, command=command_line())
        if resume is not None:
            FLAGS.refuse_on_resume(given, config=config, set=set_, name=name)
            result = engine.resume(resume, epochs=epochs, device=device, opts=opts, model=model)
        else:
            from udlcli.core.spec import resolve_spec, spec_to_dict

            spec = resolve_spec(model, str(config) if config else None, FLAGS.flags(given), set_)
            if print_spec:
                from udlcli.config import dump_yaml

                ui.plain(dump_yaml(spec_to_dict(spec)))
                return
            result = engine.train(spec, opts)
    _report(result)


def alias(model: str, doc: str):
    """`udl train MODEL` as a command of its own (`udl gan`): the same options, without MODEL."""
    import inspect

    def command(**given) -> None:
        _train(model, **given)

    # Typer reads the options from the signature's annotations: evaluated here, since this module's
    # are strings (from __future__ import annotations).
    sig = inspect.signature(train, eval_str=True)
    command.__signature__ = sig.replace(
        parameters=[p for n, p in sig.parameters.items() if n != "model"]
    )
    command.__doc__ = doc
    command.__name__ = model
    return command


def _list() -> None:
    from rich.table import Table

    from udlcli.core.contracts import ABILITIES
    from udlcli.models import REGISTRY

    t = Table(title="model families (capabilities: udlcli/core/contracts.py)", title_justify="left")
    for col in ("name", "made by", "what it is", "capabilities"):
        t.add_column(col)
    for f in REGISTRY.values():
        can = [p.__name__ for p in ABILITIES if f.can(p)]
        t.add_row(f.name, f.makes(), f.description, ", ".join(can))
    ui.print_table(t)


def _report(result) -> None:
    from rich.table import Table

    s = result.summary
    t = Table(title=f"{result.run_dir}", show_header=False, title_justify="left")
    best = f" (best {s['best_epoch']})" if "best_epoch" in s else ""
    t.add_row("epochs", f"{s['epochs']}{best}" + (f" ({s['arch']})" if "arch" in s else ""))
    if "test_mse" in s:
        t.add_row("test MSE ([0,1] pixels)", f"{s['test_mse']:.5f}")
    for k, v in (s.get("test") or {}).items():
        t.add_row(f"test {k}", f"{v:.5g}")
    f = s.get("final") or {}
    if {"d_loss", "g_loss", "d_real", "d_fake"} <= set(f):
        t.add_row(
            "last epoch",
            f"D loss {f['d_loss']:.3f}  G loss {f['g_loss']:.3f}  D(x) {f['d_real']:.2f}  D(G(z)) {f['d_fake']:.2f}",
        )
    if "diversity" in f:
        t.add_row(
            "sample diversity",
            f"{f['diversity']:.2f}x that of real images (mean pairwise distance of the fixed batch)",
        )
    if "failure_detected" in s:
        found = ", ".join(s["failures"]) + " (see the warning above)"
        t.add_row("failure", found if s["failure_detected"] else "none detected")
    t.add_row(
        "dataset",
        f"{s['dataset']['name']} ({s['dataset']['train_size']:,} train / {s['dataset']['test_size']:,} test)",
    )
    t.add_row("device", s["device"])
    t.add_row("time", f"{s['wall_time_s']:.1f} s ({s['images_per_s']:,.0f} img/s)")
    t.add_row("figures", str(result.run_dir / "figures"))
    ui.print_table(t)
