"""The fast path of one device: mixed precision (--precision) and torch.compile (--compile), checked before a run starts.

    precision "auto"      the default: bf16 where the device has bfloat16 units (a CUDA GPU that does
                          bf16; a CPU with AMX or AVX512-BF16) and the model gains from them (its
                          class says `bf16_pays`: convolution-heavy U-Nets and backbones), else 32.
                          The choice and its reason go to spec.yaml's meta (choose())
              "32"        float32 throughout
              "bf16"      the forward pass and loss under torch.autocast(bfloat16); weights, optimiser
                          and gradients stay float32. bfloat16 has float32's range, so no loss scaling
              "16-mixed"  autocast(float16) with a GradScaler, which scales the loss so small
                          gradients survive float16's range, and skips steps whose gradients overflow
    compile               the model's loss function (its forward and loss) through torch.compile; the
                          first batches of each shape compile (seconds to a minute), later ones run fused

Both pay on a GPU (tensor cores, fewer kernel launches). On a CPU, bf16 pays only where oneDNN
has bf16 kernels (AMX, AVX512-BF16) and the model's time goes to convolutions and matmuls; without
those units it is much slower than float32. The trainer applies them to models that train through
the Trainable contract; a model that takes its own steps (Adversarial, the GAN) trains float32 and
eager, and asking it for either is a one-line error before anything is written.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable

import torch

from udlcli.errors import SpecError

DTYPES = {"32": None, "bf16": torch.bfloat16, "16-mixed": torch.float16}


def cpu_bf16_units() -> str | None:
    """'AMX' or 'AVX512-BF16' when this CPU has bfloat16 matrix units, else None (torch's own CPU
    capabilities where it has them, else the kernel's CPU flags)."""
    caps = getattr(torch.cpu, "get_capabilities", None)
    if caps is not None:
        have = caps()
        flags = {k for k in ("amx_bf16", "avx512_bf16") if have.get(k)}
    else:  # an older torch: Linux's flags
        try:
            text = open("/proc/cpuinfo").read()
        except OSError:
            text = ""
        flags = {k for k in ("amx_bf16", "avx512_bf16") if f" {k}" in text}
    return "AMX" if "amx_bf16" in flags else ("AVX512-BF16" if flags else None)


def device_bf16(device: torch.device) -> str | None:
    """What gives this device fast bfloat16, or None: a CUDA GPU that does it, or CPU units."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device) if torch.cuda.is_bf16_supported() else None
    if device.type == "cpu":
        units = cpu_bf16_units()
        return f"this CPU's {units} units" if units else None
    return None


def choose(cfg, device: torch.device, model_class: type | None = None) -> tuple[str, str]:
    """The precision a run trains in, and why: cfg.precision itself unless it is "auto".

    auto: bf16 when the device has bfloat16 units and the model gains from them (its class's
    `bf16_pays`, measured in benchmarks/cpu_speed.py); float32 otherwise."""
    from udlcli.core.contracts import Adversarial

    if cfg.precision != "auto":
        return cfg.precision, "asked for (--precision)"
    if model_class is not None and issubclass(model_class, Adversarial):
        return "32", "auto: a model that takes its own steps trains in float32"
    units = device_bf16(device)
    if units is None:
        return "32", f"auto: {device.type} has no bfloat16 units (bf16 would be slower)"
    if not getattr(model_class, "bf16_pays", False):
        return "32", f"auto: {units} do bf16, but this model is too small to gain from them"
    return "bf16", f"auto: {units} do bf16, and this model's convolutions gain from them"


def autocast(device: torch.device, precision: str):
    """The autocast context of a precision ("32": none)."""
    dtype = DTYPES[precision]
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def grad_scaler(device: torch.device, precision: str) -> torch.amp.GradScaler | None:
    return torch.amp.GradScaler(device.type) if precision == "16-mixed" else None


def resolve(cfg, device: torch.device, model_class: type | None = None) -> str:
    """Put the precision the run trains in into cfg (auto's choice), check it, and return why."""
    precision, why = choose(cfg, device, model_class)
    cfg.precision = precision
    cfg._precision_why = why  # for the run's meta (not a spec field: a rerun chooses anew)
    check(cfg, device, model_class)
    return why


def check(cfg, device: torch.device, model_class: type | None = None) -> None:
    """One-line errors, before anything is written, for a precision or --compile this device (or model) cannot run."""
    from udlcli.core.contracts import Adversarial

    precision = cfg.precision
    if model_class is not None and issubclass(model_class, Adversarial):
        asked = [f"--precision {precision}"] * (precision != "32") + ["--compile"] * bool(
            cfg.compile
        )
        if asked:
            raise SpecError(
                f"{' and '.join(asked)}: this model takes its own optimiser steps (two networks, two "
                "optimisers) in float32, eager; drop the option (--precision 32, --no-compile)"
            )
    if precision == "bf16" and device.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise SpecError(
            f"--precision bf16: {torch.cuda.get_device_name(device)} has no bfloat16 support; "
            "use --precision 16-mixed or 32"
        )
    if precision != "32" and device.type == "mps":
        raise SpecError(f"--precision {precision} is not supported on mps here; use --precision 32")
    if cfg.compile:
        _check_compile(device)


def _check_compile(device: torch.device) -> None:
    # torch.compile fails only when first called (no C++ compiler, an unsupported Python): try a
    # tiny function now, so the error is one line before the run folder exists.
    try:
        fn = torch.compile(lambda t: torch.relu(t) * 2.0)
        fn(torch.ones(4, device=device))
    except Exception as e:  # the backends raise many types; every one means "not available here"
        first = (str(e).strip().splitlines() or [e.__class__.__name__])[0]
        raise SpecError(
            f"--compile: torch.compile does not work here ({e.__class__.__name__}: {first[:160]}); "
            "run without --compile (a C++ compiler is needed on the CPU)"
        ) from None


def compiled(fn: Callable, enabled: bool) -> Callable:
    """fn through torch.compile when enabled (the model's weights and state_dict are untouched)."""
    return torch.compile(fn) if enabled else fn
