"""Help output that reads like click's: plain METAVARs instead of typer's <int> / <list[str]> type names."""

from __future__ import annotations

# typer's own type labels -> the metavar click would print.
_NAMES = {
    "int": "INTEGER",
    "float": "FLOAT",
    "str": "TEXT",
    "path": "PATH",
    "bool": "BOOLEAN",
    "file": "PATH",
    "dir": "DIR",
}


def _plain(label: str) -> str:
    inner = label.strip("<>")
    if inner.startswith("list[") and inner.endswith("]"):  # a repeatable option: the help says so
        inner = inner[len("list[") : -1]
    return _NAMES.get(inner, inner.upper() if inner.isidentifier() else inner)


def install() -> None:
    """Patch typer's help records once: an option shows its metavar or click's name, an argument its name alone.

    Only the help text changes; parsing is untouched. If a future typer renames these hooks, the help
    falls back to typer's own labels (tests/test_cli_help.py then fails and says so).
    """
    try:
        from typer import core
    except ImportError:  # pragma: no cover
        return
    if getattr(core, "_udl_plain_help", False) or not hasattr(core, "TyperOption"):
        return

    def option_type(self, ctx):
        if getattr(self, "is_flag", False):
            return None
        if self.metavar is not None:
            return self.metavar
        label = _plain(core._TyperParameter.display_type(self, ctx))
        return label + "..." if self.nargs != 1 else label

    def argument_type(self, ctx):
        return None  # the argument's name (its METAVAR) already says what it is

    core.TyperOption.display_type_rich = option_type
    core.TyperArgument.display_type_rich = argument_type
    core._udl_plain_help = True
