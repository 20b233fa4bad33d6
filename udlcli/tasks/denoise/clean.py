"""`udl denoise --input`: a user's noisy image files cleaned by a DAE into another folder, never over an input or an existing file."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from udlcli.core.loading import load_run
from udlcli.errors import SpecError
from udlcli.tasks.denoise.run import NOT_A_DAE


@dataclass
class CleanResult:
    written: list[Path]
    notes: list[str]
    run_dir: Path


# ---------------------------------------------------------------- training


def clean_images(
    paths: list[str],
    out: str | Path,
    run: str | Path | None = None,
    keep_size: bool = False,
    root: str | Path = "runs",
    overwrite: bool = False,
) -> CleanResult:
    """Denoise image files with a DAE (the newest under root by default) into out/, keeping their file names.

    A file already in out/ is replaced only with overwrite=True; otherwise the first one is named and nothing is written.
    """
    from udlcli.data.sources import light_on_dark
    from udlcli.data.user_images import expand_paths, load_user_images

    files = expand_paths(paths)  # DataError for a path or pattern that matches nothing
    out = Path(out)
    targets = _targets(files, out)
    existing = [t for t in targets if t.exists()]
    if existing and not overwrite:
        more = f" (and {len(existing) - 1} more)" if len(existing) > 1 else ""
        raise SpecError(
            f"{existing[0]} already exists{more}; pass --overwrite to replace it, or choose another --out"
        )
    dae = load_run(run, root, family="dae", hint=NOT_A_DAE)
    shape = dae.spec.data.image_shape
    # A file that is not a readable image is one line here, before anything is written.
    imgs = load_user_images(files, shape, light_on_dark(dae.spec.data.dataset))  # the DAE's C, H, W
    with torch.no_grad():
        clean = dae.model.reconstruct(imgs.x).clamp(
            0, 1
        )  # (N, C, H, W); one channel: white on black
    out.mkdir(parents=True, exist_ok=True)
    for i, target in enumerate(targets):
        _write_png(clean[i], target, imgs.inverted[i], imgs.sizes[i] if keep_size else None)
    notes = list(imgs.notes)
    if any(imgs.inverted):
        notes.append("inverted images were inverted back, so each output has its input's polarity")
    return CleanResult(targets, notes, dae.run_dir)


def _targets(files: list[Path], out: Path) -> list[Path]:
    """out/<input stem>.png for each input; refuses an input's own folder, a clash, or a target that is an input."""
    out_r = out.resolve()
    inputs = {f.resolve() for f in files}
    for f in files:
        if f.resolve().parent == out_r:
            raise SpecError(
                f"--out {out} is the folder of the input {f}; choose another folder, the inputs are never overwritten"
            )
    targets = [out / f"{f.stem}.png" for f in files]
    seen: dict[Path, Path] = {}
    for f, t in zip(files, targets):
        if t.resolve() in inputs:
            raise SpecError(
                f"{t} is an input file; choose another --out, the inputs are never overwritten"
            )
        if t in seen:
            raise SpecError(
                f"{seen[t]} and {f} would both be written to {t}; rename one or clean them in two runs"
            )
        seen[t] = f
    return targets


def _write_png(img: torch.Tensor, path: Path, invert: bool, size: tuple[int, int] | None) -> None:
    """One (C, H, W) image in [0, 1] as a grey or colour PNG, in the input's polarity, at `size` when given."""
    from PIL import Image

    a = (1.0 - img if invert else img).cpu().numpy()  # (C, H, W) in [0, 1]
    a = (a * 255).round().astype(np.uint8)
    im = (
        Image.fromarray(a[0], mode="L")
        if a.shape[0] == 1
        else Image.fromarray(a.transpose(1, 2, 0), mode="RGB")
    )
    if size is not None and size != im.size:
        im = im.resize(size, Image.BICUBIC)
    tmp = path.with_name(path.name + ".tmp")
    im.save(tmp, format="PNG")
    tmp.replace(path)
