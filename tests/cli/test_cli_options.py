"""The options README says the commands share, on the commands it names: --out, --name, --data-dir,
--device, --seed and --quiet; `udl runs --out`, `udl tune --name` and `udl export --quiet`."""

from __future__ import annotations

import pytest
from typer.main import get_command

from udlcli.cli.app import app

SHARED = ("--out", "--name", "--data-dir", "--device", "--seed", "--quiet")
TRAINERS = ("train", "denoise", "finetune", "gan", "tune", "reproduce")
READERS = {"embed": SHARED[2:] + ("--out",), "sample": SHARED[2:] + ("--out",)}
READERS["evaluate"] = SHARED[2:]


def options(*path: str) -> set[str]:
    cmd = get_command(app)
    for name in path:
        cmd = cmd.get_command(None, name)
    return {o for p in cmd.params for o in getattr(p, "opts", ())}


@pytest.mark.parametrize("command", TRAINERS)
def test_the_commands_that_train_take_every_shared_option(command):
    assert set(SHARED) <= options(command)


@pytest.mark.parametrize("command", sorted(READERS))
def test_the_commands_that_read_a_run_take_theirs(command):
    assert set(READERS[command]) <= options(command)


def test_tune_name_is_the_study_name():
    (param,) = [p for p in get_command(app).get_command(None, "tune").params if "--name" in p.opts]
    assert param.name == "study_name" and "--study-name" in param.opts


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    from typer.testing import CliRunner

    root = tmp_path_factory.mktemp("options") / "runs"
    args = ["train", "ae", "--dataset", "mnist-sample", "--limit", "300", "--channels", "4"]
    r = CliRunner().invoke(app, [*args, "--epochs", "1", "-q", "--out", str(root)])
    assert r.exit_code == 0, r.output
    return root


def test_runs_lists_the_out_folder_and_still_takes_root(runner, tiny_run, tmp_path):
    for flag in ("--out", "--root"):  # --root: the option's old name, kept for scripts
        r = runner.invoke(app, ["runs", flag, str(tiny_run)])
        assert r.exit_code == 0, r.output
        assert f"1 run under {tiny_run}" in r.output and "\nae\tae\tfinished\t1/1" in r.output
    r = runner.invoke(app, ["runs", "--out", str(tmp_path / "nowhere")])
    assert r.exit_code != 0 and "nowhere: no such runs folder" in r.output
    assert "--root" not in runner.invoke(app, ["runs", "--help"]).output


def test_export_quiet_prints_only_the_folder(runner, tiny_run, tmp_path):
    out = tmp_path / "exported"
    r = runner.invoke(app, ["export", str(tiny_run / "ae" / "ae"), "--out", str(out), "-q"])
    assert r.exit_code == 0, r.output
    assert r.output == f"{out}\n"
    assert (out / "model.safetensors").is_file() and (out / "config.json").is_file()
