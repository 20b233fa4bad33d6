"""What a training run shows, chosen by what the model can do: reconstructions, fixed-noise samples, the loss curves.

LossCurves             every model with a validation split: figures/loss.png
ReconstructionTracker  Reconstructs: fixed test images reconstructed at log-spaced steps (Fig. 2),
                       prior draws for a SamplesPrior model, reconstructions of the final model
                       (Fig. 10) and the summary's test_mse
FixedSamples           Generates (without a fitted sampler): the same noise decoded after every epoch
                       (samples/epoch_XXX.png, the row's `diversity`), progress.gif and 100 final samples
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from udlcli import plots
from udlcli.core.callbacks import Callback
from udlcli.core.contracts import FitsSampler, Generates, Reconstructs, SamplesPrior
from udlcli.core.images import save_grid, write_gif
from udlcli.data import TensorImages, showcase_indices
from udlcli.metrics_image import mean_pairwise_distance

PROGRESS_FILE = "reconstruction_progress.npz"


def callbacks_for(model: torch.nn.Module, ctx, total_steps: int) -> list[Callback]:
    """The figures a model's capabilities call for (ctx: core.lifecycle.FitContext)."""
    out: list[Callback] = [LossCurves(ctx.run_dir)]
    if isinstance(model, Reconstructs):
        digits = ctx.test.images(fixed_digits(ctx.test).to(ctx.test.x.device))
        out.append(
            ReconstructionTracker(ctx.run_dir, digits, snapshot_steps(total_steps), ctx.test)
        )
    if isinstance(model, Generates) and not isinstance(model, FitsSampler):
        out.append(
            FixedSamples(ctx.run_dir, ctx.train, ctx.spec.train.n_fixed, ctx.spec.train.seed)
        )
        if ctx.spec.train.fid_n:
            out.append(FIDMonitor(ctx.data, ctx.spec.train.fid_n, ctx.spec.train.seed, ctx.device))
    return out


def fixed_digits(test: TensorImages, n: int = 10) -> torch.Tensor:
    """Indices of the first test image of each class (or the first n when unlabeled): the tracked digits."""
    return showcase_indices(test.y, n)


def snapshot_steps(total: int, k: int = 8) -> set[int]:
    """k global steps spaced log-uniformly from 1 to total: early training changes fastest (Fig. 2)."""
    return {int(round(s)) for s in np.geomspace(1, max(total, 1), num=k)}


class LossCurves(Callback):
    """figures/loss.png: every train_/val_ term per epoch, on a log scale."""

    def __init__(self, run_dir: Path):
        self.run_dir = run_dir

    def on_end(self, trainer, summary: dict) -> None:
        history = trainer.history
        keys = tuple(
            k[len("train_") :] for k in (history[-1] if history else {}) if k.startswith("train_")
        )
        if (
            not keys
        ):  # a model without validation logs its own numbers (the GAN: figures/losses.png)
            return
        plots.loss_curves(
            history,
            self.run_dir / "figures" / "loss.png",
            keys=keys,
            title=f"{self.run_dir.name}: loss per epoch",
            ylabel="MSE loss" if keys == ("loss",) else "loss",
            log=True,
        )


class ReconstructionTracker(Callback):
    """Reconstructs the same fixed test digits at chosen steps; kept on disk so resumed runs keep them."""

    def __init__(self, run_dir: Path, digits: torch.Tensor, steps: set[int], test: TensorImages):
        self.run_dir, self.digits, self.steps, self.test = run_dir, digits, steps, test
        self.path = run_dir / "weights" / PROGRESS_FILE
        self.snaps: dict[int, np.ndarray] = {}
        self.prior: dict[int, np.ndarray] = {}
        """Generative models (SamplesPrior): the same seeded prior draws decoded at each step."""
        if self.path.is_file():
            with np.load(self.path, allow_pickle=False) as f:
                self.snaps = {int(k.split("_")[1]): f[k] for k in f.files if k.startswith("step_")}
                self.prior = {int(k.split("_")[1]): f[k] for k in f.files if k.startswith("prior_")}

    def on_start(self, trainer) -> None:
        self.steps.add(0)
        self.snapshot(0, trainer.model)  # step 0: the untrained network

    def on_step(self, trainer, step: int, out: dict) -> None:
        self.snapshot(step, trainer.model)

    def snapshot(self, step: int, model: torch.nn.Module) -> None:
        if step not in self.steps:
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

    def on_end(self, trainer, summary: dict) -> None:
        if summary.get("status") != "finished":
            return
        summary["test_mse"] = reconstruction_mse(trainer.model, self.test)
        write_figures(self.run_dir, trainer.model, self.test, self)


