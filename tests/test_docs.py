"""README.md and docs/*.md name only options that exist: every `udl COMMAND ... --flag` they show is
checked against the command's own options, so the docs cannot drift from the CLI again."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from typer.main import get_command

from udlcli.cli.app import app

REPO = Path(__file__).resolve().parent.parent
DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]

FENCE = re.compile(r"^```[^\n]*\n(.*?)^```", re.S | re.M)
INLINE = re.compile(r"`([^`]+)`")
# A udl command line starts at `udl` (or `-m udlcli`: python -m, torchrun -m) and runs to the next one
# (a nested `$(udl data path ...)`), or to a comment, a pipe or the end of the line.
START = re.compile(r"(?:(?<![\w/.'-])udl|-m udlcli)(?=\s)")
STOP = re.compile(r"\s\|\s|;|&&|\b(?:tensorboard|mlflow|torchrun|pip|python|srun)\s")
COMMENT = re.compile(r"(?:^|\s)#\s")
HYPOTHETICAL = {"inspect"}
"""Commands that do not exist on purpose: docs/architecture.md's recipe for adding one."""


def _options(cmd) -> set[str]:
    names = {"--help"}  # click adds it to every command, outside its params
    for p in cmd.params:
        names |= {*getattr(p, "opts", ()), *getattr(p, "secondary_opts", ())}
    return names


def _split_comment(row: str) -> tuple[str, str, str]:
    m = COMMENT.search(row)
    return (row, "", "") if m is None else (row[: m.start()], "#", row[m.end() :])


def command_lines(text: str) -> list[tuple[int, str]]:
    """(line number, `udl ...` text) for each udl command in the code blocks and inline code of a page."""
    found = []

    def add(chunk: str, line: int, comment: str = "") -> None:
        # A comment is read with the command before it ("--anchor I: ..." is udl sample's), and
        # starts none of its own ("# the udl command ...").
        starts = list(START.finditer(chunk))
        for i, m in enumerate(starts):
            last = i + 1 == len(starts)
            words = chunk[m.end() : len(chunk) if last else starts[i + 1].start()]
            words += " " + comment if last else ""
            stop = STOP.search(words)
            found.append(
                (line, "udl " + " ".join((words[: stop.start()] if stop else words).split()))
            )

    for block in FENCE.finditer(text):
        first = text.count("\n", 0, block.start(1)) + 1
        rows = block.group(1).splitlines()
        i = 0
        while i < len(rows):
            row, at = rows[i], first + i
            while row.endswith("\\") and i + 1 < len(rows):  # a command continued on the next line
                i += 1
                row = row[:-1] + " " + rows[i]
            code, _, comment = _split_comment(row)
            add(code, at, comment)
            i += 1
    prose = FENCE.sub(lambda m: "\n" * m.group(0).count("\n"), text)  # keep the line numbers
    for m in INLINE.finditer(prose):
        add(m.group(1).replace("\n", " "), prose.count("\n", 0, m.start()) + 1)
    return found


def check_line(root, line: str) -> list[str]:
    """What is wrong with one `udl ...` line: an unknown command, or a --flag its command does not take."""
    words = line.split()[1:]
    cmd, path, problems = root, "udl", []
    allowed = _options(root)
    for w in words:
        token = w.strip("\"'()[],.:")
        if token.startswith("--"):
            flag = token.split("=")[0]
            if flag not in allowed:
                problems.append(f"{path} has no {flag}")
            continue
        if hasattr(cmd, "list_commands") and not token.startswith("-"):
            sub = cmd.get_command(None, token)
            if sub is None:
                if cmd is root and re.fullmatch(r"[a-z-]+", token) and token not in HYPOTHETICAL:
                    problems.append(f"udl has no command {token!r}")
                if cmd is root:
                    break  # not a command line: "udl's", or the recipe's udl inspect
                continue  # an argument of the group's own callback, none here
            cmd, path = sub, f"{path} {token}"
            allowed = _options(sub)  # after a subcommand, click takes only its options
    return problems


def test_the_parser_finds_commands_and_flags():
    text = (
        "Run `udl train ae --epochs 3` or\n```\nudl runs --out x --json   # list (--bogus)\n"
        "torchrun --nproc-per-node 2 -m udlcli train vae\n"
        'udl train --data-dir "$(udl data path mnist --root)"\npip install udlcli  # the udl command\n'
        "udl tune ae \\\n    --n-jobs 2\n```\n"
    )
    assert command_lines(text) == [
        (3, "udl runs --out x --json list (--bogus)"),
        (4, "udl train vae"),
        (5, 'udl train --data-dir "$('),
        (5, 'udl data path mnist --root)"'),
        (7, "udl tune ae --n-jobs 2"),
        (1, "udl train ae --epochs 3"),
    ]


def test_a_made_up_flag_or_command_is_caught():
    root = get_command(app)
    assert check_line(root, "udl train ae --epochs 3 --set train.lr=1e-3") == []
    assert check_line(root, "udl runs compare a b --all --json") == []
    assert check_line(root, "udl train ae --epoch 3") == ["udl train has no --epoch"]
    assert check_line(root, "udl runs --root-dir x") == ["udl runs has no --root-dir"]
    assert check_line(root, "udl runs compare a b --out x") == ["udl runs compare has no --out"]
    assert check_line(root, "udl trian ae") == ["udl has no command 'trian'"]


@pytest.mark.parametrize("page", DOCS, ids=lambda p: str(p.relative_to(REPO)))
def test_every_flag_the_docs_name_exists(page):
    root = get_command(app)
    wrong = [
        f"{page.name}:{n}: {line!r}: {problem}"
        for n, line in command_lines(page.read_text())
        for problem in check_line(root, line)
    ]
    assert not wrong, "\n".join(wrong)


def test_specs_md_shows_the_spec_udl_train_ae_resolves():
    """docs/specs.md's annotated spec is `udl train ae --print-spec`: every field it shows, with its value."""
    import yaml

    from udlcli.core.spec import resolve_spec

    text = (REPO / "docs" / "specs.md").read_text()
    shown = yaml.safe_load(re.search(r"```yaml\n(.*?)```", text, re.S).group(1))
    resolved = resolve_spec("ae").model_dump(mode="json")
    wrong = [
        f"{section}.{key}: docs say {value!r}, udl train ae has {resolved[section].get(key, '(none)')!r}"
        for section, fields in shown.items()
        for key, value in fields.items()
        if resolved[section].get(key, "(none)") != value
    ]
    assert not wrong, "\n".join(wrong)
