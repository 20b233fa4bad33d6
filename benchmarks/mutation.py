"""Mutation score of the maths (issue #33): small changes to the code its fast tests must notice.

Usage:
    python benchmarks/mutation.py --jobs 2 [--json /tmp/mutation.json]    (the whole benchmark)
    python benchmarks/mutation.py --list [--files ema.py] [--diff]       (the mutants, run nothing)
    python benchmarks/mutation.py --files ema.py metrics.py --sample 20 --seed 1   (a quick look)
    python benchmarks/mutation.py --only ema-007 ddpm-031                 (rerun some mutants)

A mutant is the file with one small change (a `-` for a `+`, `<=` for `<`, 0.5 for 0.25, a call
statement removed, ...). It is *killed* when the file's fast tests (TESTS below, `-m "not slow"`,
`-x`) fail on it, *survived* when they pass; a mutant that runs past its timeout (3x the clean
run's time + 10 s) counts as killed and is listed apart. Survivors are printed with their diff: a
human decides which are equivalent (no test could tell them apart) and docs/ lists those.

How a mutant runs. The repo's udlcli/, tests/, docs/, examples/ and pyproject.toml are copied once
per job into a temporary folder; the mutated file is written into that copy, never into the repo,
and put back after the run. This process imports the heavy libraries once (torch, numpy, scipy,
sklearn, matplotlib, pytest, ...; never udlcli), then forks a child per mutant (as mutmut 3 does):
the child drops the editable install's import hook (setuptools' __editable__ finder, which maps
`udlcli` to the repo), puts the copy first on sys.path, runs pytest in the copy with pytest.main,
and then checks that the mutated module was imported from the copy (else the run is an error, not
a kill). Each run deletes the mutated module's .pyc first, so a mutant of the same size written in
the same second as the previous one cannot be served a stale bytecode file. The result is the same
as a fresh `python -m pytest` in the copy, without paying ~5 s of imports per mutant.

It is a benchmark, not a CI step: it exits 0 whatever the score. Linux only (fork).
"""

from __future__ import annotations

import argparse
import ast
import compileall
import difflib
import json
import multiprocessing
import multiprocessing.connection
import os
import platform
import py_compile
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

# ------------------------------------------------------------------------------------------------
# What is mutated, and which tests must kill it.
#
# TESTS maps each file (relative to udlcli/) to the test files (or pytest node ids) that run on
# its mutants. Whole test files, not single tests, so tests added to them later are picked up.
# Fast files first: pytest runs with -x, so a mutant the fast tests kill costs only them.
# denoiser.py's own tests (the exact Gaussian end to end) drive ddpm.py and flow.py too, and the
# DDPM and flow tests drive it; ssl.py has its own tests and the SimCLR and BYOL tests.
TESTS: dict[str, list[str]] = {
    "models/ddpm.py": ["tests/models/test_ddpm.py", "tests/models/test_denoiser.py"],
    "models/flow.py": ["tests/models/test_flow.py", "tests/models/test_denoiser.py"],
    "models/denoiser.py": [
        "tests/models/test_denoiser.py",
        "tests/models/test_flow.py",
        "tests/models/test_ddpm.py",
    ],
    "models/unet.py": ["tests/models/test_unet.py", "tests/models/test_flow.py"],
    "models/simclr.py": ["tests/models/test_simclr.py"],
    "models/byol.py": ["tests/models/test_byol.py"],
    "models/ssl.py": [
        "tests/models/test_ssl.py",
        "tests/models/test_byol.py",
        "tests/models/test_simclr.py",
    ],
    "data/augment.py": ["tests/data/test_augment.py"],
    "metrics.py": ["tests/test_metrics.py"],
    "core/ema.py": ["tests/core/test_ema.py"],
}
# Files of which only some functions are mutated (name, or Class.method); the rest is not maths
# under test here (metrics.py: FID and precision/recall have their own checks).
FUNCTIONS: dict[str, set[str]] = {
    "metrics.py": {"knn_accuracy", "linear_probe"},
}
PYTEST_ARGS = ["-x", "-q", "-p", "no:cacheprovider", "-m", "not slow"]
COPIED = ["udlcli", "tests", "docs", "examples", "pyproject.toml", "README.md"]

