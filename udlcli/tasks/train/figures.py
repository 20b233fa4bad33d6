"""What a udl train run shows: fixed test digits reconstructed during training, prior draws, and the final figures."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from udlcli import plots
from udlcli.core.contracts import Reconstructs, SamplesPrior
from udlcli.core.trainer import Callback
from udlcli.data import TensorImages, showcase_indices

PROGRESS_FILE = "reconstruction_progress.npz"


def fixed_digits(test: TensorImages, n: int = 10) -> torch.Tensor:
    """Indices of the first test image of each class (or the first n when unlabeled): the tracked digits."""
    return showcase_indices(test.y, n)


def snapshot_steps(total: int, k: int = 8) -> set[int]:
    """k global steps spaced log-uniformly from 1 to total: early training changes fastest (Fig. 2)."""
    return {int(round(s)) for s in np.geomspace(1, max(total, 1), num=k)}


class ReconstructionTracker(Callback):
    """Reconstructs the same fixed test digits at chosen steps; kept on disk so resumed runs keep them."""

    def __init__(self, path: Path, digits: torch.Tensor, steps: set[int]):
        self.path, self.digits, self.steps = path, digits, steps
        self.snaps: dict[int, np.ndarray] = {}
        self.prior: dict[int, np.ndarray] = {}
        """Generative models (SamplesPrior): the same seeded prior draws decoded at each step."""
        if path.is_file():
            with np.load(path, allow_pickle=False) as f:
                self.snaps = {int(k.split("_")[1]): f[k] for k in f.files if k.startswith("step_")}
                self.prior = {int(k.split("_")[1]): f[k] for k in f.files if k.startswith("prior_")}

    def on_step(self, trainer, step: int, out: dict) -> None:
        self.snapshot(step, trainer.model)

    def snapshot(self, step: int, model: torch.nn.Module) -> None:
        if step not in self.steps or not isinstance(model, Reconstructs):
            return
        was = model.training
        model.eval()
        with torch.no_grad():
            self.snaps[step] = _to_bytes(model.reconstruct(self.digits))
            if isinstance(
                model, SamplesPrior
            ):  # a fresh generator each time: the same z at every step
                self.prior[step] = _to_bytes(
                    model.sample_prior(len(self.digits), torch.Generator().manual_seed(0))
                )
        model.train(was)
        arrays = {f"step_{s}": a for s, a in self.snaps.items()} | {
            f"prior_{s}": a for s, a in self.prior.items()
        }
        np.savez_compressed(self.path, **arrays)


def _to_bytes(images: torch.Tensor) -> np.ndarray:
    return (images.clamp(0, 1) * 255).round().byte().cpu().numpy()


@torch.no_grad()
def reconstruction_mse(model: Reconstructs, data: TensorImages, batch_size: int = 2048) -> float:
    """Mean squared error on [0, 1] pixels of clean test images against their reconstructions."""
    model.eval()
    total = 0.0
    for x, _ in data.batches(batch_size):
        total += float(((model.reconstruct(x) - x) ** 2).mean()) * len(x)
    return total / len(data)


def write_figures(
    run_dir: Path,
    model: torch.nn.Module,
    history: list[dict],
    test: TensorImages,
    tracker: ReconstructionTracker,
) -> None:
    """loss.png for every model; reconstruction_progress.png, prior_samples_progress.png and reconstructions.png for AEs."""
    fig = run_dir / "figures"
    keys = (
        tuple(k[len("train_") :] for k in history[-1] if k.startswith("train_"))
        if history
        else ("loss",)
    )
    plots.loss_curves(
        history,
        fig / "loss.png",
        keys=keys,
        title=f"{run_dir.name}: loss per epoch",
        ylabel="MSE loss" if keys == ("loss",) else "loss",
        log=True,
    )
    if not isinstance(model, Reconstructs):
        return
    if tracker.snaps:
        steps = sorted(tracker.snaps)
        rows = [tracker.digits] + [torch.from_numpy(tracker.snaps[s]).float() / 255 for s in steps]
        plots.image_rows(
            rows,
            ["input"] + [f"step {s}" for s in steps],
            fig / "reconstruction_progress.png",
            title="Reconstructions of fixed test digits during training",
        )
    if tracker.prior:
        steps = sorted(tracker.prior)
        rows = [torch.from_numpy(tracker.prior[s]).float() / 255 for s in steps]
        plots.image_rows(
            rows,
            [f"step {s}" for s in steps],
            fig / "prior_samples_progress.png",
            title="Decoded prior samples z ~ N(0, I) (the same z) during training",
        )
    model.eval()
    with torch.no_grad():
        x = test.images(
            showcase_indices(test.y, 20).to(test.x.device)
        )  # two test images of each class, mixed
        rec = model.reconstruct(x).clamp(0, 1)
    rows, labels = [x[:10], rec[:10], x[10:], rec[10:]], ["original", "reconstructed"] * 2
    if len(x) <= 10:
        rows, labels = rows[:2], labels[:2]
    plots.image_rows(
        rows,
        labels,
        fig / "reconstructions.png",
        title="Test images and their reconstructions (best checkpoint)",
    )
