"""`udl gan`: the GAN's typed spec, its own adversarial training loop, and the run folder it fills.

Each iteration (B real images x in [0, 1], normalised on the device to (x - 0.5) / 0.5 in [-1, 1]):

    D step (d_steps times):  loss_D = BCE(D(x), 1 - smoothing) + BCE(D(G(z)), 0)     z ~ N(0, I) (B, noise_dim)
    G step:                  loss_G = BCE(D(G(z)), 1)         (the non-saturating generator loss)

BCE is taken on D's logits (BCE-with-logits). At the equilibrium D outputs 1/2 everywhere:
loss_D = 2 ln 2 = 1.386 and loss_G = ln 2 = 0.693. A checkpoint (G, D, both optimisers, epoch,
RNG states, history) is written atomically after every epoch, so --resume continues exactly.
"""

from __future__ import annotations

import math
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal, Optional

import torch
import torch.nn.functional as F
from pydantic import Field

from udlcli import config, ui
from udlcli.config import DataConfig, Strict
from udlcli.data import ImageDataset, TensorImages, load_dataset
from udlcli.tasks.gan import outputs as out
from udlcli.core import runs
from udlcli.core.checkpoint import load_checkpoint, save_checkpoint
from udlcli.core.device import describe, resolve_device
from udlcli.core.progress import EpochProgress
from udlcli.tasks.train.run import RunOptions, TrainResult, _check_same_data
from udlcli.errors import CheckpointError, Interrupted, SpecError, TrainingDiverged, a_kind
from udlcli.models.gan import GanModelConfig, build_gan

TASK = "gan"
DEFAULT_EPOCHS = 60  # the first of 30, 40, 50, 60 that met the class-balance bar on full MNIST: docs/gan.md


class GanTrainConfig(Strict):
    epochs: int = Field(DEFAULT_EPOCHS, ge=1, le=100_000)
    batch_size: int = Field(128, ge=2, le=65_536)
    lr: float = Field(2e-4, gt=0.0, le=1.0)
    """Adam learning rate of G (and of D unless lr_d is set)."""
    lr_d: Optional[float] = Field(None, gt=0.0, le=1.0)
    """D's learning rate; None means the same as lr."""
    beta1: float = Field(0.5, ge=0.0, lt=1.0)
    beta2: float = Field(0.999, ge=0.0, lt=1.0)
    d_steps: int = Field(1, ge=1, le=20)
    """Discriminator updates per generator update (each on the same real batch, fresh noise)."""
    label_smoothing: float = Field(0.0, ge=0.0, lt=0.5)
    """One-sided: D's target for real images is 1 - label_smoothing (0 = off, the report's setting)."""
    n_fixed: int = Field(64, ge=2, le=1024)
    """Size of the fixed noise batch whose samples are saved every epoch (samples/, progress.gif)."""
    seed: int = 0
    device: Literal["auto", "cpu", "cuda", "mps"] = "auto"


class GanChecks(Strict):
    """Failure detection after every epoch (see udlcli/engine/gan_outputs.py and docs/gan.md)."""

    patience: int = Field(3, ge=1, le=1000)
    """Epochs in a row a symptom must last before it is reported."""
    d_loss_floor: float = Field(0.05, gt=0.0)
    """D loss below this (with G loss climbing) means the discriminator has won."""
    collapse_ratio: float = Field(0.25, gt=0.0, lt=1.0)
    """Mode collapse when the fixed batch's mean pairwise distance is below this fraction of real images'."""


class GanDataConfig(DataConfig):
    """The data section with the report's GAN normalisation: Normalize((0.5,), (0.5,)), pixels in [-1, 1] like G's Tanh."""

    mean: float = 0.5
    std: float = Field(0.5, gt=0.0)


class GanSpec(Strict):
    """A complete, validated description of a GAN run (spec.yaml; readable back with --config)."""

    model: GanModelConfig = GanModelConfig()
    data: GanDataConfig = GanDataConfig()
    train: GanTrainConfig = GanTrainConfig()
    checks: GanChecks = GanChecks()