# ------------------------------------------------------------------------------------------------
# Skip rules: what is not maths, and is never mutated (see Collector below for where they apply).
#
#   - docstrings and every string constant, f-strings and their contents
#   - `raise` statements (the message and the exception); the `if` that guards one is mutated
#   - `assert` statements, imports, `__all__`
#   - type annotations (arguments, returns, annotated assignments), decorators, class bases
#   - class-level attributes (pydantic fields and their Field(...) defaults, Search ranges, ClassVars)
#   - module-level dict literals (the families' default tables: train/data defaults)
#   - calls to the registry and config helpers below, and to logging/plotting/UI
#   - the functions in SKIP_FUNCTIONS, and lines marked `# pragma: no mutate`
SKIP_CALLS = {"register", "Family", "Field", "print", "Graph"}
"""Calls never mutated (nor their arguments), by the called name: f(...) or x.f(...)."""
SKIP_CALL_ROOTS = {"plots", "ui", "log", "logger", "logging", "warnings", "super"}
"""Calls on these (plots.image_rows(...), super().__init__(...)) are never mutated nor removed."""
SKIP_FUNCTIONS = {"graphs"}
"""Functions never mutated: a family's ONNX export examples (the conformance suite checks them)."""
PRAGMA = "pragma: no mutate"

# The operators (the classic ones of mutmut and cosmic-ray), one mutant per site and operator:
#   arithmetic   + <-> -, * <-> /, // -> /, ** -> *, % -> //, & <-> |, and `+=` etc. alike
#   operands     a - b -> b - a for -, /, //, **, % (an expression on one line)
#   comparisons  < <-> <=, > <-> >=, == <-> !=, is <-> is not, in <-> not in
#   boolean      and <-> or, `not x` -> `x`, True <-> False
#   unary        `-x` -> `x` (not the other way: a `-` before every name would double the count)
#   numbers      one change a number (mutate_number)
#   builtins     min(...) <-> max(...)
#   statements   `return x` -> `return None` (x not already None); a call statement -> `pass`
BINOP_SWAP = {  # a + b -> a - b, ...
    ast.Add: ast.Sub,
    ast.Sub: ast.Add,
    ast.Mult: ast.Div,
    ast.Div: ast.Mult,
    ast.FloorDiv: ast.Div,
    ast.Pow: ast.Mult,
    ast.Mod: ast.FloorDiv,
    ast.BitAnd: ast.BitOr,  # on tensors & and | are the logical and / or
    ast.BitOr: ast.BitAnd,
}
NONCOMMUTATIVE = (ast.Sub, ast.Div, ast.FloorDiv, ast.Pow, ast.Mod)  # a - b -> b - a (one line)
CMP_SWAP = {
    ast.Lt: ast.LtE,
    ast.LtE: ast.Lt,
    ast.Gt: ast.GtE,
    ast.GtE: ast.Gt,
    ast.Eq: ast.NotEq,
    ast.NotEq: ast.Eq,
    ast.Is: ast.IsNot,
    ast.IsNot: ast.Is,
    ast.In: ast.NotIn,
    ast.NotIn: ast.In,
}
BOOL_SWAP = {ast.And: "or", ast.Or: "and"}
NAME_SWAP = {"min": "max", "max": "min"}  # the builtins min(...) <-> max(...)
OP_TEXT = {
    ast.Add: "+",
    ast.Sub: "-",
    ast.Mult: "*",
    ast.Div: "/",
    ast.FloorDiv: "//",
    ast.Mod: "%",
    ast.Pow: "**",
    ast.BitAnd: "&",
    ast.BitOr: "|",
    ast.Lt: "<",
    ast.LtE: "<=",
    ast.Gt: ">",
    ast.GtE: ">=",
    ast.Eq: "==",
    ast.NotEq: "!=",
    ast.Is: "is",
    ast.IsNot: "is not",
    ast.In: "in",
    ast.NotIn: "not in",
}
OP_PATTERN = {  # how the operator's token looks in the source (`is  not` is `is not`)
    **{k: re.escape(v) for k, v in OP_TEXT.items()},
    ast.IsNot: r"is\s+not",
    ast.NotIn: r"not\s+in",
    ast.Is: r"is",
    ast.In: r"in",
}


def mutate_number(v: int | float) -> int | float:
    """One mutation a number: ints 0 -> 1, 1 -> 0, n -> n + 1; floats 0.0 -> 1.0, x -> 2x."""
    if isinstance(v, int):
        return {0: 1, 1: 0}.get(v, v + 1)
    return 1.0 if v == 0 else v * 2


# ------------------------------------------------------------------------------------------------
# Mutants


@dataclass
class Mutant:
    id: str
    file: str  # relative to udlcli/
    line: int
    description: str
    start: int  # character offsets of the replaced text in the file's source
    end: int
    text: str  # what replaces source[start:end]
    diff: str = ""
    status: str = "pending"  # killed, survived, timeout, error
    seconds: float = 0.0
    killed_by: str = ""

    def apply(self, source: str) -> str:
        return source[: self.start] + self.text + source[self.end :]


def _short(text: str, n: int = 60) -> str:
    text = " ".join(text.split())
    return text if len(text) <= n else text[: n - 3] + "..."


