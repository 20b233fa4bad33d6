"""The `udl` app itself: help that reads at 80 columns, one-line usage errors, and --print-spec that parses back."""

from __future__ import annotations

import re

import pytest
import yaml
from conftest import one_error_line

from udlcli.cli.app import app

COMMANDS = [
    "train",
    "tune",
    "embed",
    "sample",
    "finetune",
    "denoise",
    "gan",
    "evaluate",
    "reproduce",
]


def _help(runner, *args) -> str:
    r = runner.invoke(app, [*args, "--help"], terminal_width=80, env={"COLUMNS": "80"})
    assert r.exit_code == 0, r.output
    return r.output


def test_top_help_shows_every_short_description_whole(runner):
    out = _help(runner)
    listed = {
        line.split()[0]: line
        for line in out.splitlines()
        if line.startswith("  ") and line.split() and line.split()[0] in COMMANDS
    }
    assert sorted(listed) == sorted(COMMANDS)
    for name, line in listed.items():
        assert not line.rstrip().endswith("..."), (
            f"{name}: the one-line description is cut: {line!r}"
        )
        assert len(line) <= 80, line


@pytest.mark.parametrize("command", COMMANDS)
def test_command_help_has_no_raw_type_names(runner, command):
    out = _help(runner, command)
    assert not re.search(r"<(int|float|str|path|list\[[^>]*\])>", out), out
    assert "[[" not in out and "]]" not in out, out


@pytest.mark.parametrize("command", ["embed", "sample", "evaluate"])
def test_quiet_help_of_commands_without_epochs(runner, command):
    out = _help(runner, command)
    quiet = next(line for line in out.splitlines() if "--quiet" in line)
    assert "epoch" not in quiet


@pytest.mark.parametrize(
    "args,needle",
    [
        (["tune", "vae"], "unknown objective; choose one of: ae"),
        (["train", "--epochs", "x"], "--epochs"),
        (["train", "--no-such-option"], "No such option"),
        (["no-such-command"], "No such command"),
        (["tune", "ae", "--pruner", "median2"], "--pruner"),
    ],
)
def test_usage_mistakes_are_one_line(runner, args, needle):
    r = runner.invoke(app, args)
    assert r.exit_code == 2
    line = one_error_line(r)
    assert needle in line and "Usage:" not in r.output and "Value error" not in line


@pytest.mark.parametrize(
    "args,key",
    [
        (
            [
                "train",
                "ae",
                "--data-dir",
                "/a/very/long/path/" + "x" * 120,
                "--set",
                "train.lr=3e-4",
            ],
            ("data", "data_dir"),
        ),
        (["gan", "--dataset", "folder:/some/where/" + "y" * 100], ("data", "dataset")),
    ],
)
def test_print_spec_is_plain_yaml_that_parses_back(runner, args, key, tmp_path):
    r = runner.invoke(app, [*args, "--print-spec"], terminal_width=60)
    assert r.exit_code == 0, r.output
    spec = yaml.safe_load(r.output)
    section, field = key
    assert spec[section][field] == next(a for a in args if a.startswith(("/a/", "folder:")))
    # The printed spec is a valid --config: it resolves to the same spec again.
    f = tmp_path / "spec.yaml"
    f.write_text(r.output)
    again = runner.invoke(
        app, [args[0], *([] if args[0] == "gan" else [args[1]]), "--config", str(f), "--print-spec"]
    )
    assert again.exit_code == 0 and yaml.safe_load(again.output) == spec
