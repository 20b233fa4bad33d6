"""`udl denoise`'s yardstick: mean PSNR/SSIM of noisy inputs and of the models' outputs per noise type, and its two figures."""

from __future__ import annotations

from pathlib import Path

import torch

from udlcli import plots, ui
from udlcli.data import TensorImages, showcase_indices
from udlcli.data.noise import EVAL_KINDS, NoiseConfig, add_noise
from udlcli.metrics_image import psnr, ssim
from udlcli.tasks.denoise.labels import KIND_LABELS


@torch.no_grad()
def score(
    models: dict,
    test: TensorImages,
    cfg: NoiseConfig,
    std: float,
    kind: str,
    seed: int,
    batch_size: int = 1000,
) -> dict:
    """Mean PSNR/SSIM against the clean test images of the noisy input and of each model's output on it."""
    gen = torch.Generator().manual_seed(seed)  # CPU noise: the same numbers on every device
    sums: dict[str, dict[str, float]] = {}
    for x, _ in test.batches(batch_size):  # x: clean (B, C, H, W)
        noisy = add_noise(x, cfg, std, gen, kind)
        outs = {
            "noisy": noisy,
            **{name: m.reconstruct(noisy).clamp(0, 1) for name, m in models.items()},
        }
        for name, img in outs.items():
            s = sums.setdefault(name, {"psnr": 0.0, "ssim": 0.0})
            s["psnr"] += float(psnr(img, x).sum())
            s["ssim"] += float(ssim(img, x).sum())
    row = {name: {k: v / len(test) for k, v in s.items()} for name, s in sums.items()}
    if kind == "none":
        row["noisy"]["psnr"] = None  # the input is the clean image itself: infinite PSNR, SSIM 1
    else:
        row["gain_db"] = row["dae"]["psnr"] - row["noisy"]["psnr"]
    return row


def figures(
    run_dir: Path,
    models: dict,
    test: TensorImages,
    cfg: NoiseConfig,
    std: float,
    seed: int,
    suffix: str = "",
) -> list[Path]:
    """figures/noise_types.png (the report's Fig. 15) and figures/denoised.png (Figs. 5 and 16)."""
    fig_dir = run_dir / "figures"
    digits = test.images(
        showcase_indices(test.y, 10).to(test.x.device)
    )  # one test image per class (B, C, H, W)
    noisy = {
        k: add_noise(digits, cfg, std, torch.Generator().manual_seed(seed), k) for k in EVAL_KINDS
    }
    titles = {
        "none": "none\n",
        "gaussian": f"gaussian\nsigma {cfg.sigma:g}",
        "saltpepper": f"salt & pepper\np {cfg.p:g}",
        "both": "both\n",
    }
    one = torch.stack(
        [noisy[k][0] for k in EVAL_KINDS]
    )  # (4, C, H, W): the first image under each noise
    # No suptitle: on a one-row figure it would overlap the column titles.
    paths = [
        plots.image_rows(
            [one],
            [""],
            fig_dir / f"noise_types{suffix}.png",
            col_labels=[titles[k] for k in EVAL_KINDS],
        )
    ]
    rows, labels = [digits], ["clean"]
    with torch.no_grad():
        for k in EVAL_KINDS:
            if k != "none":  # the clean input is the first row already
                rows.append(noisy[k])
                labels.append(f"{KIND_LABELS[k]}: input")
            for name, m in models.items():
                rows.append(m.reconstruct(noisy[k]).clamp(0, 1))
                labels.append(
                    ("clean -> " if k == "none" else "") + ("DAE" if name == "dae" else "plain AE")
                )
    paths.append(
        plots.image_rows(
            rows,
            labels,
            fig_dir / f"denoised{suffix}.png",
            title="Clean, noisy and denoised test digits (best checkpoint)",
        )
    )
    return paths


def progress(items, label: str):
    """Iterate with a transient rich bar on a terminal (evaluating a noise type takes seconds on a CPU)."""
    if not ui.live_enabled():
        yield from items
        return
    from rich.progress import Progress

    with Progress(console=ui.console, transient=True) as bar:
        task = bar.add_task(label, total=len(items))
        for item in items:
            yield item
            bar.advance(task)


def read_json(path: Path) -> dict:
    import json

    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


# ---------------------------------------------------------------- a user's own images
