"""The one rich console shared by the CLI and the engine, plus helpers for warnings and notes."""

from __future__ import annotations

import os
import re

_quiet = False


def _console():
    """The console, made on first use: rich takes ~45 ms to import, which `udl --help` need not pay."""
    c = globals().get("console")
    if c is None:
        from rich.console import Console

        # soft_wrap: a long line is printed whole (the terminal may fold it), never split with a newline
        # of ours, so logs and pipes keep one line per message. Tables still fit the width (see table()).
        c = globals()["console"] = Console(highlight=False, soft_wrap=True)
    return c


def __getattr__(name: str):
    # `ui.console` (PEP 562): made on first use, then an ordinary module attribute (tests may replace it).
    if name == "console":
        return _console()
    raise AttributeError(f"module 'udlcli.ui' has no attribute {name!r}")


def escape(text: str) -> str:
    """Text with rich's markup brackets escaped (a path may hold [brackets])."""
    from rich.markup import escape as rich_escape

    return rich_escape(text)


def set_quiet(quiet: bool) -> None:
    global _quiet
    _quiet = quiet


def is_quiet() -> bool:
    return _quiet


def live_enabled() -> bool:
    """Live progress bars only on a real terminal and without --quiet; else one line per epoch."""
    return _console().is_terminal and not _quiet and not os.environ.get("CI")


def track(items, description: str):
    """Iterate over items (a sized sequence) with a progress bar on a terminal, else after one line saying what runs."""
    if live_enabled():
        from rich.progress import track as rich_track

        return rich_track(items, description=description, console=_console(), transient=True)
    info(f"{description} ...")
    return items


def info(msg: str) -> None:
    if not _quiet:
        _console().print(msg)


def warn(msg: str) -> None:
    # Warnings print even with --quiet: they say something about the results.
    from rich.markup import escape

    _console().print(f"[yellow]warning:[/] {escape(msg)}", soft_wrap=True)


_NUMBER = re.compile(
    r"^[\s\[\]/a-z]*[-+]?[\d.,]+(e[-+]?\d+)?[%x]?(\s*[–/-]\s*[-+]?[\d.,]+(e[-+]?\d+)?[%x]?)*\s*(s|dB|min|ms)?[\s!\]/a-z]*$"
)


def print_table(table, width: int | None = None) -> None:
    """Print a rich Table so that no number is ever cut, however narrow the terminal.

    rich shrinks columns evenly when a table is too wide and ends cells with an ellipsis ("3.861e…").
    Here each column may shrink only to its widest number or its longest word (at most 24 characters,
    so a path cannot crowd the rest out); the column with the most room to spare gives way first, and
    headers and text wrap instead of being cut. A table that would not fit even so drops its vertical rules.
    width: lay the table out for this many columns instead of the console's.
    """
    from rich import box
    from rich.text import Text

    def plain(c) -> str:
        return Text.from_markup(c).plain if isinstance(c, str) else str(c)

    # Each column's narrowest width, from the most to the least comfortable: whole words in headers and
    # cells, then whole words in cells only (headers fold mid-word), then whole numbers only.
    levels: list[list[int]] = [[], [], []]
    hi = []
    for col in table.columns:
        cells = [plain(c) for c in col._cells]
        head = [plain(col.header)] if table.show_header else []
        numbers = [len(t.strip()) for t in cells if t.strip() and _NUMBER.match(t)] or [1]
        if col.no_wrap:  # a column that asked for whole cells (a short label) keeps them
            numbers = [len(t) for t in cells] or [1]
        cell_words = [min(len(w), 24) for t in cells for w in t.split()] or [1]
        head_words = [min(len(w), 24) for t in head for w in t.split()] or [1]
        levels[0].append(max(max(numbers), max(cell_words), max(head_words)))
        levels[1].append(max(max(numbers), max(cell_words)))
        levels[2].append(max(numbers))
        hi.append(
            max([len(line) for t in cells + head for line in t.splitlines()] + [levels[0][-1]])
        )
    width = width or _console().width
    n = len(table.columns)
    chrome = _chrome(table)  # rules, padding and separators: what the table adds around its cells
    if sum(levels[0]) + chrome > width:
        table.box, table.pad_edge, table.show_edge, table.collapse_padding = (
            box.SIMPLE_HEAD,
            False,
            False,
            True,
        )
        chrome = _chrome(table)
    lo = next((level for level in levels if sum(level) + chrome <= width), levels[-1])
    widths = list(hi)
    while sum(widths) + chrome > width:
        i = max(range(n), key=lambda j: widths[j] - lo[j])
        if widths[i] <= lo[i]:
            break  # every column is at its minimum: print it wide rather than cut a number
        widths[i] -= 1
    for col, w in zip(table.columns, widths):
        col.width, col.overflow, col.no_wrap = w, "fold", False
    # rich never prints wider than its console: a wider layout (piped output) needs a console of that width.
    con = _console()
    if width > con.width:
        from rich.console import Console

        con = Console(file=con.file, width=width, highlight=False, color_system=con.color_system)
    con.print(table)


def _chrome(table) -> int:
    """How many characters a table's rules, padding and separators take on a line (its width with 1-character columns)."""
    import copy
    import io

    probe = copy.deepcopy(table)
    probe.title = probe.caption = None
    for col in probe.columns:
        col.width, col._cells = 1, ["x"] * len(col._cells)
        col.header, col.footer = ("x" if table.show_header else ""), ""
    from rich.console import Console

    c = Console(file=io.StringIO(), width=10_000)
    c.print(probe)
    return max(len(line) for line in c.file.getvalue().splitlines()) - len(table.columns)


def raw(text: str) -> None:
    """Write text to the console's stream untouched, tabs included (rich would expand them): TSV for pipes."""
    _console().file.write(text)
    _console().file.flush()


def plain(text: str) -> None:
    """Write text exactly as it is (no markup, highlighting or wrapping): YAML and JSON that other programs read."""
    _console().out(text, end="", highlight=False)
