"""The package's layers, read from its import statements (any level, lazy ones included): no cycles, and nothing imports upward."""

from __future__ import annotations

import ast
from pathlib import Path

from conftest import REPO

PACKAGE = REPO / "udlcli"


def _module(path: Path) -> str:
    rel = path.relative_to(REPO).with_suffix("")
    parts = list(rel.parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports() -> dict[str, set[str]]:
    """module -> the udlcli modules it imports (a package counts as its __init__)."""
    modules = {_module(p): p for p in PACKAGE.rglob("*.py")}
    out: dict[str, set[str]] = {}
    for name, path in modules.items():
        found: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                # `from udlcli.x import y`: y may be a module of package x, else a name in x.
                targets = [
                    f"{node.module}.{a.name}"
                    if f"{node.module}.{a.name}" in modules
                    else node.module
                    for a in node.names
                ]
            found |= {t for t in targets if t.startswith("udlcli") and t in modules}
        out[name] = found - {name}
    return out


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(n: str) -> list[str] | None:
        state[n] = 1
        stack.append(n)
        for m in sorted(graph.get(n, ())):
            if state.get(m) == 1:
                return stack[stack.index(m) :] + [m]
            if m not in state and (found := visit(m)):
                return found
        stack.pop()
        state[n] = 2
        return None

    for n in sorted(graph):
        if n not in state and (found := visit(n)):
            return found
    return None


def _packages_only(graph: dict[str, set[str]]) -> dict[str, set[str]]:
    # A package's __init__ re-exports its modules; the cycles that matter are between modules.
    inits = {p for p in graph if (PACKAGE.parent / p.replace(".", "/") / "__init__.py").is_file()}
    return {k: {m for m in v if m not in inits} for k, v in graph.items()}


def test_no_import_cycles():
    cycle = _cycle(_packages_only(_imports()))
    assert cycle is None, " -> ".join(cycle)


def test_layers_import_only_downward():
    graph = _imports()
    for mod, deps in graph.items():
        if not mod.startswith(("udlcli.cli", "udlcli.__main__")):
            assert not any(d.startswith("udlcli.cli") for d in deps), (mod, "imports the CLI")
        if mod.startswith(("udlcli.models", "udlcli.data")):
            # Models draw per-image noise through udlcli.rows, which the trainer hands them.
            assert "udlcli.core.distributed" not in deps, mod
        if mod.startswith("udlcli.tasks"):
            assert "udlcli.api" not in deps, (mod, "imports the Python API")


def test_a_cycle_would_be_found():
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None
