"""The sampling options of iterative generators (ddpm, flow), shared by udl sample and udl evaluate."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

StepsOpt = Annotated[
    Optional[int],
    typer.Option(
        "--steps",
        help="Iterative samplers (ddpm, flow): steps from noise to image (ddpm ddim 50, flow 20).",
    ),
]

SamplerOpt = Annotated[
    Optional[str],
    typer.Option(
        "--sampler",
        metavar="NAME",
        help="ddpm: ddim (default) | ancestral (all T steps); flow: euler (default) | heun.",
    ),
]

ClassOpt = Annotated[
    Optional[int],
    typer.Option(
        "--class",
        metavar="K",
        help="Class-conditional models (trained with --conditional): draw class K.",
    ),
]

GuidanceOpt = Annotated[
    Optional[float],
    typer.Option(
        "--guidance",
        metavar="G",
        help="With --class: classifier-free guidance scale (default 1: none; 2 to 4 sharpen the class).",
    ),
]