class Collector:
    """Walks one file's AST and records the mutation sites, by the skip rules above."""

    def __init__(self, source: str, functions: set[str] | None = None):
        self.source = source
        self.functions = functions
        self.lines = source.split("\n")  # as the AST counts lines (not splitlines: no \x0c)
        self.starts = [0]
        for ln in self.lines:
            self.starts.append(self.starts[-1] + len(ln) + 1)
        self.edits: list[
            tuple[int, int, int, str, str]
        ] = []  # (line, start, end, text, description)

    # -------------------------------------------------------------- positions
    def off(self, line: int, col: int) -> int:
        """The character offset of an AST position (its col is in UTF-8 bytes)."""
        return self.starts[line - 1] + len(self.lines[line - 1].encode()[:col].decode())

    def span(self, node: ast.AST) -> tuple[int, int]:
        return self.off(node.lineno, node.col_offset), self.off(
            node.end_lineno, node.end_col_offset
        )

    def text(self, node: ast.AST) -> str:
        a, b = self.span(node)
        return self.source[a:b]

    def find_op(self, a: int, b: int, op: type, aug: bool = False) -> tuple[int, int] | None:
        """The operator's token in source[a:b] (only brackets, spaces and comments besides it).

        aug: the token of an augmented assignment (`+=`)."""
        seg = re.sub(r"#[^\n]*", lambda m: " " * len(m.group()), self.source[a:b])
        tail = "=" if aug else r"(?![\w=*/])"
        m = re.search(rf"(?<![\w=<>!*/]){OP_PATTERN[op]}{tail}", seg)
        return (a + m.start(), a + m.end()) if m else None

    def add(self, line: int, a: int, b: int, text: str, desc: str) -> None:
        if PRAGMA not in self.lines[line - 1]:
            self.edits.append((line, a, b, text, f"line {line}: {desc}"))

    # -------------------------------------------------------------- the walk
    def collect(self) -> list[tuple[int, int, int, str, str]]:
        tree = ast.parse(self.source)
        self.stmts(tree.body, scope=[], active=self.functions is None, module=True)
        return self.edits

    def stmts(self, body: list[ast.stmt], scope: list[str], active: bool, module=False) -> None:
        for s in body:
            if isinstance(s, ast.Expr) and isinstance(s.value, ast.Constant):
                continue  # a docstring (or any bare constant)
            if isinstance(s, (ast.Import, ast.ImportFrom, ast.Raise, ast.Assert, ast.Global)):
                continue
            if isinstance(s, (ast.Assign, ast.AnnAssign)):
                targets = s.targets if isinstance(s, ast.Assign) else [s.target]
                if any(isinstance(t, ast.Name) and t.id == "__all__" for t in targets):
                    continue
                if module and isinstance(s.value, ast.Dict):
                    continue  # a module-level defaults table
            if isinstance(s, ast.ClassDef):
                self.class_body(s, scope)
                continue
            if isinstance(s, (ast.FunctionDef, ast.AsyncFunctionDef)):
                self.function(s, scope, active)
                continue
            if not active:
                continue
            self.stmt(s, scope, active)

    def class_body(self, c: ast.ClassDef, scope: list[str]) -> None:
        for s in c.body:  # class-level attributes and docstrings are config: only methods are code
            if isinstance(s, (ast.FunctionDef, ast.AsyncFunctionDef)):
                self.function(s, [*scope, c.name], self.functions is None)
            elif isinstance(s, ast.ClassDef):
                self.class_body(s, [*scope, c.name])

    def function(self, f, scope: list[str], active: bool) -> None:
        qual = ".".join([*scope, f.name])
        if f.name in SKIP_FUNCTIONS:
            return
        if self.functions is not None:
            active = active or f.name in self.functions or qual in self.functions
        if not active:
            self.stmts(f.body, [*scope, f.name], False)  # nested functions may still be listed
            return
        args = f.args
        for d in [*args.defaults, *[d for d in args.kw_defaults if d is not None]]:
            self.expr(d)  # default values are behaviour; annotations and decorators are not
        self.stmts(f.body, [*scope, f.name], True)

    def stmt(self, s: ast.stmt, scope: list[str], active: bool) -> None:
        if isinstance(s, ast.Expr) and isinstance(s.value, ast.Call):
            if not self.skipped_call(s.value):
                a, b = self.span(s)
                n = s.end_lineno - s.lineno  # keep the line count: pad with the lines it took
                self.add(
                    s.lineno, a, b, "pass" + "\n" * n, f"call removed `{_short(self.text(s))}`"
                )
        if isinstance(s, ast.Return) and s.value is not None:
            if not (isinstance(s.value, ast.Constant) and s.value.value is None):
                a, _ = self.span(s.value)
                _, b = self.span(s)
                n = s.end_lineno - s.value.lineno
                self.add(
                    s.lineno, a, b, "None" + "\n" * n, f"`{_short(self.text(s))}` -> `return None`"
                )
        if isinstance(s, ast.AugAssign) and type(s.op) in BINOP_SWAP:
            _, a = self.span(s.target)
            b, _ = self.span(s.value)
            pos = self.find_op(a, b, type(s.op), aug=True)
            new = OP_TEXT[BINOP_SWAP[type(s.op)]]
            if pos:
                self.add(s.lineno, *pos, new + "=", f"`{OP_TEXT[type(s.op)]}=` -> `{new}=`")
        # Everything below the statement: its expressions, and its nested blocks.
        for name, value in ast.iter_fields(s):
            if name in ("annotation", "type_comment", "decorator_list"):
                continue
            if isinstance(value, list) and value and isinstance(value[0], ast.stmt):
                self.stmts(value, scope, active)
            elif isinstance(value, list):
                for v in value:
                    if isinstance(v, ast.excepthandler):
                        self.stmts(v.body, scope, active)
                    elif isinstance(v, ast.withitem):
                        self.expr(v.context_expr)
                    elif isinstance(v, ast.AST):
                        self.expr(v)
            elif isinstance(value, ast.AST):
                self.expr(value)

    def skipped_call(self, call: ast.Call) -> bool:
        f = call.func
        name = f.id if isinstance(f, ast.Name) else f.attr if isinstance(f, ast.Attribute) else ""
        root = f
        while isinstance(root, (ast.Attribute, ast.Call, ast.Subscript)):
            root = root.value if not isinstance(root, ast.Call) else root.func
        return name in SKIP_CALLS or (isinstance(root, ast.Name) and root.id in SKIP_CALL_ROOTS)

    def expr(self, e: ast.AST) -> None:
        if isinstance(e, ast.JoinedStr):
            return
        if isinstance(e, ast.Call) and self.skipped_call(e):
            return
        if isinstance(e, ast.expr_context):
            return
        if isinstance(e, ast.BinOp):
            self.binop(e)
        elif isinstance(e, ast.Compare):
            prev = e.left
            for op, right in zip(e.ops, e.comparators):
                _, a = self.span(prev)
                b, _ = self.span(right)
                pos = self.find_op(a, b, type(op))
                new = OP_TEXT[CMP_SWAP[type(op)]]
                if pos:
                    self.add(e.lineno, *pos, new, f"`{OP_TEXT[type(op)]}` -> `{new}`")
                prev = right
        elif isinstance(e, ast.BoolOp):
            old = "and" if isinstance(e.op, ast.And) else "or"
            for left, right in zip(e.values, e.values[1:]):
                _, a = self.span(left)
                b, _ = self.span(right)
                m = re.search(rf"\b{old}\b", re.sub(r"#[^\n]*", "", self.source[a:b]))
                if m:
                    line = self.source.count("\n", 0, a + m.start()) + 1
                    self.add(
                        line,
                        a + m.start(),
                        a + m.end(),
                        BOOL_SWAP[type(e.op)],
                        f"`{old}` -> `{BOOL_SWAP[type(e.op)]}`",
                    )
        elif isinstance(e, ast.UnaryOp):
            a, _ = self.span(e)
            b, _ = self.span(e.operand)
            if isinstance(e.op, ast.USub):
                self.add(e.lineno, a, b, "", f"unary `-` removed (`{_short(self.text(e))}`)")
            elif isinstance(e.op, ast.UAdd):
                self.add(e.lineno, a, a + 1, "-", "unary `+` -> `-`")
            elif isinstance(e.op, ast.Not):
                self.add(e.lineno, a, b, "", f"`not` removed (`{_short(self.text(e))}`)")
        elif isinstance(e, ast.Constant):
            self.constant(e)
        elif isinstance(e, ast.Call) and isinstance(e.func, ast.Name) and e.func.id in NAME_SWAP:
            a, b = self.span(e.func)
            self.add(
                e.lineno, a, b, NAME_SWAP[e.func.id], f"`{e.func.id}(` -> `{NAME_SWAP[e.func.id]}(`"
            )
        if isinstance(e, ast.Lambda):
            self.expr(e.body)  # not its argument defaults' annotations (there are none)
            return
        for child in ast.iter_child_nodes(e):
            if isinstance(child, (ast.expr, ast.keyword, ast.comprehension, ast.slice)):
                if isinstance(child, ast.keyword):
                    self.expr(child.value)
                elif isinstance(child, ast.comprehension):
                    for part in (child.target, child.iter, *child.ifs):
                        self.expr(part)
                else:
                    self.expr(child)

    def binop(self, e: ast.BinOp) -> None:
        op = type(e.op)
        _, a = self.span(e.left)
        b, _ = self.span(e.right)
        pos = self.find_op(a, b, op) if op in BINOP_SWAP else None
        if pos:
            new = OP_TEXT[BINOP_SWAP[op]]
            line = self.source.count("\n", 0, pos[0]) + 1
            self.add(line, *pos, new, f"`{OP_TEXT[op]}` -> `{new}`")
        if isinstance(e.op, NONCOMMUTATIVE) and e.lineno == e.end_lineno:
            swapped = ast.unparse(ast.BinOp(e.right, e.op, e.left))
            old = self.text(e)
            self.add(
                e.lineno,
                *self.span(e),
                swapped,
                f"operands swapped `{_short(old)}` -> `{_short(swapped)}`",
            )

    def constant(self, c: ast.Constant) -> None:
        v = c.value
        if isinstance(v, bool):
            self.add(c.lineno, *self.span(c), str(not v), f"`{v}` -> `{not v}`")
        elif isinstance(v, (int, float)):
            new = repr(mutate_number(v))
            self.add(c.lineno, *self.span(c), new, f"`{self.text(c)}` -> `{new}`")


