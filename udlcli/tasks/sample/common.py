"""What every `udl sample` kind shares: the result it returns, option parsing, and the latent walk between two test images."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from udlcli import plots, ui
from udlcli.core import runs
from udlcli.core.latent import class_index, decode, encode
from udlcli.core.loading import LoadedRun
from udlcli.errors import SpecError

MAX_SAMPLES = 1024  # one picture; more would be unreadable
STEPS = 10  # decoded codes along an interpolation, both ends included


@dataclass
class SampleResult:
    """What a sampler wrote and what the terminal shows (label -> value)."""

    run_dir: Path
    files: list[Path]
    rows: dict[str, str] = field(default_factory=dict)


def parse_pair(option: str, value: str) -> tuple[str, str]:
    parts = [p.strip() for p in value.split(",")]
    if len(parts) != 2 or not all(parts):
        raise SpecError(
            f"{option} {value!r}: expected two values separated by a comma, e.g. {option} 3,8"
        )
    return parts[0], parts[1]


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", text).strip("-") or "x"


def interpolate_strip(
    loaded: LoadedRun,
    data,
    dev,
    pair: tuple[str, str],
    by_class: bool,
    seed: int,
    meta: dict,
    prefix: str = "ae",
) -> SampleResult:
    """A strip of decoded codes between two test images; files are named <prefix>_interpolate_* (ae, vae)."""
    y = data.test.y.cpu().numpy()
    if by_class:
        labels = [class_index(t, data.classes) for t in pair]
        for tok, lab in zip(pair, labels):
            if lab < 0 or not (y == lab).any():
                names = ", ".join(data.classes) or "none (unlabeled data)"
                raise SpecError(
                    f"--interpolate: class {tok!r} does not exist in {data.name}; classes are {names}"
                )
        rng = np.random.default_rng(seed)  # a seeded test image of each class
        idx = [int(rng.choice(np.flatnonzero(y == lab))) for lab in labels]
    else:
        try:
            idx = [int(t) for t in pair]
        except ValueError:
            raise SpecError(
                f"--interpolate-index {','.join(pair)}: expected two test indices, e.g. 0,1"
            ) from None
        if any(not 0 <= i < len(y) for i in idx):
            raise SpecError(
                f"--interpolate-index {','.join(pair)}: indices must be in 0..{len(y) - 1} (the test split)"
            )
    ends = data.test.images(torch.tensor(idx))  # (2, C, H, W)
    za, zb = encode(loaded.model, data.test.subset(idx), dev)  # (d,), (d,)
    t = np.linspace(0.0, 1.0, STEPS, dtype=np.float32)[:, None]
    walk = decode(loaded.model, (1 - t) * za + t * zb, dev)  # (STEPS, C, H, W)
    names = [data.classes[y[i]] if 0 <= y[i] < len(data.classes) else "?" for i in idx]
    stem = (
        f"{prefix}_interpolate_{_slug(names[0])}_{_slug(names[1])}"
        if by_class
        else f"{prefix}_interpolate_index_{idx[0]}_{idx[1]}"
    )
    cols = (
        [f"#{idx[0]} ({names[0]})"] + [f"t={v:.2f}" for v in t[:, 0]] + [f"#{idx[1]} ({names[1]})"]
    )
    out = loaded.run_dir / "samples"
    # No suptitle: it would sit on the column labels of a one-row figure; those name both test images.
    png = plots.image_rows(
        [torch.cat([ends[:1], walk, ends[1:]])],
        ["latent walk"],
        out / f"{stem}.png",
        col_labels=cols,
    )
    js = runs.write_json(
        out / f"{stem}.json", {**meta, "test_indices": idx, "labels": names, "steps": STEPS}
    )
    ui.info(f"walk between test images #{idx[0]} ({names[0]}) and #{idx[1]} ({names[1]})")
    return SampleResult(
        loaded.run_dir,
        [png, js],
        {
            "from": f"test #{idx[0]} ({names[0]})",
            "to": f"test #{idx[1]} ({names[1]})",
            "steps": str(STEPS),
        },
    )
