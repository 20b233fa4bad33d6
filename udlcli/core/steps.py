"""One training step, chosen once per run: the trainer's own optimiser step, or a model's own train_step.

    LossStep   a Trainable: loss(x, y, rows) under the run's precision (and torch.compile), one
               optimiser, the loss weighted by this rank's share of the global batch, a GradScaler
               for float16, gradients clipped (unscaled first), wrapped in DDP on several ranks
    OwnStep    an Adversarial model (the GAN): train_step(x, y, optimizers, rows) steps its own
               optimisers; on several ranks each optimiser averages its gradients just before stepping

Both keep `optimizers` (name -> torch optimiser) for the schedule and the checkpoint, and `loss()`
for evaluation (LossStep only).
"""

from __future__ import annotations

from typing import Any

import torch

from udlcli.core import distributed, fastpath, optim
from udlcli.core.contracts import Adversarial
from udlcli.errors import SpecError
from udlcli.rows import Rows


class LossStep:
    def __init__(self, model: torch.nn.Module, cfg: Any, device: torch.device, world_size: int):
        self.model, self.cfg, self.world_size = model, cfg, world_size
        self.optimizers = {"model": optim.make_optimizer(model, cfg)}
        self.precision = cfg.precision
        self.scaler = fastpath.grad_scaler(device, self.precision)
        loss = model.loss
        if world_size > 1:
            # DDP all-reduces the gradients bucket by bucket while backward still runs; the model
            # itself is untouched (its state_dict keeps its own keys).
            loss = torch.nn.parallel.DistributedDataParallel(
                _LossOf(model),
                device_ids=[torch.cuda.current_device()] if device.type == "cuda" else None,
            )
        self.device = device
        self.loss_fn = fastpath.compiled(loss, cfg.compile)

    def __call__(self, x: torch.Tensor, y: torch.Tensor, rows: Rows) -> dict[str, torch.Tensor]:
        with fastpath.autocast(self.device, self.precision):
            out = self.loss_fn(x, y, rows)
        opt = self.optimizers["model"]
        opt.zero_grad(set_to_none=True)
        # DDP averages gradients over ranks; weighting each rank's mean by its share of the global
        # batch makes that average the gradient of the global batch's mean, as in one process.
        loss = out["loss"]
        if self.world_size > 1:
            loss = loss * (len(x) * self.world_size / rows.total)
        params = [p for g in opt.param_groups for p in g["params"]]
        if self.scaler is None:
            loss.backward()
            optim.clip_gradients(params, self.cfg.grad_clip)
            opt.step()
        else:  # float16: the loss scaled up so small gradients survive; steps that overflow are skipped
            self.scaler.scale(loss).backward()
            if self.cfg.grad_clip:
                self.scaler.unscale_(opt)  # clip the true gradients, not the scaled ones
                optim.clip_gradients(params, self.cfg.grad_clip)
            self.scaler.step(opt)
            self.scaler.update()
        return out

    def loss(self, x: torch.Tensor, y: torch.Tensor, rows: Rows) -> dict[str, torch.Tensor]:
        """The loss terms without a step (evaluation), under the run's precision."""
        with fastpath.autocast(self.device, self.precision):
            return self.model.loss(x, y, rows)


class OwnStep:
    def __init__(self, model: torch.nn.Module, cfg: Any, device: torch.device, world_size: int):
        self.model, self.cfg = model, cfg
        self.optimizers = model.configure_optimizers(cfg)
        self.scaler = None
        if world_size > 1:
            # The adversarial step toggles requires_grad and steps two optimisers, which DDP's
            # reducer does not allow: its gradients are averaged just before each optimiser step.
            for opt in self.optimizers.values():
                opt.register_step_pre_hook(_average_before_step)
        if cfg.grad_clip:
            for opt in self.optimizers.values():
                opt.register_step_pre_hook(_clip_before_step(cfg.grad_clip))

    def __call__(self, x: torch.Tensor, y: torch.Tensor, rows: Rows) -> dict[str, torch.Tensor]:
        return self.model.train_step(x, y, self.optimizers, rows)

    def loss(
        self, x, y, rows
    ):  # pragma: no cover - the trainer never evaluates a model without loss()
        raise SpecError("this model has no loss() to evaluate")


def step_for(model: torch.nn.Module, cfg: Any, device: torch.device, world_size: int):
    """The step a model trains with: its own (Adversarial) or the trainer's (Trainable)."""
    kind = OwnStep if isinstance(model, Adversarial) else LossStep
    return kind(model, cfg, device, world_size)


class _LossOf(torch.nn.Module):
    """A Trainable seen as a module whose forward is its loss, so DDP's hooks wrap the whole step."""

    def __init__(self, model: torch.nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor, y: torch.Tensor, rows: Rows) -> dict[str, torch.Tensor]:
        return self.model.loss(x, y, rows)


def _average_before_step(opt: torch.optim.Optimizer, args, kwargs) -> None:
    distributed.average_gradients(p for g in opt.param_groups for p in g["params"])


def _clip_before_step(max_norm: float):
    def hook(opt: torch.optim.Optimizer, args, kwargs) -> None:
        # Registered after the averaging hook, so the averaged gradient is what gets clipped.
        optim.clip_gradients((p for g in opt.param_groups for p in g["params"]), max_norm)

    return hook
