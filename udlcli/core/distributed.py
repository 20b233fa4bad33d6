"""Data-parallel training over processes: the ranks torchrun starts, their process group, sharded batches, all-reduced numbers, and `--devices N`'s own launch.

    udl train ae --devices 2          udlcli/cli/launch.py: torchrun's elastic launcher starts 2
                                      ranks of the same command (GPUs with NCCL, else CPU processes with gloo)
    torchrun ... -m udlcli train ...  each rank reads RANK / WORLD_SIZE / LOCAL_RANK from torchrun

In every rank, lifecycle.setup() calls init(), which joins the process group. The trainer then
wraps a Trainable's loss in DistributedDataParallel, takes the rank's shard of every global batch
(shard()), and all-reduces its epoch numbers (all_sum()). Rank 0 alone writes: the run folder, the
checkpoints, metrics, figures and the progress bar; the others print nothing and end, through
rest_on_main(), once the numbers that need every rank (validation, test) are in.
"""

from __future__ import annotations

import atexit
import os
import sys
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
