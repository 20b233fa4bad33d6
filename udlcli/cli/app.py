"""The `udl` Typer app: registers each command group's module; nothing here imports torch."""

from __future__ import annotations

import os
import sys
from typing import Annotated, Optional

import typer
from typer.core import TyperGroup

from udlcli import __version__
from udlcli.cli import data as data_cmd
from udlcli.cli import denoise as denoise_cmd
from udlcli.cli import embed as embed_cmd
from udlcli.cli import evaluate as evaluate_cmd
from udlcli.cli import export as export_cmd
from udlcli.cli import finetune as finetune_cmd
from udlcli.cli import gan as gan_cmd
from udlcli.cli import helptext
from udlcli.cli import probe as probe_cmd
from udlcli.cli import reproduce as reproduce_cmd
from udlcli.cli import runs as runs_cmd
from udlcli.cli import sample as sample_cmd
from udlcli.cli import train as train_cmd
from udlcli.cli import tune as tune_cmd

helptext.install()

# click's own base of every command-line mistake (a bad value, a missing argument, an unknown option).
_UsageError = typer.BadParameter.__bases__[0]


class UdlGroup(TyperGroup):
    """The `udl` group: a command-line mistake is one `error:` line, like every other mistake, not click's usage block."""

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        try:
            rv = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except _UsageError as e:
            if (
                type(e).__name__ == "NoArgsIsHelpError"
            ):  # `udl` or `udl tune` alone: show the help, as click does
                e.show()
                sys.exit(e.exit_code)
            from udlcli.cli.common import error

            where = e.ctx.command_path if e.ctx is not None else "udl"
            msg = " ".join(e.format_message().replace("Value error, ", "").split())
            raise SystemExit(error(f"{msg} (see {where} --help)", e.exit_code).exit_code) from None
        except typer.Abort:
            sys.exit(1)
        sys.exit(rv if isinstance(rv, int) else 0)


app = typer.Typer(
    name="udl",
    cls=UdlGroup,
    # Written out, not built from udlcli.models' registry: that imports torch, seconds for every
    # `udl --help`. tests/test_docs.py checks that it names every family udl ships.
    help="Unsupervised deep learning on image data from one command line: autoencoders (ae, dae), "
    "VAEs (vae), GANs (gan), diffusion and flow matching (ddpm, flow), self-supervised learning "
    "(simclr, byol) and classifiers (classifier, lenet).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # plain click help: rich's help renderer imports markdown + pygments (~0.35 s)
    context_settings={"help_option_names": ["-h", "--help"]},
)

# In the order of the report's workflow, which is also the order `udl --help` lists them.
# In the order of the report's workflow, which is also the order `udl --help` lists them. The short
# help is what `udl --help` shows: it fits an 80-column terminal whole.
app.command(
    "train",
    no_args_is_help=False,
    short_help="Train a model (ae, vae, gan, ...) into a browsable run folder.",
)(train_cmd.train)
app.command("tune", short_help="Search hyperparameters with optuna (TPE and pruning).")(
    tune_cmd.tune
)
app.command("embed", short_help="Map a latent space to 2-D (PCA, t-SNE) and score it.")(
    embed_cmd.embed
)
app.command("sample", short_help="Draw samples from a trained model that generates.")(
    sample_cmd.sample
)
app.command("finetune", short_help="Train a classifier on an encoder's features; --predict.")(
    finetune_cmd.finetune
)
app.command("probe", short_help="Linear-probe and kNN accuracy of a run's frozen features.")(
    probe_cmd.probe
)
app.command(
    "denoise",
    no_args_is_help=False,
    short_help="Train a denoising AE, score it (PSNR/SSIM), clean images.",
)(denoise_cmd.denoise)
app.command("gan", no_args_is_help=False, short_help="Train the report's GAN: udl train gan.")(
    gan_cmd.gan
)
app.command(
    "evaluate",
    no_args_is_help=True,
    short_help="Score samples: FID, precision/recall, IS, class balance.",
)(evaluate_cmd.evaluate)
app.command(
    "reproduce",
    no_args_is_help=False,
    short_help="Run the report's whole study and write its report.",
)(reproduce_cmd.reproduce)

app.add_typer(runs_cmd.app, name="runs", short_help="List the runs under runs/ and compare them.")
app.add_typer(data_cmd.app, name="data", short_help="List, fetch, verify and locate the datasets.")
app.command("export", short_help="Export a model: safetensors or ONNX, with a model card.")(
    export_cmd.export
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"udl {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    ctx: typer.Context,
    version: Annotated[
        Optional[bool],
        typer.Option(
            "--version", callback=_version, is_eager=True, help="Show the version and exit."
        ),
    ] = None,
) -> None:
    """udl: unsupervised deep learning on image data."""
    # torchrun's environment, read without importing torch (help and errors stay fast)
    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and ctx.invoked_subcommand not in RANKED:
        from udlcli.cli.common import error

        raise error(
            f"udl {ctx.invoked_subcommand} runs in one process; torchrun (or --devices) is for "
            f"{', '.join(RANKED)} (udl tune spreads trials with --n-jobs instead)",
            2,
        )


RANKED = ("train", "denoise", "finetune", "gan")
"""The commands that train data-parallel as ranks of a torchrun job."""


def main() -> None:
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        app()
        return
    from udlcli.core import distributed

    try:  # one rank of several: its exit leaves the process group first (distributed.exit_rank)
        app()
        code = 0
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    distributed.exit_rank(code)
