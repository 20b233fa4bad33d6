"""Data-parallel training on the CPU: 2 gloo ranks launched by `--devices 2` against one process, and the faults."""

from __future__ import annotations

import csv
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from conftest import one_error_line

from udlcli.cli.app import app
from udlcli.cli.common import _without_launch_flags
from udlcli.core import distributed

# Each launch starts 2 Python processes that import torch: seconds of overhead before training.
pytestmark = pytest.mark.timeout(400)


def udl(*args: str, cwd: Path, timeout: float = 240) -> subprocess.CompletedProcess:
    env = {**os.environ, "MPLBACKEND": "Agg"}
    env.pop("WORLD_SIZE", None)
    return subprocess.run(
        [sys.executable, "-m", "udlcli", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )


def ok(r: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    assert r.returncode == 0, r.stderr[-2000:]
    return r


def weights(run: Path) -> dict[str, torch.Tensor]:
    return torch.load(run / "weights" / "last.pt", weights_only=True)["model"]


def max_diff(a: dict, b: dict) -> float:
    return max(float((a[k].float() - b[k].float()).abs().max()) for k in a)


def rows(run: Path) -> list[dict]:
    with open(run / "metrics.csv") as f:
        return list(csv.DictReader(f))


def summary(run: Path) -> dict:
    import json

    return json.loads((run / "summary.json").read_text())


# ---------------------------------------------------------------- equivalence


@pytest.mark.slow  # every family on 2 ranks in CI: tests/models/test_families.py
def test_ae_two_ranks_train_as_one_process(tmp_path):
    """2 epochs on mnist-sample (100 steps of the global batch 64): the same weights to 1e-5 after
    every step's all-reduce, so the same test MSE, all-reduced validation and checkpoints."""
    common = ["train", "ae", "--dataset", "mnist-sample", "--epochs", "2", "--device", "cpu"]
    ok(udl(*common, "--name", "one", cwd=tmp_path))
    r = ok(udl(*common, "--name", "two", "--devices", "2", cwd=tmp_path))
    one, two = tmp_path / "runs/ae/one", tmp_path / "runs/ae/two"
    assert "launching 2 ranks on cpu (gloo)" in r.stdout
    assert r.stdout.count("epoch 2/2") == 1  # rank 0 alone shows progress
    assert max_diff(weights(one), weights(two)) <= 1e-5
    mse1, mse2 = summary(one)["test_mse"], summary(two)["test_mse"]
    assert abs(mse2 - mse1) / mse1 <= 0.02
    assert float(rows(two)[-1]["val_loss"]) == pytest.approx(
        float(rows(one)[-1]["val_loss"]), rel=1e-5
    )
    assert torch.load(two / "weights/last.pt", weights_only=True)["world_size"] == 2
    # Rank 0 alone wrote: one run folder, the same files as one process.
    assert sorted(p.name for p in (tmp_path / "runs/ae").iterdir()) == ["one", "two"]
    assert sorted(p.name for p in two.iterdir()) == sorted(p.name for p in one.iterdir())


def test_gan_one_step_matches_one_process(tmp_path):
    """One step at the global batch 128 (dropout 0, whose masks are per process). D's weights agree
    to 1e-5. G's do too, but for the few weights whose gradient is a near-cancelling sum: Adam's first
    step lr*g/(|g|+eps) turns the float rounding of that sum into up to lr (measured: ~300 of 1.5M)."""
    common = ["gan", "--epochs", "1", "--limit", "128", "--batch-size", "128", "--device", "cpu"]
    common += ["--set", "model.dropout=0"]
    ok(udl(*common, "--name", "one", cwd=tmp_path))
    ok(udl(*common, "--name", "two", "--devices", "2", cwd=tmp_path))
    a, b = weights(tmp_path / "runs/gan/one"), weights(tmp_path / "runs/gan/two")
    start = torch.load(tmp_path / "runs/gan/one/weights/last.pt", weights_only=True)
    lr = start["spec"]["train"]["lr"]
    assert max_diff({k: v for k, v in a.items() if k.startswith("D.")}, b) <= 1e-5
    g = torch.cat([(a[k] - b[k]).abs().flatten() for k in a if k.startswith("G.")])
    assert float((g <= 1e-5).float().mean()) >= 0.999
    assert float(g.max()) <= 2 * lr


@pytest.mark.slow  # the GAN's 2 ranks in CI: the one-step test above
def test_gan_two_epochs_within_two_percent(tmp_path):
    common = ["gan", "--dataset", "mnist-sample", "--epochs", "2", "--device", "cpu"]
    common += ["--set", "model.dropout=0"]
    ok(udl(*common, "--name", "one", cwd=tmp_path))
    ok(udl(*common, "--name", "two", "--devices", "2", cwd=tmp_path))
    one, two = rows(tmp_path / "runs/gan/one")[-1], rows(tmp_path / "runs/gan/two")[-1]
    for k in ("d_loss", "g_loss", "d_real", "d_fake"):
        assert float(two[k]) == pytest.approx(float(one[k]), rel=0.02), k
    assert (tmp_path / "runs/gan/two/samples/progress.gif").is_file()


@pytest.mark.slow
@pytest.mark.parametrize(
    "command",
    [
        ["train", "vae"],
        ["denoise", "--noise", "gaussian"],
    ],
)
def test_other_models_one_step_match(tmp_path, command):
    kind = "vae" if "vae" in command else "denoise"
    common = [*command, "--epochs", "1", "--limit", "160", "--batch-size", "128", "--device", "cpu"]
    ok(udl(*common, "--name", "one", cwd=tmp_path))
    ok(udl(*common, "--name", "two", "--devices", "2", cwd=tmp_path))
    one, two = tmp_path / "runs" / kind / "one", tmp_path / "runs" / kind / "two"
    assert max_diff(weights(one), weights(two)) <= 1e-5
    assert summary(two)["test"]["loss"] == pytest.approx(summary(one)["test"]["loss"], rel=1e-4)


# ---------------------------------------------------------------- faults


def _rank_pids(rank: int) -> list[int]:
    found = []
    for p in Path("/proc").iterdir():
        if not p.name.isdigit():
            continue
        try:
            env = (p / "environ").read_bytes().split(b"\0")
            cmd = (p / "cmdline").read_bytes()
        except OSError:
            continue
        if (
            b"udlcli" in cmd
            and f"RANK={rank}".encode() in env
            and b"UDL_RANK_ERRORS" in b"".join(env)
        ):
            found.append(int(p.name))
    return found


@pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="finds the ranks through /proc")
def test_killed_rank_ends_the_job_and_resume_continues(tmp_path):
    args = ["train", "ae", "--dataset", "mnist-sample", "--epochs", "3", "--batch-size", "32"]
    job = subprocess.Popen(
        [sys.executable, "-m", "udlcli", *args, "--device", "cpu", "--devices", "2"],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    run = tmp_path / "runs/ae/ae"
    deadline = time.time() + 180
    while not (run / "metrics.csv").is_file() and time.time() < deadline and job.poll() is None:
        time.sleep(0.2)
    assert (run / "metrics.csv").is_file(), job.communicate()[1]
    done = rows(run)
    pids = _rank_pids(1)
    assert pids, "rank 1 not found"
    os.kill(pids[0], signal.SIGKILL)  # in epoch 2: epoch 1's checkpoint and metrics are written
    killed = time.time()
    out, err = job.communicate(timeout=120)
    assert time.time() - killed <= 60
    assert job.returncode != 0
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "rank 1 of 2 was stopped by SIGKILL" in lines[0]
    assert f"udl train --resume {Path('runs/ae/ae')}" in lines[0]
    assert not _rank_pids(0), "rank 0 outlived the job"

    # --resume with the same 2 ranks continues from the last checkpoint; nothing finished is lost.
    r = ok(udl("train", "--resume", "runs/ae/ae", "--devices", "2", cwd=tmp_path))
    assert "resuming" in r.stdout
    after = rows(run)
    assert [r["epoch"] for r in after] == ["1", "2", "3"]
    assert after[: len(done)] == done
    # One process may continue a 2-rank run at the same global batch, and says so.
    r = ok(udl("train", "--resume", "runs/ae/ae", "--epochs", "4", cwd=tmp_path))
    assert "resuming with 1 rank (the run trained on 2); the global batch stays 32" in r.stdout


def test_port_in_use_is_one_line(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        r = udl("train", "ae", "--devices", "2", "--port", str(port), cwd=tmp_path, timeout=60)
    assert r.returncode == 1
    assert r.stderr.strip() == (
        f"error: --port {port} is in use (another job, or a server); give another --port or leave "
        "it out to take a free one"
    )
    assert not (tmp_path / "runs").exists()


def test_more_ranks_than_gpus_is_one_line(runner, tmp_path, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    r = runner.invoke(app, ["train", "ae", "--devices", "3", "--out", str(tmp_path / "runs")])
    assert r.exit_code == 2
    assert "--devices 3: this machine has 2 GPUs; use --devices 2 or fewer" in one_error_line(r)
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize(
    "args, message",
    [
        (["train", "ae", "--port", "29500"], "--port goes with --devices N"),
        (
            ["denoise", "--eval", "runs/denoise/dae", "--devices", "2"],
            "--eval and --input run in one process",
        ),
        (["train", "ae", "--devices", "2", "--device", "mps"], "mps trains in one process"),
    ],
)
def test_bad_launch_options_are_one_line(runner, args, message):
    r = runner.invoke(app, args)
    assert r.exit_code == 2
    assert message in one_error_line(r)


# ---------------------------------------------------------------- the pieces


def test_shards_cover_a_batch_once(monkeypatch):
    for n, size in [(64, 2), (65, 2), (7, 3), (128, 8)]:
        parts = []
        for rank in range(size):
            monkeypatch.setattr(
                distributed, "world", lambda r=rank, s=size: distributed.World(r, s)
            )
            parts.append(distributed.shard(n))
        assert [i for p in parts for i in range(n)[p]] == list(range(n))
        assert max(p.stop - p.start for p in parts) - min(p.stop - p.start for p in parts) <= 1


def test_rows_slice_the_global_draw():
    from udlcli.rows import Rows

    torch.manual_seed(0)
    whole = torch.randn(10, 3)
    torch.manual_seed(0)
    mine = Rows(10, slice(5, 10)).randn((5, 3), "cpu")
    assert torch.equal(mine, whole[5:])
    torch.manual_seed(0)
    assert torch.equal(Rows().randn((10, 3), "cpu"), whole)  # alone: the batch is the draw
    g = torch.Generator().manual_seed(3)
    seeded = Rows(10, slice(0, 5)).rand((5, 3), "cpu", generator=g)
    assert torch.equal(seeded, torch.rand(10, 3, generator=torch.Generator().manual_seed(3))[:5])


def test_launch_flags_are_taken_off_the_ranks_arguments():
    assert _without_launch_flags(
        ["train", "ae", "--devices", "2", "--port=29400", "--epochs", "3", "--devices=4"]
    ) == ["train", "ae", "--epochs", "3"]


def test_commands_that_do_not_train_refuse_to_run_as_ranks(runner, monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "0")
    r = runner.invoke(app, ["embed"])
    assert r.exit_code == 2
    assert "udl embed runs in one process; torchrun (or --devices) is for train" in one_error_line(
        r
    )
