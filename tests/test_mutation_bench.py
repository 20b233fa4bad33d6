"""benchmarks/mutation.py's mutant generator: the classic operators, nothing in strings or messages, one line a mutant."""

from __future__ import annotations

import importlib.util
import sys

from conftest import REPO

SOURCE = '''"""A module docstring: a + b * 2 is not code."""

import math

LIMIT: int = 3


class Config:
    width: int = 8
    """Not mutated: a class attribute."""


def f(a, b):
    """The docstring of f: 1 + 1."""
    if a < 0:
        raise ValueError(f"a is {a - 1}: too small")
    return a + b * 2
'''


def bench():
    name = "udl_mutation_bench"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, REPO / "benchmarks" / "mutation.py")
        mod = importlib.util.module_from_spec(spec)
        sys.modules[name] = mod  # dataclasses look their module up while the class is made
        spec.loader.exec_module(mod)
    return sys.modules[name]


def lines_of(src: str, line: int) -> str:
    return src.splitlines()[line - 1]


def test_the_expected_mutants_of_a_small_function():
    mb = bench()
    mutants = mb.mutants_of(SOURCE, "models/small.py")
    got = {lines_of(m.apply(SOURCE), m.line).strip() for m in mutants}
    assert {
        "return a - b * 2",
        "return a + b / 2",
        "return a + b * 3",
        "return None",
        "if a <= 0:",
        "if a < 1:",
        "LIMIT: int = 4",
    } == got
    assert [m.id for m in mutants] == [f"small-{i:03d}" for i in range(1, len(mutants) + 1)]
    by_text = {lines_of(m.apply(SOURCE), m.line).strip(): m for m in mutants}
    assert by_text["return a - b * 2"].description == "line 17: `+` -> `-`"
    assert by_text["return a + b * 3"].description == "line 17: `2` -> `3`"
    assert by_text["return a - b * 2"].diff.splitlines() == [
        "-    return a + b * 2",
        "+    return a - b * 2",
    ]


def test_nothing_in_docstrings_messages_imports_or_class_attributes():
    mb = bench()
    for m in mb.mutants_of(SOURCE, "models/small.py"):
        assert m.line in (5, 15, 17), m.description  # LIMIT, the `if`, the return
        assert m.start >= SOURCE.index("LIMIT")
        assert "raise" not in lines_of(SOURCE, m.line)


def test_applying_a_mutant_changes_exactly_its_line():
    mb = bench()
    before = SOURCE.splitlines()
    for m in mb.mutants_of(SOURCE, "models/small.py"):
        after = m.apply(SOURCE).splitlines()
        assert len(after) == len(before)
        changed = [i + 1 for i, (x, y) in enumerate(zip(before, after)) if x != y]
        assert changed == [m.line], m.description


def test_the_other_operators():
    mb = bench()
    src = (
        "def g(x, y, ok):\n"
        "    x += 1\n"
        "    t.lerp_(y, 0.5)\n"
        "    if not ok and x is None:\n"
        "        return -x\n"
        "    return min(x // y, True)\n"
    )
    got = {(m.line, lines_of(m.apply(src), m.line).strip()) for m in mb.mutants_of(src, "g.py")}
    for want in [
        (2, "x -= 1"),
        (2, "x += 0"),
        (3, "pass"),
        (3, "t.lerp_(y, 1.0)"),
        (4, "if ok and x is None:"),
        (4, "if not ok or x is None:"),
        (4, "if not ok and x is not None:"),
        (5, "return x"),
        (6, "return max(x // y, True)"),
        (6, "return min(x / y, True)"),
        (6, "return min(y // x, True)"),
        (6, "return min(x // y, False)"),
    ]:
        assert want in got, want


def test_a_function_filter_and_the_pragma():
    mb = bench()
    src = (
        "def keep(a):\n"
        "    return a + 1\n"
        "\n"
        "\n"
        "def other(a):\n"
        "    return a - 1\n"
        "\n"
        "\n"
        "def quiet(a):\n"
        "    return a * 2  # pragma: no mutate\n"
    )
    lines = {m.line for m in mb.mutants_of(src, "m.py", {"keep"})}
    assert lines == {2}
    assert 10 not in {m.line for m in mb.mutants_of(src, "m.py")}


def test_every_mapped_file_and_test_exists():
    mb = bench()
    for f, tests in mb.TESTS.items():
        assert (REPO / "udlcli" / f).is_file(), f
        for t in tests:
            assert (REPO / t.split("::")[0]).is_file(), t
    assert set(mb.FUNCTIONS) <= set(mb.TESTS)