def mutants_of(source: str, file: str, functions: set[str] | None = None) -> list[Mutant]:
    """Every mutant of one file's source, in source order, with ids `<stem>-NNN`.

    A mutant that does not parse, or parses to the same AST as the original, is dropped.
    """
    original = ast.dump(ast.parse(source))
    stem = Path(file).stem
    edits = Collector(source, functions).collect()
    seen = [(line, desc) for line, _, _, _, desc in edits]
    out: list[Mutant] = []
    for line, a, b, text, desc in sorted(edits, key=lambda e: (e[1], e[2])):
        if seen.count((line, desc)) > 1:  # the same change twice on a line: say where
            desc += f" (col {a - source.rfind(chr(10), 0, a)})"
        m = Mutant("", file, line, desc, a, b, text)
        new = m.apply(source)
        try:
            if ast.dump(ast.parse(new)) == original:
                continue
        except SyntaxError:
            continue
        m.diff = "".join(
            difflib.unified_diff(
                source.splitlines(keepends=True), new.splitlines(keepends=True), n=0, lineterm="\n"
            )
        )
        m.diff = "\n".join(ln for ln in m.diff.splitlines() if ln[:3] not in ("---", "+++", "@@ "))
        m.id = f"{stem}-{len(out) + 1:03d}"
        out.append(m)
    return out


