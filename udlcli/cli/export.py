"""`udl export RUN --format safetensors|onnx`: parse options, call the engine, print what was written."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from udlcli import ui
from udlcli.cli.common import QuietReadOpt, friendly_errors, setup


def export(
    run: Annotated[
        Path, typer.Argument(metavar="RUN", help="A run folder or checkpoint.", show_default=False)
    ],
    format_: Annotated[
        str,
        typer.Option(
            "--format",
            "-f",
            help="safetensors (weights + config.json + README.md model card) | onnx (the same, plus "
            "encoder/decoder, generator or classifier graphs).",
        ),
    ] = "safetensors",
    out: Annotated[
        Optional[Path],
        typer.Option(help="Folder to write (default RUN/export/<format>/); never overwritten."),
    ] = None,
    quiet: QuietReadOpt = False,
) -> None:
    """Export a trained model for other programs; udlcli.load(folder) loads it back."""
    setup(quiet)
    with friendly_errors():
        from udlcli.tasks.export import export as engine

        result = engine(run, format_, out)
    if quiet:  # the folder alone, for scripts
        ui.plain(f"{result.out}\n")
        return
    for f in result.files:
        size = f.stat().st_size
        check = result.checked.get(f.stem)
        note = f"  (onnxruntime vs torch: max |diff| {check:.1e})" if check is not None else ""
        ui.info(f"{f}  {size / 1024:,.1f} KiB{note}")
    ui.info(f"[green]exported[/] to [cyan]{result.out}[/]")
