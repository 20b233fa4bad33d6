"""`udl sample KIND [RUN]`: new images of any run that generates, a walk between test images, or a latent grid.

What a run can be asked for follows from its model's capabilities (core/contracts.py):

    (default)                      Generates: n samples as a grid, RUN/samples/<kind>_samples[_<options>].png,
                                   or one PNG each (--individual) into RUN/samples/<kind>_individual_seedS/
    --interpolate / -index         Reconstructs: decoded codes between two test images (<kind>_interpolate_*.png)
    --grid                         SamplesPrior: a K x K traversal of two latent dimensions (<kind>_grid.png)

A family's own sampling options (an AE's --gmm, a diffusion model's --steps) reach its fit_sampler or
generate (core/generate.py); a run of another family than KIND, or one that lacks what is asked, is one line.
"""

from __future__ import annotations

from pathlib import Path

from udlcli import plots
from udlcli.core import generate, runs
from udlcli.core.contracts import Generates, Iterative, Reconstructs, SamplesPrior
from udlcli.core.device import resolve_device
from udlcli.core.images import save_individual
from udlcli.core.latent import run_dataset
from udlcli.core.loading import cannot, lacking, load_run
from udlcli.errors import SpecError
from udlcli.models import get
from udlcli.tasks.sample.common import MAX_SAMPLES, SampleResult, interpolate_strip, parse_pair
from udlcli.tasks.sample.grid import MAX_GRID, check_grid, latent_grid, parse_dims

MAX_INDIVIDUAL = 100_000  # one PNG each with --individual; a grid shows at most MAX_SAMPLES


def sample(
    kind: str,
    run: str | Path | None = None,
    root: str | Path = "runs",
    seed: int = 0,
    data_dir: str | Path | None = None,
    device: str | None = None,
    command: str = "",
    n: int | None = None,
    individual: bool = False,
    to: str | Path | None = None,
    interpolate: str | None = None,
    interpolate_index: str | None = None,
    grid: bool = False,
    size: int | None = None,
    dims: str | None = None,
    range_: float | None = None,
    anchor: int | None = None,
    options: dict | None = None,
) -> SampleResult:
    """Sample a run of family `kind` (the newest under root when run is None); every option is checked before anything is loaded."""
    options = {k: v for k, v in (options or {}).items() if v is not None}
    family = get(kind)
    walk = interpolate or interpolate_index
    grid_only = {"--size": size, "--dims": dims, "--range": range_, "--anchor": anchor}
    _check(walk, interpolate, interpolate_index, grid, grid_only, n, individual, to, options, run)
    needs = (Reconstructs,) if walk else (SamplesPrior,) if grid else (Generates,)
    pair = parse_dims(dims) if dims is not None else (0, 1)
    k = 15 if size is None else size
    if grid:
        check_grid(k, pair, range_, None)
    missing = lacking(family.model, needs)
    if missing:
        raise SpecError(f"udl sample {kind}: {cannot(kind, missing)}")
    loaded = load_run(
        run, root, needs=needs, family=kind, prefer="best", hint="sample it with udl sample {kind}"
    )
    dev = resolve_device(device or "auto")
    meta = {"command": command, "checkpoint": str(loaded.checkpoint), "seed": seed}
    if walk:
        loaded.model.to(dev)
        by_class = bool(interpolate)
        pair = parse_pair("--interpolate" if by_class else "--interpolate-index", walk)
        return interpolate_strip(
            loaded, run_dataset(loaded, data_dir), dev, pair, by_class, seed, meta, prefix=kind
        )
    if grid:
        return latent_grid(loaded, dev, k, pair, range_, anchor, data_dir, meta)
    fit_opts, gen_opts = generate.split_options(loaded.model, options, f"udl sample {kind}")
    n = 64 if n is None else n
    fitted = generate.fit(loaded, dev, seed, data_dir, held_out=True, **fit_opts)
    images = generate.draw(loaded.model, n, seed, dev, **gen_opts)  # (n, C, H, W)
    info = {**meta, "n": n, **options, **fitted}
    rows = {
        "model": f"{family.title} ({family.description}), {loaded.checkpoint.name}",
        "samples": f"{n} (seed {seed})",
        **{k: str(v) for k, v in fitted.items() if k in ("density", "test_code_loglik")},
    }
    tag = generate.options_tag(options)
    if individual:
        folder = (
            Path(to)
            if to is not None
            else loaded.run_dir / "samples" / f"{kind}_individual{tag}_seed{seed}"
        )
        files = save_individual(images, folder)
        js = runs.write_json(folder / "samples.json", info)
        rows["folder"] = f"{folder} ({len(files)} PNGs, {images.shape[-2]}x{images.shape[-1]})"
        return SampleResult(loaded.run_dir, [js], rows)
    png = plots.image_grid(
        images,
        loaded.run_dir / "samples" / f"{kind}_samples{tag}.png",
        title=f"{n} samples of the {family.title} (seed {seed})",
    )
    files = [png, runs.write_json(png.with_suffix(".json"), info)]
    if isinstance(loaded.model, Iterative):
        files.append(_trajectory(loaded, kind, tag, seed, gen_opts))
    return SampleResult(loaded.run_dir, files, rows)


def _trajectory(loaded, kind: str, tag: str, seed: int, options: dict) -> Path:
    """The first sample's way from noise to image, in frames: <kind>_trajectory[_<options>].png."""
    import torch

    frames = loaded.model.trajectory(torch.Generator().manual_seed(seed), **options).float().cpu()
    cols = ["noise"] + [f"{i}/{len(frames) - 1}" for i in range(1, len(frames) - 1)] + ["image"]
    return plots.image_rows(
        [frames],
        ["sample 0"],
        loaded.run_dir / "samples" / f"{kind}_trajectory{tag}.png",
        col_labels=cols,
    )


def _check(
    walk, interpolate, interpolate_index, grid, grid_only, n, individual, to, options, run
) -> None:
    if interpolate and interpolate_index:
        raise SpecError(
            "give --interpolate A,B (two classes) or --interpolate-index i,j (two test images), not both"
        )
    if grid and (walk or n is not None):
        raise SpecError(
            f"--grid decodes a traversal of two latent dimensions; drop {'--n' if n is not None else '--interpolate'}"
        )
    if not grid and any(v is not None for v in grid_only.values()):
        flag = next(k for k, v in grid_only.items() if v is not None)
        raise SpecError(f"{flag} applies to --grid only (udl sample KIND --grid ...)")
    if walk and options:
        flag = generate.flag_of(next(iter(options)))
        raise SpecError(f"{flag} applies to random samples, not to --interpolate; drop one of them")
    if walk and n is not None:
        raise SpecError(
            "--n sets the number of samples, not the steps of --interpolate; drop one of them"
        )
    if (walk or grid) and (individual or to is not None):
        raise SpecError(
            "--individual writes random samples one PNG each; drop it with --interpolate or --grid"
        )
    if to is not None and not individual:
        raise SpecError(
            "--to DIR is where --individual writes one PNG per sample; add --individual, or drop --to for a grid"
        )
    limit = MAX_INDIVIDUAL if individual else MAX_SAMPLES
    if not walk and not grid and n is not None and not 1 <= n <= limit:
        raise SpecError(
            f"--n {n}: draw between 1 and {limit} samples{'' if individual else ' for a grid (use --individual for more)'}"
        )
    if grid and run is not None and not Path(run).exists() and str(run).lstrip("-").isdigit():
        raise SpecError(
            f"--grid takes no value ({run} was read as the run folder); set the grid's size with --size K (2..{MAX_GRID}, default 15)"
        )