def all_mutants(files: list[str]) -> list[Mutant]:
    out = []
    for f in files:
        ORIGINALS.setdefault(f, (REPO / "udlcli" / f).read_text())
        out += mutants_of(ORIGINALS[f], f, FUNCTIONS.get(f))
    return out


# ------------------------------------------------------------------------------------------------
# Running the tests in a copy, in a forked child

PRELOAD = (
    "numpy",
    "torch",
    "torch.nn.functional",
    "torchvision",
    "scipy.linalg",
    "sklearn.linear_model",
    "sklearn.pipeline",
    "sklearn.preprocessing",
    "matplotlib.pyplot",
    "PIL.Image",
    "pydantic",
    "typer",
    "typer.testing",
    "rich.console",
    "yaml",
    "safetensors.torch",
    "pytest",
)
"""Imported once here, before any fork; udlcli never is (each child imports it from its copy)."""

NOT_FROM_COPY = 97  # the child's exit code when the mutated module did not come from the copy
BROKEN = '\nraise RuntimeError("mutation benchmark: this copy is what the tests import")\n'


def make_copy(root: Path) -> Path:
    root.mkdir(parents=True)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", ".pytest_cache", "runs")
    for name in COPIED:
        src = REPO / name
        if src.is_dir():
            shutil.copytree(src, root / name, symlinks=True, ignore=ignore)
        elif src.exists():
            shutil.copy2(src, root / name)
    for f, text in ORIGINALS.items():  # the sources the mutants were made from, if edited since
        (root / "udlcli" / f).write_text(text)
    # Bytecode once, so a child compiles only the mutated file (with PYTHONDONTWRITEBYTECODE set,
    # as here, nothing else would ever write it).
    for d in ("udlcli", "tests"):
        compileall.compile_dir(root / d, quiet=1)
    return root


def drop_pyc(path: Path) -> None:
    """Deletes a source's bytecode: a mutant of the same size written in the same second as the
    last one would otherwise pass the timestamp check and run the last one's code."""
    for pyc in (path.parent / "__pycache__").glob(f"{path.stem}.*.pyc"):
        pyc.unlink(missing_ok=True)