def resolve_gan_spec(config_path: str | None = None, flags: dict[str, object] | None = None, sets: list[str] | None = None) -> GanSpec:
    """Defaults < YAML file < CLI flags < --set overrides, validated once (one-line SpecError on bad input)."""
    file_spec = config.load_yaml(config_path) if config_path else {}
    return config.layered(GanSpec, {}, file_spec, flags, sets, source=f"GAN spec ({config_path})" if config_path else "GAN spec")


def spec_dict(spec: GanSpec) -> dict:
    return spec.model_dump(mode="json")


class GanTrainer:
    """Trains G and D on one split, keeps the per-iteration losses, and checkpoints after every epoch."""

    def __init__(self, spec: GanSpec, data: TensorImages, device: torch.device, run_dir: Path, extra: dict[str, Any]):
        cfg, self.spec, self.data, self.device, self.run_dir, self.extra = spec.train, spec, data, device, run_dir, extra
        torch.manual_seed(cfg.seed)
        self.G, self.D = (m.to(device) for m in build_gan(spec.model))
        betas = (cfg.beta1, cfg.beta2)
        self.opt_g = torch.optim.Adam(self.G.parameters(), lr=cfg.lr, betas=betas)
        self.opt_d = torch.optim.Adam(self.D.parameters(), lr=cfg.lr_d or cfg.lr, betas=betas)
        self.shuffle_gen = torch.Generator().manual_seed(cfg.seed)
        # The fixed noise batch comes from its own generator: the same z for every epoch, run and device.
        self.fixed_z = torch.randn(cfg.n_fixed, spec.model.noise_dim, generator=torch.Generator().manual_seed(cfg.seed + 1))
        pick = torch.randperm(len(data), generator=torch.Generator().manual_seed(cfg.seed + 2))[:256]
        self.real_diversity = out.mean_pairwise_distance(data.images(pick.to(data.x.device)))
        self.epoch, self.history, self.failures = 0, [], {}
        self.iters = torch.zeros(0, 4)  # per iteration: D loss, G loss, D(x), D(G(z))
        self.sync_every = 1 if device.type == "cpu" else 25  # reading a loss syncs the GPU; on CPU it is free

    # ------------------------------------------------------------------ state

    def state(self) -> dict[str, Any]:
        rng = {"torch": torch.get_rng_state(), "shuffle": self.shuffle_gen.get_state()}
        if torch.cuda.is_available():
            rng["cuda"] = torch.cuda.get_rng_state_all()
        return {
            **self.extra, "epoch": self.epoch, "G": self.G.state_dict(), "D": self.D.state_dict(),
            "opt_g": self.opt_g.state_dict(), "opt_d": self.opt_d.state_dict(), "rng": rng,
            "history": self.history, "iters": self.iters, "failures": self.failures,
        }

    def load_state(self, p: dict[str, Any]) -> None:
        self.G.load_state_dict(p["G"])
        self.D.load_state_dict(p["D"])
        self.opt_g.load_state_dict(p["opt_g"])
        self.opt_d.load_state_dict(p["opt_d"])
        self.epoch, self.history, self.iters = int(p["epoch"]), list(p["history"]), p["iters"]
        self.failures = dict(p.get("failures", {}))
        torch.set_rng_state(p["rng"]["torch"])
        self.shuffle_gen.set_state(p["rng"]["shuffle"])
        if "cuda" in p["rng"] and torch.cuda.is_available() and len(p["rng"]["cuda"]) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(p["rng"]["cuda"])

    def save(self) -> None:
        save_checkpoint(self.run_dir / runs.WEIGHTS / "last.pt", self.state())

    # ------------------------------------------------------------------ training

    def to_pixels(self, g: torch.Tensor) -> torch.Tensor:
        """Generator output in normalised space -> images in [0, 1]."""
        return (g * self.spec.data.std + self.spec.data.mean).clamp(0, 1)

    @torch.no_grad()
    def fixed_samples(self) -> torch.Tensor:
        self.G.eval()
        imgs = self.to_pixels(self.G(self.fixed_z.to(self.device))).cpu()
        self.G.train()
        return imgs

    def step(self, x: torch.Tensor) -> torch.Tensor:
        """One iteration on real images x (B, 1, 28, 28) in [0, 1]; returns [D loss, G loss, D(x), D(G(z))] on the device."""
        cfg, nz = self.spec.train, self.spec.model.noise_dim
        real = (x - self.spec.data.mean) / self.spec.data.std  # (B, 1, 28, 28) in [-1, 1]
        b = len(real)
        real_target = torch.full((b,), 1.0 - cfg.label_smoothing, device=self.device)
        ones, zeros = torch.ones(b, device=self.device), torch.zeros(b, device=self.device)
        for _ in range(cfg.d_steps):
            fake = self.G(torch.randn(b, nz, device=self.device)).detach()
            d_real, d_fake = self.D(real), self.D(fake)  # logits (B,)
            loss_d = F.binary_cross_entropy_with_logits(d_real, real_target) + F.binary_cross_entropy_with_logits(d_fake, zeros)
            self.opt_d.zero_grad(set_to_none=True)
            loss_d.backward()
            self.opt_d.step()
        self.D.requires_grad_(False)  # the G step needs gradients through D, not for D's weights
        loss_g = F.binary_cross_entropy_with_logits(self.D(self.G(torch.randn(b, nz, device=self.device))), ones)
        self.opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        self.opt_g.step()
        self.D.requires_grad_(True)
        return torch.stack([loss_d.detach(), loss_g.detach(), torch.sigmoid(d_real.detach()).mean(), torch.sigmoid(d_fake.detach()).mean()])

    def fit(self, on_epoch) -> None:
        cfg = self.spec.train
        n_batches = self.data.n_batches(cfg.batch_size)
        if self.epoch == 0:
            self.save()  # an epoch-0 checkpoint, so even an interrupted first epoch can resume
        with EpochProgress("gan", loss_name="D") as bar:
            for epoch in range(self.epoch + 1, cfg.epochs + 1):
                try:
                    self._epoch(epoch, n_batches, bar, on_epoch)
                except KeyboardInterrupt:
                    raise Interrupted(f"interrupted during epoch {epoch}; {self._kept()} Resume with: udl gan --resume {self.run_dir}") from None

    def _epoch(self, epoch: int, n_batches: int, bar: EpochProgress, on_epoch) -> None:
        cfg = self.spec.train
        bar.start_epoch(epoch, cfg.epochs, n_batches)
        t0, seen, rows = time.perf_counter(), 0, []
        for i, (x, _) in enumerate(self.data.batches(cfg.batch_size, self.shuffle_gen)):
            rows.append(self.step(x))
            seen += len(x)
            if (i + 1) % self.sync_every == 0 or i + 1 == n_batches:
                d, g, px, pz = rows[-1].tolist()
                if not (math.isfinite(d) and math.isfinite(g)):
                    raise TrainingDiverged(f"the GAN losses became D={d}, G={g} at epoch {epoch}, batch {i + 1}; {self._kept()} Try a lower --lr")
                bar.update(i + 1, d, seen / max(time.perf_counter() - t0, 1e-9), extra=f"G {g:.3f}  D(x) {px:.2f}  D(G(z)) {pz:.2f}")
        train_time = time.perf_counter() - t0
        epoch_iters = torch.stack(rows).float().cpu()  # (n_batches, 4); one sync per epoch on a GPU
        means = epoch_iters.mean(0).tolist()
        samples = self.fixed_samples()
        row = {"epoch": epoch, "epochs": cfg.epochs, "d_loss": means[0], "g_loss": means[1], "d_real": means[2], "d_fake": means[3],
               "diversity": out.mean_pairwise_distance(samples) / self.real_diversity,
               "time_s": train_time, "images_per_s": seen / max(train_time, 1e-9)}
        # The in-memory state advances only together with the checkpoint, so an interrupt leaves both at the same epoch.
        self.epoch, self.history, self.iters = epoch, self.history + [row], torch.cat([self.iters, epoch_iters])
        self._check()
        self.save()
        bar.end_epoch(row)
        on_epoch(epoch, samples)

    def _check(self) -> None:
        """Run both failure detectors on the history; warn once per kind, remember it for summary.json."""
        c = self.spec.checks
        for found in (out.detect_d_wins(self.history, c.patience, c.d_loss_floor), out.detect_collapse(self.history, c.patience, c.collapse_ratio)):
            if found is not None and found.kind not in self.failures:
                self.failures[found.kind] = {"epoch": found.epoch, "message": found.message}
                ui.warn(f"epoch {found.epoch}: {found.message}")

    def _kept(self) -> str:
        return f"the last completed epoch ({self.epoch}) is saved in {self.run_dir / runs.WEIGHTS / 'last.pt'}."


