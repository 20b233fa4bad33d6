"""The one console: tables that never cut a number, whatever the width, and plain text for other programs."""

from __future__ import annotations

import io

import pytest
from rich.console import Console
from rich.table import Table

from udlcli import ui


@pytest.fixture
def narrow(monkeypatch):
    """The console as an 80-column terminal writing into a buffer."""
    buf = io.StringIO()
    monkeypatch.setattr(ui, "console", Console(file=buf, width=80, highlight=False, soft_wrap=True))
    return buf


def _tune_like_table() -> tuple[Table, list[str]]:
    t = Table(title="runs/tune/ae-study: top trials by validation MSE")
    cols = [
        "trial",
        "validation MSE",
        "epochs",
        "optimizer",
        "lr",
        "weight decay",
        "channels",
        "latent dim",
        "momentum",
    ]
    for c in cols:
        t.add_column(c, justify="right")
    numbers = []
    for i in range(5):
        row = [
            str(i),
            f"{0.0123456 * (i + 1):.5g}",
            "40",
            "rmsprop",
            f"{3.861e-05 * (i + 1):.4g}",
            f"{2.3e-06 * (i + 3):.4g}",
            "17",
            "16",
            "0.9",
        ]
        numbers += [row[1], row[4], row[5]]
        t.add_row(*row)
    return t, numbers


def test_an_80_column_table_keeps_every_number_whole(narrow):
    t, numbers = _tune_like_table()
    ui.print_table(t)
    out = narrow.getvalue()
    lines = out.splitlines()
    assert max(len(line) for line in lines) <= 80, out
    assert "…" not in out
    for n in numbers:
        assert any(n in line for line in lines), (n, out)  # each number on one line, uncut


def test_a_wide_table_is_laid_out_wider_when_asked(narrow):
    t, _ = _tune_like_table()
    ui.print_table(t, width=170)
    lines = narrow.getvalue().splitlines()
    assert any("validation MSE" in line for line in lines)  # room for the whole header on one line
    assert max(len(line) for line in lines) <= 170


def test_plain_text_is_written_as_it_is(narrow):
    text = "data:\n  data_dir: /" + "x" * 200 + "\n  dataset: '[bold]not markup[/]'\n"
    ui.plain(text)
    assert narrow.getvalue() == text


def test_long_messages_are_not_split(narrow):
    ui.info("word " * 40)
    assert len(narrow.getvalue().strip().splitlines()) == 1