def _child(copy: str, tests: list[str], log: str, module: str) -> None:
    """In the forked child: pytest in the copy, on the copy's udlcli; exits with pytest's code."""
    os.setsid()  # its own process group: a timeout kills whatever the tests started too
    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.chdir(copy)
    # The editable install maps `udlcli` to the repo through a meta path finder: drop it, and the
    # sys.path entries of the repo's own folders (not its .venv), then put the copy first.
    sys.meta_path[:] = [
        f for f in sys.meta_path if "__editable__" not in getattr(f, "__module__", "")
    ]
    repo = {str(REPO), str(REPO / "tests"), str(REPO / "benchmarks")}
    sys.path[:] = [copy] + [p for p in sys.path if p and os.path.abspath(p) not in repo]
    for name in [n for n in sys.modules if n == "udlcli" or n.startswith("udlcli.")]:
        del sys.modules[name]
    import pytest

    rc = int(pytest.main([*PYTEST_ARGS, *tests]))
    # A module that failed to import is not in sys.modules (the run failed: a kill); one imported
    # from anywhere but the copy, or never imported by passing tests, makes the run an error.
    mod = sys.modules.get(module)
    where = getattr(mod, "__file__", None) or ""
    if (mod is not None and not where.startswith(copy + os.sep)) or (mod is None and rc == 0):
        print(f"\nMUTATION-BENCH: {module} was imported from {where or 'nowhere'}, not the copy")
        rc = NOT_FROM_COPY
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(rc)


@dataclass
class Task:
    file: str
    mutant: Mutant | None  # None: the clean run
    timeout: float
    log: str = ""
    rc: int | None = None
    seconds: float = 0.0
    timed_out: bool = False


