"""Resolve --device auto|cpu|cuda|mps to a torch.device, with a clear error when it is not there."""

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
