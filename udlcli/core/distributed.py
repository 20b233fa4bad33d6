"""Data-parallel training over processes: the ranks torchrun starts, their process group, sharded batches, all-reduced numbers, and `--devices N`'s own launch.

    udl train ae --devices 2          launch(): torchrun's elastic launcher starts 2 ranks of the
                                      same command (GPUs with NCCL, else CPU processes with gloo)
    torchrun ... -m udlcli train ...  each rank reads RANK / WORLD_SIZE / LOCAL_RANK from torchrun

In every rank, lifecycle.setup() calls init(), which joins the process group. The trainer then
wraps a Trainable's loss in DistributedDataParallel, takes the rank's shard of every global batch
(shard()), and all-reduces its epoch numbers (all_sum()). Rank 0 alone writes: the run folder, the
checkpoints, metrics, figures and the progress bar; the others print nothing and end, through
rest_on_main(), once the numbers that need every rank (validation, test) are in.
"""

from __future__ import annotations

import atexit
import logging
import os
import signal
import socket
import sys
import tempfile
import uuid
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import torch
import torch.distributed as dist

from udlcli import ui
from udlcli.errors import DeviceError, DistributedError

TIMEOUT_S = 600
"""How long a collective waits for a rank that does not come (then the job ends with an error)."""

LOST = "another rank of the job stopped"
"""How a rank's error begins when a collective failed because a peer went away (not its own fault)."""

RUN_DIR_FILE = "UDL_RUN_DIR_FILE"
ERROR_DIR = "UDL_RANK_ERRORS"
"""Set by launch() for its ranks: where rank 0 names the run folder, and where every rank leaves its error line."""


@dataclass(frozen=True)
class World:
    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def world() -> World:
    """This process's place in the job (World() when it trains alone)."""
    if not (dist.is_available() and dist.is_initialized()):
        return World()
    return World(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", 0)))


def launched() -> bool:
    """True in a process torchrun (or `--devices N`) started as one rank of several."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def init(device: torch.device) -> torch.device:
    """Join the job's process group when this process is one of several ranks; the rank's device.

    On CUDA each rank takes GPU LOCAL_RANK and NCCL; on the CPU gloo, with the cores shared out
    between the ranks of the machine (2 ranks on 2 cores: 1 thread each).
    """
    if not launched() or dist.is_initialized():
        return device
    local, local_size = (
        int(os.environ.get("LOCAL_RANK", 0)),
        int(os.environ.get("LOCAL_WORLD_SIZE", 1)),
    )
    if device.type == "cuda":
        if local >= torch.cuda.device_count():
            raise DeviceError(
                f"rank {os.environ.get('RANK')} needs GPU {local} but this machine has "
                f"{torch.cuda.device_count()}; start at most that many ranks per machine"
            )
        torch.cuda.set_device(local)  # "cuda" now means this rank's GPU
        backend = "nccl"
    elif device.type == "cpu":
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // local_size))
        backend = "gloo"
    else:
        raise DeviceError(
            f"--devices: training over several processes needs CUDA or the CPU, not {device.type}"
        )
    dist.init_process_group(backend, timeout=timedelta(seconds=TIMEOUT_S))
    atexit.register(_leave)
    if dist.get_rank() != 0:
        ui.console.quiet = True  # rank 0 shows the progress; the others would repeat it
    return device


def _leave() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


# ---------------------------------------------------------------- inside a job


def shard(n: int) -> slice:
    """The rows of a global batch of n that this rank trains on: contiguous, sizes differing by 1 at most."""
    w = world()
    base, extra = divmod(n, w.size)
    lo = w.rank * base + min(w.rank, extra)
    return slice(lo, lo + base + (1 if w.rank < extra else 0))


def all_sum(t: torch.Tensor) -> torch.Tensor:
    """t summed over the ranks (in place; t itself when training alone)."""
    if world().size > 1:
        dist.all_reduce(t)
    return t


def average_gradients(params) -> None:
    """Average .grad over the ranks, as DDP's reducer does (one flat all-reduce)."""
    grads = [p.grad for p in params if p.grad is not None]
    if not grads or world().size == 1:
        return
    flat = torch.cat([g.reshape(-1) for g in grads]).div_(world().size)
    dist.all_reduce(flat)
    offset = 0
    for g in grads:
        g.copy_(flat[offset : offset + g.numel()].view_as(g))
        offset += g.numel()


def draw_rows(fn, shape: tuple[int, ...], device, dtype=None) -> torch.Tensor:
    """fn(shape) (torch.randn, torch.rand) for a batch's rows, drawn for the whole global batch and
    sliced to this rank's rows during a training step of several ranks.

    Models that draw noise per image (the GAN's z, the VAE's epsilon, the DAE's corruption) call
    this, so N ranks see the noise one process would, and train to the same weights.
    """
    n = _global_rows
    if n is None or world().size == 1:
        return fn(shape, device=device, dtype=dtype)
    return fn((n, *shape[1:]), device=device, dtype=dtype)[shard(n)]


_global_rows: int | None = None


def set_global_rows(n: int | None) -> None:
    """The trainer names the global batch size of the step in progress (draw_rows reads it)."""
    global _global_rows
    _global_rows = n


def barrier() -> None:
    if world().size > 1:
        dist.barrier()


def share_path(path: Path | None) -> Path:
    """Rank 0's path (a new run folder) given to every rank; rank 0 also names it for launch()."""
    w = world()
    if w.size > 1:
        box = [str(path) if w.is_main else None]
        dist.broadcast_object_list(box, src=0)  # a string, between this job's own processes
        path = Path(box[0])
    if w.is_main and os.environ.get(RUN_DIR_FILE):
        Path(os.environ[RUN_DIR_FILE]).write_text(str(path))
    return path


def rest_on_main() -> None:
    """Every rank but 0 ends here (exit 0): what follows only writes the run folder."""
    if world().size > 1 and not world().is_main:
        exit_rank(0)


def exit_rank(code: int) -> None:
    """End a rank: leave the process group, flush, and exit without the interpreter's teardown.

    Tearing down with the group's C++ worker threads (and DDP's reducer) still alive can abort the
    process (SIGABRT, "terminate called without an active exception"), which the launcher would
    report as a failed rank after the work was done.
    """
    _leave()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(code)


def link_error(e: BaseException) -> DistributedError | None:
    """A collective that failed because another rank went away, as a one-line error (None: not that)."""
    if world().size == 1 or not isinstance(e, RuntimeError):
        return None
    text = str(e)
    if not any(k in text.lower() for k in ("gloo", "nccl", "connection", "timed out", "socket")):
        return None
    first = text.strip().splitlines()[0] if text.strip() else e.__class__.__name__
    return DistributedError(f"{LOST} ({first[:120]})")


def record_error(msg: str) -> bool:
    """In a rank started by launch(): keep the error line for the launcher, which prints one line for
    the whole job. Under plain torchrun only rank 0 prints. True: the caller prints nothing."""
    if not launched():
        return False
    where = os.environ.get(ERROR_DIR)
    rank = os.environ.get("RANK", "0")
    if where:
        Path(where, f"rank{rank}.txt").write_text(msg)
        return True
    return rank != "0"


# ---------------------------------------------------------------- `--devices N`


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
