"""`udl tune {ae|finetune}`: parse options, run the optuna study through the tune engine, print the top trials."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer

from udlcli import ui
from udlcli.cli.common import (
    ColorOpt,
    DataDirOpt,
    DatasetOpt,
    DeviceOpt,
    FlagTable,
    ImageSizeOpt,
    MlflowUriOpt,
    OutOpt,
    QuietOpt,
    SeedOpt,
    TrackOpt,
    command_line,
    error,
    friendly_errors,
    setup,
)

STUDY = "Study"
FLAGS = FlagTable(
    batch_size="train.batch_size",
    device="train.device",
    track="train.track",
    mlflow_uri="train.mlflow_uri",
    dataset="data.dataset",
    image_size="data.image_size",
    color="data.color",
    limit="data.limit",
    data_dir="data.data_dir",
    from_="finetune.ae",
)


class PrunerName(str, Enum):
    median = "median"
    hyperband = "hyperband"
    none = "none"


def tune(
    objective: Annotated[
        str,
        typer.Argument(
            metavar="OBJECTIVE",
            help="ae: the conv AE (validation MSE); finetune: the classifier head on a frozen AE encoder (validation cross-entropy).",
        ),
    ],
    trials: Annotated[
        Optional[int],
        typer.Option(
            help="Total finished (complete + pruned) trials the study should have; rerunning continues to it (default: the report's 100 for ae, 50 for finetune).",
            rich_help_panel=STUDY,
        ),
    ] = None,
    max_epochs: Annotated[
        int, typer.Option(help="Epochs of a trial that is not pruned.", rich_help_panel=STUDY)
    ] = 40,
    pruner: Annotated[
        PrunerName,
        typer.Option(
            help="Stops unpromising trials early: median | hyperband | none.", rich_help_panel=STUDY
        ),
    ] = PrunerName.median,
    n_jobs: Annotated[
        int,
        typer.Option(
            help="Worker processes on this machine (several pick a journal-file storage unless --storage is given).",
            rich_help_panel=STUDY,
        ),
    ] = 1,
    devices: Annotated[
        Optional[str],
        typer.Option(
            metavar="LIST",
            help="Workers' devices, round-robin: cuda:0,cuda:1 (with --n-jobs 4: 2 a GPU), or cpu,cpu.",
            rich_help_panel=STUDY,
        ),
    ] = None,
    timeout: Annotated[
        Optional[float],
        typer.Option(help="Start no new trial after this many seconds.", rich_help_panel=STUDY),
    ] = None,
    study_name: Annotated[
        Optional[str],
        typer.Option(
            "--study-name",
            "--name",
            help="Study name; its outputs go to OUT/tune/<name>/ (default: <objective>-study). "
            "The same name again continues that study.",
            rich_help_panel=STUDY,
        ),
    ] = None,
    storage: Annotated[
        Optional[str],
        typer.Option(
            help="Optuna storage: sqlite:///FILE, postgresql://USER@HOST/DB, mysql://... or a journal file path (default: OUT/tune/<name>/study.db).",
            rich_help_panel=STUDY,
        ),
    ] = None,
    from_: Annotated[
        Optional[Path],
        typer.Option(
            "--from",
            help="finetune: the AE run whose frozen encoder the head is tuned on (default: the newest AE run).",
        ),
    ] = None,
    config: Annotated[
        Optional[Path],
        typer.Option(
            "--config",
            "-c",
            help="YAML spec: data:/model:/train: (or finetune:) sections and a search: section of [low, high] ranges.",
        ),
    ] = None,
    set_: Annotated[
        Optional[list[str]],
        typer.Option(
            "--set", help="Override a fixed spec field: --set train.batch_size=128 (repeatable)."
        ),
    ] = None,
    batch_size: Annotated[
        Optional[int], typer.Option(help="Batch size of every trial.", rich_help_panel="Data")
    ] = None,
    dataset: DatasetOpt = None,
    image_size: ImageSizeOpt = None,
    color: ColorOpt = None,
    limit: Annotated[
        Optional[int],
        typer.Option(
            help="Use N training images, a stratified seeded sample (quick studies).",
            rich_help_panel="Data",
        ),
    ] = None,
    out: OutOpt = Path("runs"),
    data_dir: DataDirOpt = None,
    device: DeviceOpt = None,
    track: TrackOpt = None,
    mlflow_uri: MlflowUriOpt = None,
    seed: SeedOpt = None,
    quiet: QuietOpt = False,
) -> None:
    """Search hyperparameters with optuna (seeded TPE + pruning); writes OUT/tune/<study>/ with trials.csv, figures/ and best.yaml."""
    given = dict(locals())
    setup(quiet)
    with friendly_errors():
        from udlcli.errors import SpecError
        from udlcli.tasks import tune as engine

        if from_ is not None and objective != "finetune":
            raise SpecError(
                "--from names the AE run for `udl tune finetune`; `udl tune ae` trains its own AEs"
            )
        flags = FLAGS.flags(given)
        opts = engine.TuneOptions(
            objective=objective,
            study_name=study_name,
            storage=storage,
            trials=trials,
            max_epochs=max_epochs,
            pruner=pruner.value,
            n_jobs=n_jobs,
            devices=devices,
            timeout=timeout,
            seed=seed or 0,
            out=out,
            command=command_line(),
        )
        result = engine.tune(opts, str(config) if config else None, flags, set_ or [])
    _report(result)
    if result.interrupted:
        raise error(
            f"interrupted: the study is saved with {result.summary['finished']} finished trials; run the same command to continue it",
            130,
        )


def _report(result) -> None:
    from rich.table import Table

    s = result.summary
    if result.top:
        names = list(result.top[0]["params"])
        t = Table(title=f"{result.study_dir}: top trials by {s['metric']}", title_justify="left")
        for col in ("trial", s["metric"], "epochs", *names):
            t.add_column(col.replace("_", " "), justify="right")
        for r in result.top:
            t.add_row(
                str(r["trial"]),
                f"{r['value']:.5g}",
                str(r["epochs"]),
                *[_fmt(r["params"].get(n)) for n in names],
            )
        ui.print_table(t)
    t = Table(show_header=False, title_justify="left")
    t.add_row(
        "trials",
        f"{s['finished']}/{s['trials_asked']} finished: {s['complete']} complete, {s['pruned']} pruned; {s['failed']} failed",
    )
    t.add_row("epochs trained", f"{s['epochs_trained']:,} (at most {s['max_epochs']} a trial)")
    t.add_row("storage", s["storage"])
    if s["best"]:
        t.add_row("best", f"trial {s['best']['trial']}: {s['metric']} {s['best']['value']:.5g}")
        t.add_row("best spec", s["best"]["spec"])
    t.add_row("figures", str(result.study_dir / "figures"))
    ui.print_table(t)


def _fmt(v) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)
