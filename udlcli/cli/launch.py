"""`--devices N`: start N ranks of the same command through torchrun's elastic launcher, and say in one line how a failed job ended.

The ranks themselves (their process group, shards and all-reduced numbers) are udlcli/core/distributed.py;
this is the launching side, which only the command line does. Rank 0 names its run folder in a file
(distributed.RUN_DIR_FILE) and every rank leaves its error line in a folder (distributed.ERROR_DIR),
so the launcher can name the run to resume and the rank to blame.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import sys
import tempfile
import uuid
from pathlib import Path

import torch

from udlcli import ui
from udlcli.core.distributed import ERROR_DIR, LOST, RUN_DIR_FILE
from udlcli.errors import DeviceError, DistributedError


def plan_devices(n: int, device: str | None) -> str:
    """What N ranks run on ("cuda" or "cpu"), or a one-line error (more ranks than GPUs)."""
    if n < 1:
        raise DeviceError(f"--devices {n}: give 1 or more ranks")
    kind = device or "auto"
    if kind == "auto":
        kind = "cuda" if torch.cuda.is_available() else "cpu"
    if kind == "mps":
        raise DeviceError(
            "--devices: several processes need CUDA or the CPU; mps trains in one process"
        )
    if kind == "cuda":
        have = torch.cuda.device_count()
        if have == 0:
            raise DeviceError(
                f"--devices {n} --device cuda: no GPU is visible here; use --device cpu for CPU ranks"
            )
        if n > have:
            raise DeviceError(
                f"--devices {n}: this machine has {have} GPU{'s' if have != 1 else ''}; "
                f"use --devices {have} or fewer (or torchrun over several machines, see docs/distributed.md)"
            )
    return kind


def free_port(port: int | None) -> int:
    """The rendezvous port: `port` when it is free, else a one-line error; None: one the OS picks."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind(("127.0.0.1", port or 0))
        except OSError:
            raise DistributedError(
                f"--port {port} is in use (another job, or a server); give another --port or leave it out to take a free one"
            ) from None
        return s.getsockname()[1]


def launch(args: list[str], n: int, device: str | None, port: int | None, resume_hint: str) -> None:
    """Run `udl <args>` as n ranks on this machine through torchrun's elastic launcher, and wait.

    The ranks' own output is rank 0's progress. When a rank fails, the launcher stops the others and
    this raises one line: the first failure, and the command that continues the run.
    """
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.launcher.api import LaunchConfig, elastic_launch

    kind = plan_devices(n, device)
    port = free_port(port)
    if kind == "cpu":  # each rank sets its own thread count; keep OpenMP from oversubscribing first
        os.environ.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // n)))
    logging.getLogger("torch.distributed.elastic").setLevel(logging.CRITICAL)
    with tempfile.TemporaryDirectory(prefix="udl-ranks-") as tmp:
        os.environ[RUN_DIR_FILE] = str(Path(tmp, "run_dir"))
        os.environ[ERROR_DIR] = tmp
        config = LaunchConfig(
            min_nodes=1,
            max_nodes=1,
            nproc_per_node=n,
            run_id=uuid.uuid4().hex[:12],
            rdzv_backend="c10d",
            rdzv_endpoint=f"127.0.0.1:{port}",
            rdzv_configs={"is_host": True},
            max_restarts=0,  # a failed rank ends the job; --resume continues it
            monitor_interval=0.5,
            shutdown_timeout=10,
        )
        ui.info(
            f"launching {n} ranks on {kind} ({'NCCL' if kind == 'cuda' else 'gloo'}), rendezvous on port {port}"
        )
        try:
            elastic_launch(config, sys.executable)("-m", "udlcli", *args)
        except ChildFailedError as e:
            raise _failure(e, n, Path(tmp), resume_hint) from None
        finally:
            os.environ.pop(RUN_DIR_FILE, None)
            os.environ.pop(ERROR_DIR, None)


def _failure(e, n: int, tmp: Path, resume_hint: str) -> DistributedError:
    said = {
        r: (tmp / f"rank{r}.txt").read_text()
        for r in e.failures
        if (tmp / f"rank{r}.txt").is_file()
    }
    rank, failure = min(e.failures.items(), key=lambda rf: _blame(rf[0], rf[1], said))
    run_file = tmp / "run_dir"
    run_dir = run_file.read_text() if run_file.is_file() else None
    if rank in said:  # the rank's own one-line error (bad data, a spec, a diverged loss)
        msg = said[rank]
    elif failure.exitcode < 0:
        msg = f"rank {rank} of {n} was stopped by {_signal_name(-failure.exitcode)}; the other ranks were stopped too"
    else:
        msg = f"rank {rank} of {n} ended with exit code {failure.exitcode}; the other ranks were stopped"
    if run_dir and (Path(run_dir) / "weights" / "last.pt").is_file() and "--resume" not in msg:
        msg += f". The last checkpoint is kept: resume with {resume_hint} {run_dir}"
    err = DistributedError(msg)
    err.exit_code = (
        failure.exitcode
        if failure.exitcode > 0
        else 130
        if failure.exitcode == -signal.SIGINT
        else 1
    )
    return err


def _blame(rank: int, failure, said: dict[int, str]) -> tuple[int, float]:
    """Which failed rank is the cause (lowest first): a rank killed by a signal other than SIGTERM
    (the launcher stops the others with SIGTERM), then a rank's own error that is not the echo of
    another rank's loss, then the rest; the earliest of a kind."""
    own = said.get(rank)
    if failure.exitcode < 0 and own is None and failure.exitcode != -signal.SIGTERM:
        kind = 0
    elif own is not None and not own.startswith(LOST):
        kind = 1
    else:
        kind = 2
    return kind, failure.timestamp


def _signal_name(num: int) -> str:
    try:
        return signal.Signals(num).name
    except ValueError:
        return f"signal {num}"
