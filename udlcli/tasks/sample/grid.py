"""`udl sample KIND --grid`: the K x K traversal of two latent dimensions of a model with a N(0, I) prior (the report's Fig. 6)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch

from udlcli import plots
from udlcli.core import runs
from udlcli.core.images import tile
from udlcli.core.latent import decode, run_dataset
from udlcli.core.loading import LoadedRun
from udlcli.errors import SpecError
from udlcli.tasks.sample.common import SampleResult, parse_pair

SAMPLES = "samples"
GRID_PROBS = (0.05, 0.95)
"""Without --range, grid values are the normal quantiles of probabilities evenly spaced over this interval."""
MAX_GRID = 40  # 40 x 40 tiles is already a 1120-pixel-wide image


def parse_dims(dims: str) -> tuple[int, int]:
    """'2,5' -> (2, 5); anything else is a one-line error."""
    i, j = parse_pair("--dims", dims)
    if not (i.isdigit() and j.isdigit()):
        raise SpecError(
            f"--dims {dims!r}: give two latent dimensions as I,J (whole numbers from 0), for example --dims 0,1"
        )
    return int(i), int(j)


def grid_values(k: int, value_range: float | None = None) -> np.ndarray:
    """k latent values for one axis: ±value_range evenly spaced, else evenly spaced in probability under N(0, 1).

    Probabilities 0.05 ... 0.95 map through the inverse normal CDF to -1.645 ... 1.645, so each
    tile covers an equal share of the prior's mass and the tiles crowd where the codes are dense.
    """
    if value_range is not None:
        return np.linspace(-value_range, value_range, k)
    p = torch.linspace(GRID_PROBS[0], GRID_PROBS[1], k, dtype=torch.float64)
    return torch.special.ndtri(p).numpy()


def check_grid(
    k: int, dims: tuple[int, int], value_range: float | None, latent_dim: int | None
) -> None:
    """The grid's options; with latent_dim None only what can be checked before the run is loaded."""
    if not 2 <= k <= MAX_GRID:
        raise SpecError(
            f"--size {k}: a grid needs between 2 and {MAX_GRID} values per axis (default 15)"
        )
    if dims[0] == dims[1]:
        raise SpecError(
            f"--dims {dims[0]},{dims[1]}: the two dimensions must differ, for example --dims 0,1"
        )
    if value_range is not None and not (0 < value_range <= 10 and math.isfinite(value_range)):
        raise SpecError(
            f"--range {value_range}: give a half-width r with 0 < r <= 10 (values then span -r..r)"
        )
    if latent_dim is None:
        return
    if latent_dim < 2:
        raise SpecError(
            f"this model has a {latent_dim}-dimensional latent space; a grid needs 2 dimensions (train with --latent-dim 2 or more)"
        )
    bad = [i for i in dims if not 0 <= i < latent_dim]
    if bad:
        raise SpecError(
            f"--dims {dims[0]},{dims[1]}: dimension {bad[0]} is out of range; its latent dimensions are 0..{latent_dim - 1}"
        )


def latent_grid(
    loaded: LoadedRun,
    dev: torch.device,
    k: int,
    dims: tuple[int, int],
    value_range: float | None,
    anchor: int | None,
    data_dir,
    meta: dict,
) -> SampleResult:
    """Decode a k x k grid over latent dims (i, j), the others at 0 or at test image `anchor`'s mu (Fig. 6)."""
    model, d = loaded.model.to(dev), loaded.model.latent_dim
    check_grid(k, dims, value_range, d)
    base = torch.zeros(d)  # (d,): the code every tile starts from
    if anchor is not None:
        test = run_dataset(loaded, data_dir).test
        if not 0 <= anchor < len(test):
            raise SpecError(f"--anchor {anchor}: the test split has images 0..{len(test) - 1}")
        with torch.no_grad():
            base = model.encode(test.images(torch.tensor([anchor])).to(dev))[0].float().cpu()
    values = grid_values(k, value_range)
    # Row r (top to bottom) holds the (k-1-r)-th value of dim j, so dim j grows upwards as on a plot;
    # column c holds the c-th value of dim i.
    z = base.repeat(k * k, 1)  # (k*k, d), row-major over the picture
    z[:, dims[0]] = torch.tensor(np.tile(values, k), dtype=torch.float32)
    z[:, dims[1]] = torch.tensor(np.repeat(values[::-1], k).copy(), dtype=torch.float32)
    images = decode(model, z, dev)  # (k*k, C, H, W) on the CPU
    out = loaded.run_dir / SAMPLES
    how = (
        f"±{value_range:g}, evenly spaced"
        if value_range is not None
        else f"N(0,1) quantiles of p = {GRID_PROBS[0]}..{GRID_PROBS[1]}"
    )
    held = f"test image {anchor}'s μ" if anchor is not None else "0"
    png = _grid_figure(
        images,
        values,
        dims,
        out / f"{loaded.kind}_grid.png",
        f"{loaded.run_dir.name}: latent dims {dims[0]} and {dims[1]} ({how}); other dims at {held}",
    )
    info = {
        **meta,
        "dims": list(dims),
        "values": [round(float(v), 4) for v in values],
        "anchor": anchor,
        "latent_dim": d,
    }
    js = runs.write_json(out / f"{loaded.kind}_grid.json", info)
    rows = {
        "grid": f"{k} x {k} over z[{dims[0]}] (x) and z[{dims[1]}] (y)",
        "values": f"{values[0]:.3f} .. {values[-1]:.3f} ({how})",
        "other dims": held,
    }
    return SampleResult(loaded.run_dir, [png, js], rows)


def _grid_figure(
    images: torch.Tensor, values: np.ndarray, dims: tuple[int, int], path: Path, title: str
) -> Path:
    """One mosaic of k x k tiles with each axis labelled by its latent values (the report's Fig. 6)."""
    k, (h, w) = len(values), images.shape[-2:]
    mosaic = tile(images, ncol=k)  # (k*h, k*w): rows of tiles side by side
    fig, ax = plots.plt.subplots(figsize=(1.0 + 0.55 * k, 1.0 + 0.55 * k))
    plots.show(ax, mosaic)
    ax.set_xticks(
        np.arange(k) * w + (w - 1) / 2, [f"{v:.2f}" for v in values], rotation=90, fontsize=7
    )
    ax.set_yticks(np.arange(k) * h + (h - 1) / 2, [f"{v:.2f}" for v in values[::-1]], fontsize=7)
    ax.set_xlabel(f"z[{dims[0]}]")
    ax.set_ylabel(f"z[{dims[1]}]")
    ax.set_title(title, fontsize=8)
    return plots.save_figure(fig, path)
