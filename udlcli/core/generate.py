"""New images from any run that generates (core/contracts.py's Generates): `udl sample`, `udl evaluate` and udlcli.load share it.

options  the keyword options a family's sampler takes (an AE's --gmm, a diffusion model's --steps):
         split between its fit_sampler and its generate by their signatures; one it takes
         in neither is a one-line error naming the command
fit      a model that FitsSampler (the AE) is fitted to its training images' codes first,
         read from the run's own dataset
draw     generate(n, generator) with a CPU generator seeded with `seed`: the same images on any device
"""

from __future__ import annotations

import inspect
from pathlib import Path

import torch

from udlcli.core.contracts import FitsSampler, Generates
from udlcli.core.latent import encode, run_dataset
from udlcli.core.loading import LoadedRun, load_run
from udlcli.errors import SpecError

FIT_SKIP = ("codes", "held_out", "seed")
"""fit_sampler's arguments that udl fills in itself, never options."""


def split_options(model: torch.nn.Module, options: dict, command: str) -> tuple[dict, dict]:
    """(fit options, generate options) of the options given; one neither takes is a SpecError."""
    fit = _params(model.fit_sampler) - set(FIT_SKIP) if isinstance(model, FitsSampler) else set()
    gen = _params(model.generate) - {"n", "generator"}
    bad = [k for k in options if k not in fit | gen]
    if bad:
        raise SpecError(f"{flag_of(bad[0])} does not apply to {command}")
    return {k: v for k, v in options.items() if k in fit}, {
        k: v for k, v in options.items() if k in gen
    }


def flag_of(option: str) -> str:
    """The command-line flag of a sampling option: class_ -> --class, interpolate_index -> --interpolate-index."""
    return "--" + option.strip("_").replace("_", "-")


def options_tag(options: dict) -> str:
    """What a file name carries of the sampling options, so two settings never share a file:
    {"steps": 10, "sampler": "heun"} -> "_steps10_heun" ("" for none)."""
    return "".join(f"_{k}{v}" if not isinstance(v, str) else f"_{v}" for k, v in options.items())


def _params(fn) -> set[str]:
    return {
        p.name
        for p in inspect.signature(fn).parameters.values()
        if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
    }


def fit(
    loaded: LoadedRun,
    device: torch.device,
    seed: int,
    data_dir=None,
    held_out: bool = False,
    **options,
) -> dict:
    """Fit a FitsSampler model to its training codes (held_out: score the test codes too); {} for other models."""
    model = loaded.model
    if not isinstance(model, FitsSampler):
        return {}
    from udlcli.core.progress import status

    data = run_dataset(loaded, data_dir)
    with status(f"encoding {len(data.train):,} training images and fitting the sampler"):
        codes = encode(model.to(device), data.train, device)
        test = encode(model, data.test, device) if held_out else None
        info = model.fit_sampler(codes, test, seed=seed, **options)
    return {**info, "dataset": data.name}


@torch.no_grad()
def draw(
    model: torch.nn.Module, n: int, seed: int, device: torch.device, **options
) -> torch.Tensor:
    """n images (n, C, H, W) float32 in [0, 1] on the CPU, from a CPU generator seeded with `seed`."""
    model.to(device).eval()
    images = model.generate(n, torch.Generator().manual_seed(seed), **options)
    return images.float().clamp(0, 1).cpu()


def generate_run(
    run: str | Path, n: int, seed: int = 0, device: str = "cpu", data_dir=None, **options
) -> torch.Tensor:
    """n samples (n, C, H, W) float32 in [0, 1] on the CPU of a run, drawn as `udl sample KIND --n n --seed seed` draws them."""
    from udlcli.core.device import resolve_device

    loaded = load_run(run, needs=(Generates,))
    dev = resolve_device(device)
    fit_opts, gen_opts = split_options(loaded.model, options, "udl evaluate")
    fit(loaded, dev, seed, data_dir, **fit_opts)
    return draw(loaded.model, n, seed, dev, **gen_opts)
