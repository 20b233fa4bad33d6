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


def chunks(text: str) -> list[tuple[int, str, str]]:
    """(line number, code, comment) of each row of the code blocks (a row continued with a backslash
    is one) and each inline code span of a page, code blocks first."""
    found = []
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
            found.append((at, code, comment))
            i += 1
    prose = FENCE.sub(lambda m: "\n" * m.group(0).count("\n"), text)  # keep the line numbers
    for m in INLINE.finditer(prose):
        found.append((prose.count("\n", 0, m.start()) + 1, m.group(1).replace("\n", " "), ""))
    return found


def _commands(chunk: str, comment: str = "") -> list[str]:
    """The `udl ...` commands of one chunk. A comment is read with the command before it ("--anchor
    I: ..." is udl sample's), and starts none of its own ("# the udl command ...")."""
    found = []
    starts = list(START.finditer(chunk))
    for i, m in enumerate(starts):
        last = i + 1 == len(starts)
        words = chunk[m.end() : len(chunk) if last else starts[i + 1].start()]
        words += " " + comment if last else ""
        stop = STOP.search(words)
        found.append("udl " + " ".join((words[: stop.start()] if stop else words).split()))
    return found


def command_lines(text: str) -> list[tuple[int, str]]:
    """(line number, `udl ...` text) for each udl command in the code blocks and inline code of a page."""
    return [(n, cmd) for n, code, comment in chunks(text) for cmd in _commands(code, comment)]


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


# ------------------------------------------------------------------ --set KEY=VALUE: keys of the spec

SET_ITEM = re.compile(r"--set(?:=|\s+)['\"]?([^\s'\"`]+=[^\s'\"`]*)")
"""A `--set KEY=VALUE` in code that names no udl command ("`--config`/`--set model.sigma=0.5` take ...")."""
PLACEHOLDERS = {"key.sub"}
"""README's and specs.md's `--set key.sub=value`: the syntax, not a field."""


def _parse(root, command: str):
    """(subcommand, its parsed parameters) of a `udl ...` line, by the command's own options; None for
    an unknown command or a group (`udl runs ...`), which take no --set."""
    words = command.split()[1:]
    cmd = root.get_command(None, words[0]) if words else None
    if cmd is None or hasattr(cmd, "list_commands"):
        return None
    # resilient: placeholders (--epochs N) and missing arguments are left unparsed, not errors
    return words[0], cmd.make_context(f"udl {words[0]}", words[1:], resilient_parsing=True).params


def set_items(root, text: str) -> list[tuple[int, str | None, str]]:
    """(line number, the udl command or None, KEY=VALUE) of every --set of a page: in a command, the
    values its --set option parses; in code that names no command, each `--set KEY=VALUE` written."""
    found = []
    for n, code, comment in chunks(text):
        commands = _commands(code, comment)
        for command in commands:
            parsed = _parse(root, command)
            if parsed is not None:
                found += [(n, command, item) for item in parsed[1].get("set_") or []]
        if not commands:
            found += [(n, None, item) for item in SET_ITEM.findall(code)]
    return found


def _target(sub: str, params: dict) -> tuple[str | None, str | None]:
    """(the family whose spec a command's --set goes into, 'finetune' for udl finetune's own spec; its
    --config file) -- as the command resolves it: `udl train KIND`, `udl tune KIND`, `udl gan`, and
    `udl denoise` for the family it makes. A family None is the --config file's model.name, else the
    default family (the AE)."""
    from udlcli.models import REGISTRY

    name = params.get("model") or params.get("objective")
    if name is None and sub in REGISTRY:
        name = sub  # udl gan
    if name is None and sub != "train":
        name = next((f.name for f in REGISTRY.values() if f.command == sub), None)  # udl denoise
    if sub == "finetune" or name == "classifier":
        name = "finetune"
    config = params.get("config")
    # A --config the docs show but the repository does not hold (my_finetune.yaml) is the reader's
    # own file: its keys are checked against the defaults. udl tune's file holds a search: section
    # besides the spec, which resolve_spec does not read: its --set is checked against the family's.
    if config is None or sub == "tune" or not (REPO / config).is_file():
        return name, None
    return name, str(REPO / config)


def _resolve(name: str | None, config: str | None, item: str) -> str | None:
    """The one-line SpecError of resolving the spec with `--set item`, or None when it resolves."""
    from udlcli.core.spec import resolve_spec
    from udlcli.errors import SpecError
    from udlcli.tasks.finetune import resolve_finetune_spec

    try:
        if name == "finetune":
            resolve_finetune_spec(config, sets=[item])
        else:
            resolve_spec(name, config, sets=[item])
    except SpecError as e:
        return str(e)
    return None


