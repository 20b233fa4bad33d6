"""`udl gan`: the report's GAN trained on the shared Trainer, with the callbacks that fill its run folder.

The model (udlcli.models.gan.GAN) takes its own steps through the Adversarial contract; what is the
GAN's alone lives in three callbacks:

    IterationLog   every iteration's D loss, G loss, D(x), D(G(z)), for the loss figure (Fig. 7)
    FixedSamples   the fixed noise batch decoded after every epoch: its diversity for the row, then
                   samples/epoch_XXX.png once the checkpoint is written
    FailureWatch   the discriminator-wins and mode-collapse detectors, warned once each

All three keep their state in the checkpoint, so --resume continues exactly. The trainer does the rest
(RNG states, NaN guard, Ctrl-C, checkpoints, progress).
"""

from __future__ import annotations

import time
from pathlib import Path

import torch

from udlcli import config, ui
from udlcli.core import distributed, lifecycle, runs
from udlcli.core.device import describe
from udlcli.core.lifecycle import RunOptions, TrainResult
from udlcli.core.trainer import Callback, Trainer
from udlcli.data import ImageDataset, TensorImages
from udlcli.errors import Interrupted, SpecError, TrainingDiverged
from udlcli.models.dcgan import check_size
from udlcli.models.gan import GAN
from udlcli.tasks.gan import outputs as out
from udlcli.tasks.gan.spec import TASK, GanSpec, spec_dict

__all__ = ["RunOptions", "TrainResult", "resume_gan", "train_gan"]


class IterationLog(Callback):
    """Per-iteration numbers (N, 4): D loss, G loss, D(x), D(G(z)); synced to the CPU once an epoch."""

    name = "iterations"
    KEYS = ("d_loss", "g_loss", "d_real", "d_fake")

    def __init__(self) -> None:
        self.iters = torch.zeros(0, 4)
        self._epoch: list[torch.Tensor] = []

    def on_step(self, trainer, step: int, out: dict) -> None:
        self._epoch.append(torch.stack([out[k] for k in self.KEYS]))

    def on_epoch(self, trainer, row: dict) -> None:
        self.iters = torch.cat(
            [self.iters, torch.stack(self._epoch).float().cpu()]
        )  # (n_batches, 4): one sync
        self._epoch = []

    def state_dict(self) -> dict:
        return {"iters": self.iters}

    def load_state_dict(self, state: dict) -> None:
        self.iters = state["iters"]


class FixedSamples(Callback):
    """The same noise batch decoded after every epoch: the row's diversity, and samples/epoch_XXX.png after the checkpoint."""

    def __init__(self, spec: GanSpec, real: TensorImages, run_dir: Path):
        cfg = spec.train
        # The fixed noise batch comes from its own generator: the same z for every epoch, run and device.
        self.z = torch.randn(
            cfg.n_fixed, spec.model.noise_dim, generator=torch.Generator().manual_seed(cfg.seed + 1)
        )
        pick = torch.randperm(len(real), generator=torch.Generator().manual_seed(cfg.seed + 2))[
            :256
        ]
        self.real_diversity = out.mean_pairwise_distance(real.images(pick.to(real.x.device)))
        self.run_dir = run_dir
        self.samples: torch.Tensor | None = None

    @torch.no_grad()
    def draw(self, model: GAN) -> torch.Tensor:
        model.G.eval()
        imgs = model.to_pixels(model.G(self.z.to(next(model.G.parameters()).device))).cpu()
        model.G.train()
        return imgs

    def save(self, images: torch.Tensor, epoch: int) -> None:
        out.save_grid(
            images, self.run_dir / "samples" / f"epoch_{epoch:03d}.png", caption=f"epoch {epoch}"
        )

    def on_epoch(self, trainer, row: dict) -> None:
        self.samples = self.draw(trainer.model)
        row["diversity"] = out.mean_pairwise_distance(self.samples) / self.real_diversity

    def on_saved(self, trainer, row: dict) -> None:
        self.save(self.samples, row["epoch"])


class FailureWatch(Callback):
    """Both failure detectors on the history after every epoch; each kind is warned once and kept for summary.json."""

    name = "failures"

    def __init__(self, checks):
        self.checks, self.failures = checks, {}

    def on_epoch(self, trainer, row: dict) -> None:
        history, c = trainer.history + [row], self.checks
        for found in (
            out.detect_d_wins(history, c.patience, c.d_loss_floor),
            out.detect_collapse(history, c.patience, c.collapse_ratio),
        ):
            if found is not None and found.kind not in self.failures:
                self.failures[found.kind] = {"epoch": found.epoch, "message": found.message}
                ui.warn(f"epoch {found.epoch}: {found.message}")

    def state_dict(self) -> dict:
        return dict(self.failures)

    def load_state_dict(self, state: dict) -> None:
        self.failures = dict(state)


# ---------------------------------------------------------------- run folders


