"""`udl sample KIND [RUN]`: parse options, dispatch to the engine sampler of KIND, print what it wrote."""

from __future__ import annotations

import inspect
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


def sample(
    kind: Annotated[
        str,
        typer.Argument(
            metavar="KIND",
            help="What to sample from: ae (a Gaussian fitted to the AE's latent codes), vae (the VAE's prior), gan (the GAN's generator).",
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
    interpolate: Annotated[
        Optional[str],
        typer.Option(
            "--interpolate",
            help="ae, vae: walk between a test image of class A and one of class B: A,B.",
            rich_help_panel="AE",
        ),
    ] = None,
    interpolate_index: Annotated[
        Optional[str],
        typer.Option(
            "--interpolate-index",
            help="ae, vae: walk between test images i and j: i,j.",
            rich_help_panel="AE",
        ),
    ] = None,
    grid: Annotated[
        bool,
        typer.Option(
            "--grid",
            help="vae: decode a K x K traversal of two latent dimensions (the report's Fig. 6).",
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
            help="gan: one PNG per sample (at the run's image size) instead of a grid.",
            rich_help_panel="GAN",
        ),
    ] = False,
    to: Annotated[
        Optional[Path],
        typer.Option(
            "--to",
            help="gan --individual: the folder for the PNGs (default RUN/samples/gan_individual_seedS/).",
            rich_help_panel="GAN",
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
        from udlcli.errors import SpecError
        from udlcli.tasks.sample import sampler

        fn = sampler(kind)
        # Options that only some kinds take are passed only when given, and refused by a kind that does not take them.
        given = {
            k: v
            for k, v in dict(
                n=n,
                gmm=gmm,
                interpolate=interpolate,
                interpolate_index=interpolate_index,
                grid=grid or None,
                size=size,
                dims=dims,
                range_=range_,
                anchor=anchor,
            ).items()
            if v is not None
        }
        given.update(
            {k: v for k, v in dict(individual=individual or None, to=to).items() if v is not None}
        )
        accepted = inspect.signature(fn).parameters
        for k in given:
            if k not in accepted:
                raise SpecError(
                    f"--{k.strip('_').replace('_', '-')} does not apply to udl sample {kind}"
                )
        result = fn(
            run=run,
            root=out,
            seed=0 if seed is None else seed,
            data_dir=data_dir,
            device=device,
            command=command_line(),
            **given,
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