def set_problem(root, command: str | None, item: str) -> str | None:
    """What is wrong with `--set item` in a udl command (None: the spec the command resolves has it).
    Outside a command (prose, where the page says which family it is about) the key must be in some
    family's spec, or udl finetune's."""
    if command is None:
        from udlcli.models import REGISTRY

        problems = [_resolve(name, None, item) for name in [*REGISTRY, "finetune"]]
        if all(problems):
            return f"no family's spec resolves it (the AE's says: {problems[0]})"
        return None
    parsed = _parse(root, command)
    if parsed is None:
        return None  # a command without --set: test_every_flag_the_docs_name_exists says so
    return _resolve(*_target(*parsed), item)


def test_the_set_parser_finds_each_set_and_its_command():
    root = get_command(app)
    text = (
        "Run `udl train flow --set model.p_uncond=0.2 --epochs 3` or `--set model.sigma=0.5`.\n"
        "```\nudl tune ae --n-jobs 2 \\\n    --set train.lr=1e-3   # a comment\n"
        "udl train --set=model.latent_dim=4\n```\n"
    )
    assert set_items(root, text) == [
        (3, "udl tune ae --n-jobs 2 --set train.lr=1e-3 a comment", "train.lr=1e-3"),
        (5, "udl train --set=model.latent_dim=4", "model.latent_dim=4"),
        (1, "udl train flow --set model.p_uncond=0.2 --epochs 3", "model.p_uncond=0.2"),
        (1, None, "model.sigma=0.5"),
    ]


def test_a_set_key_that_is_not_in_the_commands_spec_is_caught():
    root = get_command(app)
    ok = [
        ("udl train flow --set model.p_uncond=0.2", "model.p_uncond=0.2"),
        ("udl train --config examples/ae.yaml --set train.lr=1e-3", "train.lr=1e-3"),
        ("udl train simclr --set model.augment.strength=1.5", "model.augment.strength=1.5"),
        ("udl tune ae --set train.lr=1e-3", "train.lr=1e-3"),
        ("udl gan --set train.d_steps=2", "train.d_steps=2"),
        ("udl denoise --set model.sigma=0.5", "model.sigma=0.5"),
        ("udl finetune runs/ae/ae --set finetune.hidden=256", "finetune.hidden=256"),
        (None, "model.blocks=2"),
    ]
    for command, item in ok:
        assert set_problem(root, command, item) is None, (command, item)
    bad = [
        ("udl train ae --set model.p_uncond=0.2", "model.p_uncond"),  # flow's, not the AE's
        ("udl train simclr --set model.temperatur=0.2", "model.temperatur"),
        ("udl tune byol --set model.temperature=0.2", "model.temperature"),  # SimCLR's
        ("udl finetune runs/ae/ae --set model.hidden=256", "model"),
        ("udl train flow --set model.p_uncond", "expected KEY.SUB=VALUE"),  # --set KEY VALUE
        (None, "model.bogus=1"),
    ]
    for command, needle in bad:
        item = needle if "=" in needle else f"{needle}=1"
        if command and "expected" in needle:
            item = command.split("--set ")[1]
        problem = set_problem(root, command, item)
        assert problem and needle.split("=")[0] in problem, (command, problem)


@pytest.mark.parametrize("page", DOCS, ids=lambda p: str(p.relative_to(REPO)))
def test_every_set_key_the_docs_name_is_in_the_spec(page):
    """`udl train flow --set model.p_uncond=0.2`: flow's spec has model.p_uncond. A --set in a command
    goes into the spec of the family the command trains (or tunes); one in prose into some family's."""
    root = get_command(app)
    wrong = []
    for n, command, item in set_items(root, page.read_text()):
        key = item.split("=", 1)[0]
        problem = None if key in PLACEHOLDERS else set_problem(root, command, item)
        if problem:
            wrong.append(f"{page.name}:{n}: {command or '(no command)'!r}: --set {key}: {problem}")
    assert not wrong, "\n".join(wrong)


# ------------------------------------------------------------------ udl --help names the families


def test_udl_help_names_every_family_udl_ships():
    """`udl --help`'s description is written by hand: building it from the registry would import torch
    (seconds) for every `udl --help`. So this checks it names each family of udlcli/models/ (a
    plug-in's family, registered from another package, is not udl's to list)."""
    from typer.testing import CliRunner

    from udlcli.models import REGISTRY

    out = CliRunner().invoke(app, ["--help"]).output
    about = " ".join(out.split("Options:")[0].split())  # the description, unwrapped
    shipped = [f.name for f in REGISTRY.values() if f.build.__module__.startswith("udlcli.")]
    missing = [n for n in shipped if not re.search(rf"(?<![\w-]){re.escape(n)}(?![\w-])", about)]
    assert len(shipped) >= 10 and not missing, f"udl --help does not name {missing}: {about}"
