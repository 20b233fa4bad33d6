"""`udl sample KIND [RUN]`: parse options, call the sampling engine, print what it wrote."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from udlcli import ui
from udlcli.cli.common import (
    DataDirOpt,
    DeviceOpt,
    QuietReadOpt,
    RootOpt,
    SeedOpt,
    command_line,
    friendly_errors,
    setup,
)
from udlcli.cli.sampling import ClassOpt, GuidanceOpt, SamplerOpt, StepsOpt


def sample(
    kind: Annotated[
        str,
        typer.Argument(
            metavar="KIND",
            help="The model family of the run: ae (a Gaussian fitted to the AE's latent codes), vae (the VAE's prior), gan (the generator), or any family that generates.",
            show_default=False,
        ),
    ],
    run: Annotated[
        Optional[Path],
        typer.Argument(
            metavar="RUN",
            help="Run folder or checkpoint. Default: the newest run of KIND.",
            show_default=False,
        ),
    ] = None,
    n: Annotated[Optional[int], typer.Option("--n", help="Number of samples (default 64).")] = None,
    gmm: Annotated[
        Optional[int],
        typer.Option(
            "--gmm",
            help="ae: fit a K-component Gaussian mixture instead of one Gaussian.",
            rich_help_panel="AE",
        ),
    ] = None,
    steps: StepsOpt = None,
    sampler: SamplerOpt = None,
    class_: ClassOpt = None,
    guidance: GuidanceOpt = None,
    interpolate: Annotated[
        Optional[str],
        typer.Option(
            "--interpolate",
            help="Autoencoders: walk between a test image of class A and one of class B: A,B.",
            rich_help_panel="AE",
        ),
    ] = None,
    interpolate_index: Annotated[
        Optional[str],
        typer.Option(
            "--interpolate-index",
            help="Autoencoders: walk between test images i and j: i,j.",
            rich_help_panel="AE",
        ),
    ] = None,
    grid: Annotated[
        bool,
        typer.Option(
            "--grid",
            help="Models with a N(0, I) prior (vae): decode a K x K traversal of two latent dimensions (the report's Fig. 6).",
            rich_help_panel="VAE",
        ),
    ] = False,
    size: Annotated[
        Optional[int],
        typer.Option(
            "--size", help="vae --grid: values per axis, K (default 15).", rich_help_panel="VAE"
        ),
    ] = None,
    dims: Annotated[
        Optional[str],
        typer.Option(
            "--dims",
            help="vae --grid: the two latent dimensions i,j (default 0,1).",
            rich_help_panel="VAE",
        ),
    ] = None,
    range_: Annotated[
        Optional[float],
        typer.Option(
            "--range",
            help="vae --grid: values evenly spaced over -r..r (default: N(0,1) quantiles of 0.05..0.95).",
            rich_help_panel="VAE",
        ),
    ] = None,
    anchor: Annotated[
        Optional[int],
        typer.Option(
            "--anchor",
            help="vae --grid: hold the other dimensions at this test image's mu (default 0).",
            rich_help_panel="VAE",
        ),
    ] = None,
    individual: Annotated[
        bool,
        typer.Option(
            "--individual",
            help="One PNG per sample (at the run's image size) instead of a grid.",
        ),
    ] = False,
    to: Annotated[
        Optional[Path],
        typer.Option(
            "--to",
            help="With --individual: the folder for the PNGs (default RUN/samples/KIND_individual_seedS/).",
        ),
    ] = None,
    out: RootOpt = Path("runs"),
    data_dir: DataDirOpt = None,
    device: DeviceOpt = None,
    seed: SeedOpt = None,
    quiet: QuietReadOpt = False,
) -> None:
    """Decode samples of a trained generative model into RUN/samples/ (a grid, or an interpolation strip)."""
    setup(quiet)
    with friendly_errors():
        from udlcli.tasks.sample import sample as engine

        # A family's own sampling options reach its sampler only when given; one it does not
        # take is refused in one line (core/generate.py).
        result = engine(
            kind,
            run=run,
            root=out,
            seed=0 if seed is None else seed,
            data_dir=data_dir,
            device=device,
            command=command_line(),
            n=n,
            individual=individual,
            to=to,
            interpolate=interpolate,
            interpolate_index=interpolate_index,
            grid=grid,
            size=size,
            dims=dims,
            range_=range_,
            anchor=anchor,
            options={
                "gmm": gmm,
                "steps": steps,
                "sampler": sampler,
                "class_": class_,
                "guidance": guidance,
            },
        )
    _report(result)


def _report(result) -> None:
    from rich.table import Table

    t = Table(title=str(result.run_dir), show_header=False, title_justify="left")
    for k, v in result.rows.items():
        t.add_row(k, v)
    for f in result.files:
        t.add_row("wrote", str(f))
    ui.print_table(t)