class FixedSamples(Callback):
    """The same noise batch decoded after every epoch: the row's diversity, and samples/epoch_XXX.png after the checkpoint."""

    def __init__(self, run_dir: Path, real: TensorImages, n: int, seed: int):
        self.run_dir, self.n, self.seed = run_dir, n, seed
        pick = torch.randperm(len(real), generator=torch.Generator().manual_seed(seed + 2))[:256]
        self.real_diversity = mean_pairwise_distance(real.images(pick.to(real.x.device)))
        self.samples: torch.Tensor | None = None

    @torch.no_grad()
    def draw(self, model, n: int, seed: int) -> torch.Tensor:
        """n images of the model, from noise of a generator seeded with `seed` (the same noise every epoch)."""
        was = model.training
        model.eval()
        images = model.generate(n, torch.Generator().manual_seed(seed)).float().cpu()
        model.train(was)
        return images

    def save(self, images: torch.Tensor, epoch: int) -> None:
        path = self.run_dir / "samples" / f"epoch_{epoch:03d}.png"
        save_grid(images, path, caption=f"epoch {epoch}")

    def on_start(self, trainer) -> None:
        self.save(self.draw(trainer.model, self.n, self.seed + 1), 0)  # the untrained model: noise

    def on_epoch(self, trainer, row: dict) -> None:
        with trainer.averaged():
            self.samples = self.draw(trainer.model, self.n, self.seed + 1)
        row["diversity"] = mean_pairwise_distance(self.samples) / self.real_diversity

    def on_saved(self, trainer, row: dict) -> None:
        self.save(self.samples, row["epoch"])

    def on_end(self, trainer, summary: dict) -> None:
        frames = sorted((self.run_dir / "samples").glob("epoch_*.png"))
        if frames:
            write_gif(frames, self.run_dir / "samples" / "progress.gif")
        epochs = trainer.history[-1]["epoch"] if trainer.history else 0
        save_grid(
            self.draw(trainer.model, 100, self.seed + 3),
            self.run_dir / "figures" / "final_samples.png",
            caption=f"100 samples after {epochs} epoch{'s' if epochs != 1 else ''}",
            ncol=10,
        )


class FIDMonitor(Callback):
    """train.fid_n: the FID of n samples (the model's default sampler) on udl evaluate's network, each epoch."""

    def __init__(self, data, n: int, seed: int, device):
        from udlcli import metrics
        from udlcli.tasks.evaluate.training import featurenet_for

        self.n, self.seed, self.metrics = n, seed, metrics
        self.net = featurenet_for(data, None, str(device))
        self.real, _ = self.net.embed_split(data.test)

    def on_epoch(self, trainer, row: dict) -> None:
        model = trainer.model
        with trainer.averaged(), torch.no_grad():
            model.eval()
            x = model.generate(self.n, torch.Generator().manual_seed(self.seed + 4)).float().cpu()
            model.train()
        feats, _ = self.net.embed(x)
        row["fid"] = self.metrics.fid(feats, self.real)


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
    run_dir: Path, model: torch.nn.Module, test: TensorImages, tracker: ReconstructionTracker
) -> None:
    """reconstruction_progress.png, prior_samples_progress.png and reconstructions.png of an autoencoder."""
    fig = run_dir / "figures"
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
        # two test images of each class, mixed
        x = test.images(showcase_indices(test.y, 20).to(test.x.device))
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