# ---------------------------------------------------------------- run folders


def train_gan(spec: GanSpec, opts: RunOptions | None = None, data: ImageDataset | None = None) -> TrainResult:
    """Train a fresh GAN run. Everything is validated and loaded before the run folder is created."""
    opts = opts or RunOptions()
    device = resolve_device(spec.train.device)
    data = data or load_dataset(spec.data.dataset, spec.data.data_dir, spec.data.limit)
    if len(data.train) < spec.train.batch_size:
        raise SpecError(f"--batch-size {spec.train.batch_size} is larger than the {len(data.train)} training images; use a smaller batch")
    run_dir = runs.new_run_dir(opts.out, TASK, opts.name)
    meta = {"command": opts.command, "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "versions": runs.versions(), "device": describe(device), "dataset": data.info()}
    runs.write_spec(run_dir, spec_dict(spec), meta)
    ui.info(f"[bold]gan[/] ({spec.model.arch}): data {data.name} ({len(data.train):,} train images); device {describe(device)}; run folder [cyan]{run_dir}[/]")
    trainer = GanTrainer(spec, data.train.to(device), device, run_dir, {"kind": TASK, "spec": spec_dict(spec), "data": data.info()})
    out.save_grid(trainer.fixed_samples(), run_dir / "samples" / "epoch_000.png", caption="epoch 0")  # the untrained G: noise
    return _fit(trainer, data, device)


def resume_gan(run: str | Path, epochs: int | None = None, device: str | None = None, data: ImageDataset | None = None) -> TrainResult:
    """Continue a GAN run from weights/last.pt up to its epoch count or a new --epochs."""
    run_dir = Path(run)
    if run_dir.is_file():  # a checkpoint path: its run folder is two levels up
        run_dir = run_dir.parent.parent
    last = run_dir / runs.WEIGHTS / "last.pt"
    if not last.is_file():
        raise CheckpointError(f"--resume {run}: no checkpoint at {last}; nothing to resume (start a new run instead)")
    payload = load_checkpoint(last)
    if payload.get("kind") != TASK:
        raise CheckpointError(f"--resume {run}: {run_dir} is {a_kind(payload.get('kind'))} run, not a GAN; resume it with udl train --resume")
    spec = config.validate(GanSpec, payload["spec"], source=f"spec stored in {last}")
    done = int(payload["epoch"])
    if epochs is not None:
        if epochs <= done:
            raise SpecError(f"--epochs {epochs}: the run already has {done} epochs; give a larger number to extend it")
        spec.train.epochs = epochs
    if device is not None:
        spec.train.device = device
    if done >= spec.train.epochs:
        raise SpecError(f"{run_dir} already finished {done}/{spec.train.epochs} epochs; pass --epochs N (N > {done}) to extend it")
    dev = resolve_device(spec.train.device)
    data = data or load_dataset(spec.data.dataset, spec.data.data_dir, spec.data.limit)
    _check_same_data(payload, data)
    trainer = GanTrainer(spec, data.train.to(dev), dev, run_dir, {"kind": TASK, "spec": spec_dict(spec), "data": data.info()})
    trainer.load_state(payload)
    ui.info(f"resuming [cyan]{run_dir}[/] at epoch {done + 1}/{spec.train.epochs}; device {describe(dev)}")
    return _fit(trainer, data, dev)


def _fit(trainer: GanTrainer, data: ImageDataset, device: torch.device) -> TrainResult:
    run_dir = trainer.run_dir

    def on_epoch(epoch: int, samples: torch.Tensor) -> None:
        out.save_grid(samples, run_dir / "samples" / f"epoch_{epoch:03d}.png", caption=f"epoch {epoch}")
        runs.write_metrics(run_dir, trainer.history)

    t0 = time.perf_counter()
    try:
        trainer.fit(on_epoch)
    except (Interrupted, TrainingDiverged) as e:
        out.write_outputs(trainer, data, device, time.perf_counter() - t0, status="interrupted" if isinstance(e, Interrupted) else "diverged")
        raise
    summary = out.write_outputs(trainer, data, device, time.perf_counter() - t0, status="finished")
    return TrainResult(run_dir, summary, trainer.history)
