"""The one rich console shared by the CLI and the engine, plus helpers for warnings and notes."""

from __future__ import annotations

import os

from rich.console import Console
from rich.markup import escape

console = Console(highlight=False)
_quiet = False


def set_quiet(quiet: bool) -> None:
    global _quiet
    _quiet = quiet


def is_quiet() -> bool:
    return _quiet


def live_enabled() -> bool:
    """Live progress bars only on a real terminal and without --quiet; else one line per epoch."""
    return console.is_terminal and not _quiet and not os.environ.get("CI")


def info(msg: str) -> None:
    if not _quiet:
        console.print(msg)


def warn(msg: str) -> None:
    # Warnings print even with --quiet: they say something about the results.
    console.print(f"[yellow]warning:[/] {escape(msg)}", soft_wrap=True)
