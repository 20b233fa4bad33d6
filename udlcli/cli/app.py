"""The `udl` Typer app: registers each command group's module; nothing here imports torch."""

from __future__ import annotations

from typing import Optional

import typer
from typing_extensions import Annotated

from udlcli import __version__
from udlcli.cli import denoise as denoise_cmd
from udlcli.cli import embed as embed_cmd
from udlcli.cli import evaluate as evaluate_cmd
from udlcli.cli import finetune as finetune_cmd
from udlcli.cli import gan as gan_cmd
from udlcli.cli import reproduce as reproduce_cmd
from udlcli.cli import sample as sample_cmd
from udlcli.cli import train as train_cmd
from udlcli.cli import tune as tune_cmd

app = typer.Typer(
    name="udl",
    help="Unsupervised deep learning on image data: autoencoders, latent spaces, denoising, VAEs and GANs from one command line.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # plain click help: rich's help renderer imports markdown + pygments (~0.35 s)
    context_settings={"help_option_names": ["-h", "--help"]},
)

# In the order of the report's workflow, which is also the order `udl --help` lists them.
app.command("train", no_args_is_help=False)(train_cmd.train)
app.command("tune")(tune_cmd.tune)
app.command("embed")(embed_cmd.embed)
app.command("sample")(sample_cmd.sample)
app.command("finetune")(finetune_cmd.finetune)
app.command("denoise", no_args_is_help=False)(denoise_cmd.denoise)
app.command("gan", no_args_is_help=False)(gan_cmd.gan)
app.command("evaluate", no_args_is_help=True)(evaluate_cmd.evaluate)
app.command("reproduce", no_args_is_help=False)(reproduce_cmd.reproduce)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"udl {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[Optional[bool], typer.Option("--version", callback=_version, is_eager=True, help="Show the version and exit.")] = None,
) -> None:
    """udl: unsupervised deep learning on image data."""


def main() -> None:
    app()
