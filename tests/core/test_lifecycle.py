"""The run lifecycle, once for every command that trains: the same --resume rules for train, denoise, finetune and gan."""

from __future__ import annotations

import json

import pytest
from conftest import one_error_line
from typer.testing import CliRunner

from udlcli.cli.app import app

TINY = ["--dataset", "mnist-sample", "--limit", "300", "-q"]
# command, what makes a 1-epoch run, where it is (under the runs root), an option that would change its spec
COMMANDS = {
    "train ae": (["train", "ae", "--channels", "4", *TINY], "ae/ae", ["--lr", "0.1"]),
    "train vae": (["train", "vae", "--channels", "4", *TINY], "vae/vae", ["--latent-dim", "3"]),
    "denoise": (["denoise", "--channels", "4", *TINY], "denoise/dae", ["--sigma", "0.5"]),
    "finetune": (
        ["finetune", "{ae}", "--no-baselines", "-q"],
        "finetune/finetune",
        ["--hidden", "64"],
    ),
    "gan": (["gan", *TINY], "gan/gan", ["--lr", "0.1"]),
}


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    """An AE run for finetune to start from, and a run of another kind (a classifier) for every command to refuse."""
    root = tmp_path_factory.mktemp("lifecycle")
    r = CliRunner().invoke(
        app, ["train", "ae", "--channels", "4", *TINY, "--epochs", "1", "--out", str(root / "base")]
    )
    assert r.exit_code == 0, r.output
    ae = root / "base" / "ae" / "ae"
    r = CliRunner().invoke(
        app,
        ["finetune", str(ae), "--epochs", "1", "--no-baselines", "-q", "--out", str(root / "base")],
    )
    assert r.exit_code == 0, r.output
    return {"root": root, "ae": ae, "classifier": root / "base" / "finetune" / "finetune"}


# train ae and finetune run in CI; the other commands share their code path (the train engine, by
# family) and are slow, beside the conformance suite's resume of every family.
@pytest.mark.parametrize(
    "command",
    [
        c if c in ("train ae", "finetune") else pytest.param(c, marks=pytest.mark.slow)
        for c in COMMANDS
    ],
)
def test_every_command_resumes_by_the_same_rules(command, base, runner, tmp_path):
    make, where, changing = COMMANDS[command]
    verb = make[0]
    args = [a.replace("{ae}", str(base["ae"])) for a in make]
    out = tmp_path / "runs"
    r = runner.invoke(app, [*args, "--epochs", "1", "--out", str(out)])
    assert r.exit_code == 0, r.output
    run = out / where

    def resume(target, *more):
        return runner.invoke(app, [verb, "--resume", str(target), *more, "-q"])

    # A run folder, or one of its checkpoints, continues to a new total.
    r = resume(run, "--epochs", "2")
    assert r.exit_code == 0, r.output
    r = resume(run / "weights" / "last.pt", "--epochs", "3")
    assert r.exit_code == 0, r.output
    summary = json.loads((run / "summary.json").read_text())
    assert summary["epochs"] == 3 and summary["status"] == "finished"
    assert (run / "metrics.csv").read_text().count("\n") == 4  # the header and every epoch, once
    # The --epochs rule: a new total must be larger than the epochs done; a finished run says how to extend it.
    r = resume(run, "--epochs", "3")
    assert (
        r.exit_code == 2
        and "--epochs 3: the run already has 3 epochs; give a larger number" in one_error_line(r)
    )
    r = resume(run)
    assert (
        r.exit_code == 2
        and "already finished 3/3 epochs; pass --epochs N (N > 3)" in one_error_line(r)
    )
    # Only --epochs and --device may change.
    r = resume(run, "--epochs", "4", *changing)
    assert (
        r.exit_code == 2
        and f"only --epochs and --device may change (got {changing[0]})" in one_error_line(r)
    )
    # A run of another kind is refused, naming the command that continues it.
    other = base["classifier"] if verb != "finetune" else base["ae"]
    r = resume(other, "--epochs", "5")
    line = one_error_line(r)
    assert (
        r.exit_code == 1
        and "resume it with udl" in line
        and (" is a classifier run" in line or " is an AE run" in line)
    )
    assert (
        json.loads((run / "summary.json").read_text())["epochs"] == 3
    )  # nothing a refusal touched


def test_a_missing_run_or_checkpoint_is_one_line(runner, tmp_path):
    for verb in ("train", "denoise", "finetune", "gan"):
        r = runner.invoke(app, [verb, "--resume", str(tmp_path / "nowhere")])
        assert r.exit_code == 1 and "no such run folder or checkpoint" in one_error_line(r)
        (tmp_path / "empty" / "weights").mkdir(parents=True, exist_ok=True)
        r = runner.invoke(app, [verb, "--resume", str(tmp_path / "empty")])
        assert r.exit_code == 1 and "no checkpoint at" in one_error_line(r)
