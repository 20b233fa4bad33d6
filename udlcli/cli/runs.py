"""`udl runs` and `udl runs compare A B ...`: parse options, call the engine, print a table (rich in a terminal, plain when piped) or JSON."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from udlcli import ui
from udlcli.cli.common import friendly_errors

app = typer.Typer(
    help="List every run under runs/ (task, name, status, epochs, key metric, dataset, device, precision, when), or compare runs.",
    no_args_is_help=False,
    invoke_without_command=True,
    rich_markup_mode=None,
)

OutArg = Annotated[
    Path,
    typer.Option("--out", help="The runs root to list, as every command's --out."),
]
# The option's name before it matched every other command's --out: old scripts keep working.
OldRootArg = Annotated[Optional[Path], typer.Option("--root", hidden=True)]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]


@app.callback()
def runs(
    ctx: typer.Context,
    out: OutArg = Path("runs"),
    json_: JsonOpt = False,
    old_root: OldRootArg = None,
) -> None:
    """List every run folder under --out; broken or half-written ones are listed as such."""
    if ctx.invoked_subcommand is not None:
        return
    root = old_root if old_root is not None else out
    with friendly_errors():
        from udlcli.tasks.runs import list_runs

        found = list_runs(root)
    if json_:
        ui.plain(json.dumps([r.public() for r in found], indent=2) + "\n")
        return
    header = ["task", "name", "status", "epochs", "key metric", "dataset", "device", "precision"]
    header.append("created")
    rows = [
        [
            r.task,
            r.name,
            r.status if not r.problem else f"{r.status}: {r.problem}",
            _epochs(r.epochs, r.epochs_planned),
            f"{r.metric} {_num(r.value)}" if r.metric else "",
            r.dataset or "",
            r.device or "",
            r.precision or "",
            (r.created or "").replace("T", " ").replace("+00:00", " UTC"),
        ]
        for r in found
    ]
    _print(f"{len(found)} run{'s' if len(found) != 1 else ''} under {root}", header, rows)


@app.command("compare")
def compare(
    run_dirs: Annotated[
        list[Path], typer.Argument(metavar="RUN...", help="Two or more run folders.")
    ],
    all_: Annotated[
        bool, typer.Option("--all", help="Show every key, not only those that differ.")
    ] = False,
    json_: JsonOpt = False,
) -> None:
    """Specs and summary numbers side by side; keys whose values differ are highlighted."""
    with friendly_errors():
        from udlcli.tasks.runs import compare_runs

        c = compare_runs(run_dirs)
    if json_:
        data = {
            "runs": [r.path for r in c.runs],
            "spec": {k: v for k, v in c.spec},
            "metrics": {k: v for k, v in c.metrics},
            "differ": [k for k, v in [*c.spec, *c.metrics] if c.differs(v)],
        }
        ui.plain(json.dumps(data, indent=2, default=str) + "\n")
        return
    header = ["", *[r.path for r in c.runs]]
    for title, table in (("spec", c.spec), ("metrics", c.metrics)):
        rows = []
        for key, values in table:
            differs = c.differs(values)
            if differs or all_:
                cells = [_num(v) for v in values]
                if ui.console.is_terminal:  # rich markup: the values escaped, differences in colour
                    cells = [
                        f"[bold yellow]{ui.escape(x)}[/]" if differs else ui.escape(x)
                        for x in cells
                    ]
                rows.append([("* " if differs else "  ") + key, *cells])
        same = len(table) - sum(c.differs(v) for _, v in table)
        note = (
            f" ({same} equal key{'s' if same != 1 else ''} hidden; --all shows them)"
            if same and not all_
            else ""
        )
        _print(f"{title}: * marks a difference{note}", header, rows, escaped=True)


def _epochs(done: int | None, planned: int | None) -> str:
    if done is None and planned is None:
        return ""
    return f"{done if done is not None else '?'}/{planned}" if planned else str(done)


def _num(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.5g}"
    return "" if v is None else str(v)


def _print(title: str, header: list[str], rows: list[list[str]], escaped: bool = False) -> None:
    """A rich table on a terminal; tab-separated lines (a header, then one per row) when piped."""
    if not ui.console.is_terminal:
        ui.raw(f"# {title}\n" + "\t".join(header) + "\n")
        for row in rows:
            ui.raw("\t".join(row) + "\n")
        return
    from rich.table import Table

    t = Table(title=title, title_justify="left")
    for h in header:
        t.add_column(h)
    for row in rows:
        t.add_row(*(row if escaped else [ui.escape(c) for c in row]))
    ui.print_table(t)