def kill(p: multiprocessing.Process) -> None:
    """The child and whatever its tests started (its process group)."""
    try:
        os.killpg(p.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    p.kill()


def run_tasks(tasks: list[Task], copies: list[Path], logs: Path, progress) -> None:
    """Runs the tasks, len(copies) at a time (one copy each); fills rc, seconds, timed_out."""
    running: dict[int, tuple[Task, Path, multiprocessing.Process, float]] = {}
    try:
        _run_tasks(tasks, copies, logs, progress, running)
    finally:  # Ctrl-C, or an error here: no child is left running on its own
        for _, _, p, _ in running.values():
            kill(p)


def _run_tasks(tasks, copies, logs, progress, running) -> None:
    ctx = multiprocessing.get_context("fork")
    todo, free = list(tasks), list(copies)
    while todo or running:
        while todo and free:
            task, copy = todo.pop(0), free.pop(0)
            target = copy / "udlcli" / task.file
            if task.mutant is not None:
                target.write_text(task.mutant.apply(ORIGINALS[task.file]))
            drop_pyc(target)
            name = task.mutant.id if task.mutant else Path(task.file).stem + "-clean"
            task.log = str(logs / f"{name}.log")
            module = "udlcli." + task.file.removesuffix(".py").replace("/", ".")
            p = ctx.Process(target=_child, args=(str(copy), TESTS[task.file], task.log, module))
            p.start()
            running[p.sentinel] = (task, copy, p, time.perf_counter())
        ready = multiprocessing.connection.wait(list(running), timeout=0.5)
        now = time.perf_counter()
        for s in list(running):
            task, copy, p, t0 = running[s]
            if s not in ready and now - t0 <= task.timeout:
                continue
            if s not in ready:  # past its timeout: the child's whole group
                task.timed_out = True
                kill(p)
            p.join()
            task.rc, task.seconds = p.exitcode, now - t0
            target = copy / "udlcli" / task.file
            target.write_text(ORIGINALS[task.file])  # the original back, for the next mutant
            drop_pyc(target)
            py_compile.compile(str(target))
            del running[s]
            free.append(copy)
            progress(task)


ORIGINALS: dict[str, str] = {}
"""Each file's source as read at the start: what every copy holds between mutants."""


def failed_test(log: str) -> str:
    try:
        text = Path(log).read_text(errors="replace")
    except OSError:
        return ""
    m = re.search(r"^(?:FAILED|ERROR) (\S+)", text, re.M)
    return m.group(1) if m else ""


# ------------------------------------------------------------------------------------------------
# The report


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
        cpu = next(
            ln.split(":", 1)[1].strip() for ln in out.splitlines() if ln.startswith("Model name")
        )
    except (OSError, StopIteration):
        pass
    import torch

    return (
        f"{cpu}, {os.cpu_count()} cores, torch {torch.__version__} "
        f"({torch.get_num_threads()} thread(s) a run), Python {platform.python_version()}"
    )


def summary(mutants: list[Mutant], skipped: dict[str, str]) -> list[dict]:
    rows = []
    for f in dict.fromkeys(m.file for m in mutants):
        ms = [m for m in mutants if m.file == f and m.status != "pending"]
        killed = sum(m.status in ("killed", "timeout") for m in ms)
        rows.append(
            {
                "file": f,
                "mutants": len(ms),
                "killed": sum(m.status == "killed" for m in ms),
                "timeouts": sum(m.status == "timeout" for m in ms),
                "survived": sum(m.status == "survived" for m in ms),
                "errors": sum(m.status == "error" for m in ms),
                "score": 100.0 * killed / max(len(ms) - sum(m.status == "error" for m in ms), 1),
            }
        )
    return rows


def print_report(mutants: list[Mutant], skipped: dict[str, str], wall: float, info: str) -> None:
    rows = summary(mutants, skipped)
    print(f"\nmachine: {info}")
    print(
        f"{'file':<20} {'mutants':>7} {'killed':>7} {'timeout':>7} {'survived':>8} {'error':>5} {'score':>7}"
    )
    for r in rows:
        print(
            f"{r['file']:<20} {r['mutants']:>7} {r['killed']:>7} {r['timeouts']:>7} "
            f"{r['survived']:>8} {r['errors']:>5} {r['score']:>6.1f}%"
        )
    for f, why in skipped.items():
        print(f"{f:<20} skipped: {why}")
    done = [m for m in mutants if m.status not in ("pending", "error")]
    k = sum(m.status in ("killed", "timeout") for m in done)
    print(
        f"{'total':<20} {len(done):>7} {'':>7} {'':>7} {len(done) - k:>8} {'':>5} "
        f"{100.0 * k / max(len(done), 1):>6.1f}%   ({wall / 60:.1f} min wall)"
    )
    for title, status in (
        ("timeouts (counted as killed)", "timeout"),
        ("errors (not counted)", "error"),
    ):
        some = [m for m in mutants if m.status == status]
        if some:
            print(f"\n{title}:")
            for m in some:
                print(f"  {m.id:<14} {m.file}:{m.line}  {m.description}")
    surv = [m for m in mutants if m.status == "survived"]
    print(f"\nsurvivors ({len(surv)}): decide which are equivalent")
    for m in surv:
        print(f"  {m.id:<14} {m.file}:{m.line}  {m.description}")
        for ln in m.diff.splitlines():
            print(f"      {ln}")


# ------------------------------------------------------------------------------------------------


def benchmark(a: argparse.Namespace, files: list[str], mutants: list[Mutant], info: str, tmp: Path):
    """The clean and sanity runs, the mutants, the report (and --json), with copies under tmp."""
    logs = tmp / "logs"
    logs.mkdir()
    copies = [make_copy(tmp / f"copy{i}") for i in range(max(a.jobs, 1))]
    print(f"{len(mutants)} mutants in {len(files)} file(s), {len(copies)} job(s); copies in {tmp}")
    t_start = time.perf_counter()

    # The clean runs: each file's tests must pass on the unmutated copy; their time sets the timeout.
    # And a sanity run: with the file raising on import in the copy, its tests must fail (they
    # import the copy, not the repo).
    clean = [Task(f, None, timeout=900.0) for f in files]
    broken = [
        Task(f, Mutant(f"{Path(f).stem}-broken", f, 0, "raises on import", n, n, BROKEN), 300.0)
        for f in files
        for n in [len(ORIGINALS[f])]
    ]

    def said_clean(t: Task) -> None:
        if t.mutant is None:
            ok = "passed" if t.rc == 0 else f"FAILED (exit {t.rc}, {t.log})"
            print(f"clean   {t.file:<20} {t.seconds:6.1f} s  {ok}", flush=True)
        else:
            ok = "failed, as it must" if t.rc not in (0, NOT_FROM_COPY) else "PASSED: not the copy?"
            print(f"broken  {t.file:<20} {t.seconds:6.1f} s  {ok}", flush=True)

    run_tasks(clean + broken, copies, logs, said_clean)
    skipped = {
        t.file: f"its tests fail on the clean copy (exit {t.rc}; log {t.log})"
        for t in clean
        if t.rc != 0
    }
    for t in broken:
        if t.rc in (0, NOT_FROM_COPY) and t.file not in skipped:
            skipped[t.file] = f"its tests pass with the file broken in the copy (log {t.log})"
    budget = {t.file: 3 * t.seconds + 10 for t in clean}

    tasks = [Task(m.file, m, budget[m.file]) for m in mutants if m.file not in skipped]
    for m in mutants:
        if m.file in skipped:
            m.status = "error"
    done = [0]

    def said(t: Task) -> None:
        m = t.mutant
        m.seconds = round(t.seconds, 2)
        if t.timed_out:
            m.status = "timeout"
        elif t.rc == NOT_FROM_COPY:
            m.status = "error"
        elif t.rc != 0:
            m.status, m.killed_by = "killed", failed_test(t.log)
        else:
            m.status = "survived"
        done[0] += 1
        print(
            f"[{done[0]:>4}/{len(tasks)}] {m.id:<14} {m.status:<8} {t.seconds:5.1f} s  "
            f"{m.file}:{m.line}  {m.description}",
            flush=True,
        )

    try:
        run_tasks(tasks, copies, logs, said)
    except KeyboardInterrupt:
        print("\ninterrupted: the report covers the mutants run so far")
    wall = time.perf_counter() - t_start
    print_report(mutants, skipped, wall, info)

    if a.json:
        a.json.parent.mkdir(parents=True, exist_ok=True)
        a.json.write_text(
            json.dumps(
                {
                    "machine": info,
                    "wall_seconds": round(wall, 1),
                    "jobs": len(copies),
                    "clean_seconds": {t.file: round(t.seconds, 2) for t in clean},
                    "skipped": skipped,
                    "files": summary(mutants, skipped),
                    "mutants": [
                        {k: v for k, v in asdict(m).items() if k not in ("start", "end", "text")}
                        for m in mutants
                    ],
                },
                indent=1,
            )
        )
        print(f"\nwrote {a.json}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--files", nargs="+", help="a subset of TESTS' files (ema.py or core/ema.py)")
    p.add_argument("--jobs", type=int, default=1, help="mutants run at once, each in its own copy")
    p.add_argument("--threads", type=int, default=1, help="torch threads a run (OMP_NUM_THREADS)")
    p.add_argument("--limit", type=int, help="the first N mutants of each file only")
    p.add_argument("--sample", type=int, help="K mutants of each file, at random (--seed)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--only", nargs="+", metavar="ID", help="run these mutants (e.g. ema-007)")
    p.add_argument("--list", action="store_true", help="print the mutants, run nothing")
    p.add_argument("--diff", action="store_true", help="with --list: each mutant's diff too")
    p.add_argument("--json", type=Path, help="write every mutant and its result here")
    p.add_argument("--keep", action="store_true", help="keep the copies and the pytest logs")
    a = p.parse_args()

    files = list(TESTS)
    if a.files:
        want = [f.removeprefix("udlcli/") for f in a.files]
        files = [f for f in TESTS if any(f == w or f.endswith("/" + w) for w in want)]
        if len(files) < len(want):
            p.error(f"--files: known files are {', '.join(TESTS)}")
    mutants = all_mutants(files)
    if a.only:
        mutants = [m for m in mutants if m.id in set(a.only)]
        missing = set(a.only) - {m.id for m in mutants}
        if missing:
            p.error(f"--only: no mutant {', '.join(sorted(missing))} (see --list)")
        files = [f for f in files if any(m.file == f for m in mutants)]
    elif a.limit or a.sample:
        rng, picked = random.Random(a.seed), []
        for f in files:
            ms = [m for m in mutants if m.file == f]
            picked += (
                ms[: a.limit]
                if a.limit
                else sorted(rng.sample(ms, min(a.sample, len(ms))), key=lambda m: m.start)
            )
        mutants = picked

    if a.list:
        for m in mutants:
            print(f"{m.id:<14} {m.file}:{m.line}  {m.description}")
            if a.diff:
                print("\n".join("      " + ln for ln in m.diff.splitlines()))
        print()
        for f in files:
            print(f"{f:<20} {sum(m.file == f for m in mutants):>5} mutants")
        print(f"{'total':<20} {len(mutants):>5} mutants")
        return

    os.environ["OMP_NUM_THREADS"] = os.environ["MKL_NUM_THREADS"] = str(a.threads)
    os.environ.setdefault("MPLBACKEND", "Agg")
    data = REPO.parent / "shared" / "data"
    if "UDL_DATA_DIR" not in os.environ and data.is_dir():
        os.environ["UDL_DATA_DIR"] = str(data)  # the tests find ../shared/data beside the repo
    for mod in PRELOAD:
        try:
            __import__(mod)
        except ImportError:
            pass
    import torch

    torch.set_num_threads(a.threads)
    assert not any(n == "udlcli" or n.startswith("udlcli.") for n in sys.modules), (
        "udlcli preloaded"
    )
    info = machine()
    print(f"machine: {info}")

    tmp = Path(tempfile.mkdtemp(prefix="udl-mutation-"))
    try:
        benchmark(a, files, mutants, info, tmp)
    finally:  # also after Ctrl-C or a closed pipe
        if a.keep:
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
