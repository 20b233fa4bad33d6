"""`udl evaluate RUN... | --images FOLDER`: parse options, call the evaluation engine, print the comparison table."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from udlcli import ui
from udlcli.cli.common import (
    DataDirOpt,
    DeviceOpt,
    QuietReadOpt,
    SeedOpt,
    command_line,
    friendly_errors,
    setup,
)
from udlcli.cli.sampling import ClassOpt, GuidanceOpt, SamplerOpt, StepsOpt

FID_LABEL = "FID (udl-LeNet)"


def evaluate(
    runs: Annotated[
        Optional[list[Path]],
        typer.Argument(
            metavar="RUNS",
            help="Run folders of generators (ae, vae, gan, ddpm, flow, ...) to sample from and compare.",
            show_default=False,
        ),
    ] = None,
    images: Annotated[
        Optional[Path],
        typer.Option(
            "--images",
            help="A folder of images to evaluate, at the dataset's size and colour (e.g. from another tool).",
        ),
    ] = None,
    n: Annotated[
        int,
        typer.Option(
            "--n", help="Samples drawn from each run (and used for the floor and ceiling rows)."
        ),
    ] = 10_000,
    dataset: Annotated[
        Optional[str],
        typer.Option(
            help="Dataset to compare --images against (default: the runs' dataset, else mnist)."
        ),
    ] = None,
    json_out: Annotated[
        Optional[Path],
        typer.Option(
            "--json",
            help="Where --images writes its evaluation.json (default: inside the folder, when writable).",
        ),
    ] = None,
    inception_weights: Annotated[
        Optional[Path],
        typer.Option(
            "--inception-weights",
            metavar="FILE",
            help="Also FID and IS on the standard InceptionV3, comparable with papers, from this weights "
            "file (torch-fidelity's or pytorch-fid's .pth; nothing is downloaded; pip install 'udlcli[fid]').",
        ),
    ] = None,
    steps: StepsOpt = None,
    sampler: SamplerOpt = None,
    class_: ClassOpt = None,
    guidance: GuidanceOpt = None,
    data_dir: DataDirOpt = None,
    device: DeviceOpt = None,
    seed: SeedOpt = None,
    quiet: QuietReadOpt = False,
) -> None:
    """Measure sample quality against the test split: FID on udl's LeNet features, precision/recall, IS, confidence and class balance."""
    setup(quiet)
    with friendly_errors():
        from udlcli.tasks.evaluate.run import evaluate as engine

        report = engine(
            list(runs or []),
            images,
            n=n,
            seed=seed or 0,
            device=device or "auto",
            data_dir=data_dir,
            dataset=dataset,
            json_out=json_out,
            command=command_line(),
            inception_weights=inception_weights,
            options={"steps": steps, "sampler": sampler, "class_": class_, "guidance": guidance},
        )
    _print(report, class_)


def _print(report, class_: int | None = None) -> None:
    from rich.table import Table

    from udlcli.metrics import BALANCE_BAND

    d = report.dataset
    t = Table(
        title=f"Sample quality against the {d['name']} test split ({report.n_test:,} images)",
        title_justify="left",
    )
    for col, just in (
        ("source", "left"),
        ("n", "right"),
        (FID_LABEL + " ↓", "right"),
        ("precision ↑", "right"),
        ("recall ↑", "right"),
        ("IS ↑", "right"),
        ("confidence", "right"),
        ("class share min–max", "right"),
        ("KL(uniform)", "right"),
    ):
        t.add_column(col, justify=just)
    rows = [report.references[0], *report.rows, report.references[1]]
    inception = any("inception" in r.metrics for r in rows)
    if inception:
        t.add_column("FID (InceptionV3) ↓", justify="right")
        t.add_column("IS (InceptionV3)", justify="right")
    flagged = False
    for i, row in enumerate(rows):
        m, b = row.metrics, row.metrics["balance"]
        share = f"{b['min_share']:.1%}–{b['max_share']:.1%}"
        if not b["balanced"]:
            share, flagged = f"[red]{share} ![/]", True
        label = row.label if row.kind == "reference" else f"{row.label} ({row.kind})"
        t.add_row(
            label,
            f"{m['n']:,}",
            f"{m['fid']:.2f}",
            f"{m['precision']:.3f}",
            f"{m['recall']:.3f}",
            f"{m['inception_score']:.2f}",
            f"{m['confidence']:.3f}",
            share,
            f"{b['kl_uniform']:.3f}",
            *(
                [f"{m['inception']['fid']:.2f}", f"{m['inception']['inception_score']:.2f}"]
                if inception
                else []
            ),
            end_section=i == 0 or i == len(report.rows),
        )
    # Piped or captured output has no width of its own (rich assumes 80): keep each row on one line there.
    ui.print_table(t, width=None if ui.console.is_terminal else max(ui.console.width, 170))
    f = report.featurenet
    made = (
        "shipped with udl"
        if f["shipped"]
        else "trained on this machine: numbers compare only with the same sha256"
    )
    ui.console.print(
        f"features: udl's LeNet for {f['dataset']} ({made}; sha256 {f['sha256'][:16]}), {f['features']} features, "
        f"{f['test_accuracy']:.2%} test accuracy; its FIDs are not comparable with Inception FIDs from papers (docs/evaluate.md)"
    )
    if flagged:
        lo, hi = BALANCE_BAND
        c = len(report.references[0].metrics["balance"]["shares"])  # the data's classes
        ui.console.print(
            f"[red]![/] a class takes less than {lo / c:.1%} or more than {hi / c:.1%} of the samples "
            f"({lo}/{c} and {hi}/{c} for {c} classes): unbalanced or collapsed"
        )
    if (
        class_ is not None
    ):  # the guidance check: how many of class K's samples the yardstick calls K
        for row in report.rows:
            share = row.metrics["balance"]["shares"][class_]
            ui.console.print(
                f"{row.label}: {share:.1%} of the --class {class_} samples are classified as {class_}"
            )
    for row in report.rows:
        if row.saved is not None:
            ui.console.print(f"wrote {row.saved}", soft_wrap=True)
    for note in report.notes:
        ui.warn(note)
