"""Resolve --device auto|cpu|cuda|mps to a torch.device, and --devices lists for workers, with clear errors when they are not there."""

from __future__ import annotations

import torch

from udlcli.errors import DeviceError


def _mps_ok() -> bool:
    return bool(getattr(torch.backends, "mps", None)) and torch.backends.mps.is_available()


def resolve_device(name: str = "auto") -> torch.device:
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        return torch.device("mps") if _mps_ok() else torch.device("cpu")
    if name == "cuda" and not torch.cuda.is_available():
        built = "with" if torch.version.cuda else "without"
        raise DeviceError(
            f"--device cuda: CUDA is not available on this machine (torch {torch.__version__} is built {built} CUDA, "
            "but no usable GPU was found); use --device cpu or --device auto"
        )
    if name == "mps" and not _mps_ok():
        raise DeviceError(
            "--device mps: Apple's MPS backend is not available here; use --device cpu or --device auto"
        )
    return torch.device(name)


def describe(device: torch.device) -> str:
    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    return device.type


def parse_devices(text: str) -> list[str]:
    """--devices cuda:0,cuda:1 (or cpu,cpu; cuda; mps) -> the checked names, in order; one line for a device that is not there."""
    names = [d.strip() for d in text.split(",") if d.strip()]
    if not names:
        raise DeviceError("--devices: give a comma-separated list, e.g. cuda:0,cuda:1 or cpu,cpu")
    for d in names:
        kind, _, index = d.partition(":")
        if kind not in ("cpu", "cuda", "mps") or (
            index and (kind != "cuda" or not index.isdigit())
        ):
            raise DeviceError(
                f"--devices {text}: {d!r} is not a device; use cpu, cuda, cuda:N or mps"
            )
        try:
            resolve_device(kind)  # CUDA or MPS missing altogether
        except DeviceError as e:
            raise DeviceError(f"--devices {text}: {str(e).split(': ', 1)[-1]}") from None
        if index and int(index) >= torch.cuda.device_count():
            n = torch.cuda.device_count()
            raise DeviceError(
                f"--devices {text}: {d} does not exist; this machine has {n} GPU{'s' if n != 1 else ''} "
                f"(cuda:0 to cuda:{n - 1})"
            )
    return names


def round_robin(devices: list[str], n_workers: int) -> list[str]:
    """Worker i's device: devices[i % len(devices)] (8 workers on 4 GPUs: 2 a GPU)."""
    return [devices[i % len(devices)] for i in range(n_workers)]


def use_device(name: str) -> str:
    """Make a --devices entry this process's device; returns the --device kind a spec takes ("cuda:1" -> "cuda")."""
    kind, _, index = name.partition(":")
    if index:
        torch.cuda.set_device(int(index))  # "cuda" now means this GPU for the whole process
    return kind
