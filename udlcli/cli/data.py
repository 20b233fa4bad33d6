"""`udl data list | fetch | verify | path`: parse options, call the engine, print (a rich table in a terminal, tab-separated when piped)."""

from __future__ import annotations

from typing import Annotated

import typer

from udlcli import ui
from udlcli.cli.common import DataDirOpt, QuietReadOpt, error, friendly_errors, setup

app = typer.Typer(
    help="The named datasets: where each is, fetched ahead of time (for machines without internet), "
    "checked against torchvision's checksums, located for scripts. Downloads go to the user cache; "
    "the data folder is only read.",
    no_args_is_help=True,
    rich_markup_mode=None,
)

NameArg = Annotated[str, typer.Argument(metavar="NAME", help="A dataset name (udl data list).")]


@app.command("list", short_help="Where each dataset is, its size, whether it is complete.")
def list_(data_dir: DataDirOpt = None) -> None:
    """Each dataset: where it is (the data folder or the cache), its size on disk, whether it is complete."""
    from rich.filesize import decimal

    with friendly_errors():
        from udlcli.tasks.data import list_datasets

        states = list_datasets(data_dir)
    header = ["dataset", "where", "size", "complete", "folder"]
    rows = [
        [
            s.name,
            s.where or "-",
            decimal(s.size) if s.where else "-",
            "yes" if s.complete else (f"no: lacks {', '.join(s.missing)}" if s.where else "no"),
            str(s.folder or ""),
        ]
        for s in states
    ]
    if not ui.console.is_terminal:  # for scripts: a header line, then one tab-separated line each
        ui.raw("".join("\t".join(r) + "\n" for r in [header, *rows]))
        return
    from rich.table import Table

    t = Table(
        title="datasets (udl data fetch NAME downloads one into the cache)", title_justify="left"
    )
    for h in header:
        t.add_column(h)
    for r in rows:
        t.add_row(*(ui.escape(c) for c in r))
    ui.print_table(t)


@app.command("fetch", short_help="Download datasets into the cache now, each whole or not at all.")
def fetch(
    names: Annotated[
        list[str], typer.Argument(metavar="NAME", help="Dataset names (udl data list).")
    ],
    data_dir: DataDirOpt = None,
    timeout: Annotated[
        float,
        typer.Option(
            "--timeout", metavar="S", min=1, help="Give up when no data arrives for S seconds."
        ),
    ] = 15.0,
    quiet: QuietReadOpt = False,
) -> None:
    """Download datasets into the user cache ahead of time; each arrives whole or not at all."""
    setup(quiet)
    with friendly_errors():
        from udlcli.tasks.data import fetch as fetch_datasets

        fetch_datasets(names, data_dir, timeout)


@app.command("verify", short_help="Check a dataset's files against torchvision's md5s.")
def verify(name: NameArg, data_dir: DataDirOpt = None, quiet: QuietReadOpt = False) -> None:
    """Check a dataset's files against the md5 checksums torchvision lists for them."""
    setup(quiet)
    with friendly_errors():
        from udlcli.tasks.data import verify as verify_dataset

        v = verify_dataset(name, data_dir)
    for c in v.checks:
        ui.console.print(f"{c.status:<9} {ui.escape(c.file)}  {ui.escape(c.detail)}".rstrip())
    if v.bad:
        what = ", ".join(f"{c.file} ({c.status})" for c in v.bad)
        fix = (
            f"delete {v.state.folder} and `udl data fetch {name}` downloads it again"
            if v.state.where == "cache"
            else "replace them with good copies (udl only reads a data folder)"
        )
        raise error(f"{name} in {v.state.folder} fails its check: {what}; {fix}")
    ui.console.print(f"{name}: every file in {ui.escape(str(v.state.folder))} passed")


@app.command("path", short_help="Print a dataset's folder, for scripts.")
def path(
    name: NameArg,
    data_dir: DataDirOpt = None,
    root: Annotated[
        bool,
        typer.Option(
            "--root",
            help="Print the folder that holds it in torchvision's layout (what --data-dir takes).",
        ),
    ] = False,
) -> None:
    """Print the folder of a complete dataset, for scripts (non-zero exit when it is not there)."""
    with friendly_errors():
        from udlcli.tasks.data import dataset_path

        where = dataset_path(name, data_dir, root=root)
    ui.plain(f"{where}\n")
