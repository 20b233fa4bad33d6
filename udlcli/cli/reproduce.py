"""`udl reproduce [STUDY]`: parse options, run the study's steps through the engine, print where the report is."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from udlcli import ui
from udlcli.cli.common import (
    DataDirOpt,
    DeviceOpt,
    MlflowUriOpt,
    NameOpt,
    OutOpt,
    QuietOpt,
    SeedOpt,
    TrackOpt,
    command_line,
    friendly_errors,
    setup,
)


def reproduce(
    study: Annotated[
        Optional[Path],
        typer.Argument(
            metavar="STUDY",
            help="Study YAML with steps: and profiles:. Default: examples/report.yaml.",
            show_default=False,
        ),
    ] = None,
    packaged: Annotated[
        Optional[str],
        typer.Option(
            "--study",
            "-s",
            metavar="NAME",
            help="A study shipped with udl instead of a file: report (the default) | families (every family on MNIST, Fashion-MNIST and CIFAR-10).",
            show_default=False,
        ),
    ] = None,
    profile: Annotated[
        Optional[str],
        typer.Option(
            "--profile",
            "-p",
            help="Budget profile of the study: quick (default, CPU-friendly) | full (the study's own budgets: the report's, or each family's defaults).",
        ),
    ] = None,
    resume: Annotated[
        Optional[Path],
        typer.Option(
            "--resume",
            help="Continue this report folder (runs/report/<name>), skipping finished steps.",
        ),
    ] = None,
    only: Annotated[
        Optional[list[str]],
        typer.Option(
            "--only", help="Rerun just this step (repeatable); its inputs must have finished."
        ),
    ] = None,
    from_: Annotated[
        Optional[str], typer.Option("--from", help="Rerun this step and every step after it.")
    ] = None,
    out: OutOpt = Path("runs"),
    name: NameOpt = None,
    data_dir: DataDirOpt = None,
    device: DeviceOpt = None,
    track: TrackOpt = None,
    mlflow_uri: MlflowUriOpt = None,
    seed: SeedOpt = None,
    quiet: QuietOpt = False,
) -> None:
    """Run a study: by default the whole report (tune, train, embed, sample, finetune, denoise, VAE, GAN, evaluate); write report.md and report.html."""
    setup(quiet)
    with friendly_errors():
        from udlcli.tasks.reproduce.run import reproduce as engine

        result = engine(
            study,
            profile,
            out,
            name,
            resume,
            only,
            from_,
            device,
            seed,
            data_dir,
            command_line(),
            track=track,
            mlflow_uri=mlflow_uri,
            packaged=packaged,
        )
    ui.console.print(
        f"ran {len(result.ran)} step(s); report: {result.files[0]} and {result.files[1]}",
        soft_wrap=True,
    )
