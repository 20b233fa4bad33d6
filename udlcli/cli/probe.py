"""`udl probe [RUN]`: parse options, probe the run's frozen features, print the two accuracies."""

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
    command_line,
    friendly_errors,
    setup,
)


def probe(
    run: Annotated[
        Optional[Path],
        typer.Argument(
            metavar="RUN",
            help="A run that encodes images (ae, vae, simclr, byol, ...). Default: the newest such run.",
            show_default=False,
        ),
    ] = None,
    features: Annotated[
        Optional[str],
        typer.Option(
            "--features",
            metavar="LAYER",
            help="The layer to probe (an AE's latent, hidden, conv; SimCLR's backbone, projection). Default: the run's first.",
        ),
    ] = None,
    k: Annotated[int, typer.Option("--k", help="Neighbours of the kNN vote.")] = 200,
    out: RootOpt = Path("runs"),
    data_dir: DataDirOpt = None,
    device: DeviceOpt = None,
    quiet: QuietReadOpt = False,
) -> None:
    """Linear-probe and kNN accuracy of a run's frozen features on the test split (RUN/probe.json)."""
    setup(quiet)
    with friendly_errors():
        from udlcli.tasks.probe import probe as engine

        r = engine(run, out, features, k, data_dir, device, command_line())
    n = r.numbers
    ui.console.print(
        f"{r.run_dir}: {n['features']} features ({n['width']:,}) of {n['dataset']}: linear probe "
        f"[bold]{n['linear_probe']:.2%}[/], {k}-NN [bold]{n[f'knn{k}_cosine']:.2%}[/] test accuracy "
        f"({n['train_images']:,} train / {n['test_images']:,} test images)"
    )
    ui.info(f"wrote {r.file}")