def train_gan(
    spec: GanSpec, opts: RunOptions | None = None, data: ImageDataset | None = None
) -> TrainResult:
    """Train a fresh GAN run. Everything is validated and loaded before the run folder is created."""
    opts = opts or RunOptions()
    size = spec.data.image_size
    if spec.model.arch == "dcgan" and size:
        check_size((1, size, size))  # before loading data, which may take minutes (CelebA)
    device, data = lifecycle.setup(spec.train, spec.data, data)
    if spec.model.arch == "dcgan":
        check_size(data.shape)
    if len(data.train) < spec.train.batch_size:
        raise SpecError(
            f"--batch-size {spec.train.batch_size} is larger than the {len(data.train)} training images; use a smaller batch"
        )
    run_dir = lifecycle.new_run(TASK, spec_dict(spec), opts, device, data)
    ui.info(
        f"[bold]gan[/] ({spec.model.arch}): data {data.name} ({len(data.train):,} train images); device {describe(device)}; run folder [cyan]{run_dir}[/]"
    )
    trainer, fixed = _trainer(spec, data, device, run_dir)
    if trainer.world.is_main:
        fixed.save(fixed.draw(trainer.model), 0)  # the untrained G: noise
    return _fit(trainer, spec, data, device)


def resume_gan(
    run: str | Path,
    epochs: int | None = None,
    device: str | None = None,
    data: ImageDataset | None = None,
) -> TrainResult:
    """Continue a GAN run from weights/last.pt up to its epoch count or a new --epochs."""
    r = lifecycle.open_resume(run, kinds=(TASK,))
    payload = upgrade(r.payload)
    spec = config.validate(GanSpec, payload["spec"], source=f"spec stored in {r.checkpoint}")
    lifecycle.extend(spec.train, r.done, epochs, device, r.run_dir)
    dev, data = lifecycle.setup(spec.train, spec.data, data)
    lifecycle.check_same_data(payload, data)
    trainer, _ = _trainer(spec, data, dev, r.run_dir)
    trainer.load_state(payload)
    lifecycle.say_resuming(r, spec.train.epochs, dev)
    return _fit(trainer, spec, data, dev)


def upgrade(payload: dict) -> dict:
    """A checkpoint of the GAN's earlier loop (G, D, opt_g, opt_d, iters, failures) in the trainer's layout."""
    if "G" not in payload:
        return payload
    p = {
        k: v
        for k, v in payload.items()
        if k not in ("G", "D", "opt_g", "opt_d", "iters", "failures")
    }
    p["model"] = {
        **{f"G.{k}": v for k, v in payload["G"].items()},
        **{f"D.{k}": v for k, v in payload["D"].items()},
    }
    p["optimizers"] = {"g": payload["opt_g"], "d": payload["opt_d"]}
    p["callbacks"] = {
        "iterations": {"iters": payload["iters"]},
        "failures": payload.get("failures", {}),
    }
    return p


def build(spec: GanSpec) -> GAN:
    d = spec.data
    return GAN(
        spec.model,
        spec.train.d_steps,
        spec.train.label_smoothing,
        d.mean or 0.5,
        d.std or 0.5,
        d.image_shape,
    )


def _trainer(
    spec: GanSpec, data: ImageDataset, device: torch.device, run_dir: Path
) -> tuple[Trainer, FixedSamples]:
    model, train, _ = lifecycle.seeded_fit_inputs(
        spec, data, device, lambda: build(spec), split=False
    )
    fixed = FixedSamples(spec, train, run_dir)
    trainer = Trainer(
        model,
        spec.train,
        train,
        None,
        device,
        ckpt_dir=run_dir / runs.WEIGHTS,
        extra={"kind": TASK, "spec": spec_dict(spec), "data": data.info()},
        callbacks=[
            IterationLog(),
            fixed,
            FailureWatch(spec.checks),
            lifecycle.MetricsCSV(run_dir),
            *lifecycle.trackers(spec.train, run_dir, spec_dict(spec)),
        ],
        label="gan",
        resume_command="udl gan --resume",
    )
    return trainer, fixed


def _fit(trainer: Trainer, spec: GanSpec, data: ImageDataset, device: torch.device) -> TrainResult:
    run_dir = trainer.ckpt_dir.parent
    log = next(cb for cb in trainer.callbacks if isinstance(cb, IterationLog))
    watch = next(cb for cb in trainer.callbacks if isinstance(cb, FailureWatch))

    def finish(status: str) -> dict:
        summary = out.write_outputs(
            run_dir,
            spec,
            trainer.model,
            trainer.history,
            log.iters,
            trainer.train_data.n_batches(spec.train.batch_size),
            watch.failures,
            data.info(),
            device,
            time.perf_counter() - t0,
            status,
        )
        lifecycle.finish_tracking(trainer, summary, status)
        return summary

    t0 = time.perf_counter()
    try:
        trainer.fit()
    except (Interrupted, TrainingDiverged) as e:
        if trainer.world.is_main:
            finish("interrupted" if isinstance(e, Interrupted) else "diverged")
        raise
    distributed.rest_on_main()  # the outputs are rank 0's
    return TrainResult(run_dir, finish("finished"), trainer.history)
