"""`udl embed [RUN] --method pca|tsne`: parse options, call the engine, print the latent-space scores."""

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


def embed(
    run: Annotated[
        Optional[Path],
        typer.Argument(
            metavar="RUN",
            help="AE or VAE run folder, or checkpoint. Default: the newest AE/VAE run.",
            show_default=False,
        ),
    ] = None,
    method: Annotated[
        str, typer.Option("--method", "-m", help="pca | tsne: how the codes are mapped to 2-D.")
    ] = "tsne",
    n: Annotated[
        Optional[int],
        typer.Option(
            "--n",
            help="Embed N test images (stratified, seeded). Default: the whole test split.",
            show_default=False,
        ),
    ] = None,
    perplexity: Annotated[
        Optional[float],
        typer.Option("--perplexity", help="t-SNE perplexity (default 30).", show_default=False),
    ] = None,
    out: RootOpt = Path("runs"),
    data_dir: DataDirOpt = None,
    device: DeviceOpt = None,
    seed: SeedOpt = None,
    quiet: QuietReadOpt = False,
) -> None:
    """Map the test split's latent codes to 2-D, plot them by label and score the latent space: writes RUN/embed/<method>.png/.csv/.json."""
    setup(quiet)
    with friendly_errors():
        from udlcli.tasks.embed.run import embed as engine_embed

        result = engine_embed(
            run,
            out,
            method=method,
            n=n,
            perplexity=perplexity,
            seed=0 if seed is None else seed,
            data_dir=data_dir,
            device=device,
            command=command_line(),
        )
    _report(result)


def _report(result) -> None:
    from rich.table import Table

    info, m = result.info, result.info["metrics"]
    f = lambda v: "n/a" if v is None else f"{v:.3f}"  # noqa: E731
    t = Table(
        title=f"{result.run_dir}: {info['method']} of {info['n']:,} test codes ({info['latent_dim']}-D)",
        title_justify="left",
    )
    t.add_column("score")
    t.add_column("latent space", justify="right")
    t.add_column("2-D map", justify="right")
    t.add_row("5-NN accuracy (5-fold CV)", f(m["knn5_latent"]), f(m["knn5_map"]))
    t.add_row("silhouette by label", f(m["silhouette_latent"]), f(m["silhouette_map"]))
    t.add_row("trustworthiness (k=10)", "", f(m["trustworthiness_k10"]))
    ui.print_table(t)
    ui.info(f"{info['implementation']}; {info['reduce_time_s']:.1f} s")
    for p in result.files:
        ui.info(f"wrote {p}")
