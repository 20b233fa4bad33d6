"""Optimisers and learning-rate schedules of the train section, shared by every family.

optimizer   adam | adamw | sgd | rmsprop, at lr with weight_decay (momentum for sgd / rmsprop),
            over the model's param_groups(cfg) when it has them, else its trainable parameters
schedule    lr_factor(step, total, cfg): a linear warmup over warmup_steps, then constant or a
            half cosine down to 0 at the last step. A pure function of the global step, so a
            resumed run continues on the same curve.
"""

from __future__ import annotations

import math

import torch

from udlcli.core.contracts import HasParamGroups

OPTIMIZERS = {
    "adam": lambda params, c, betas: torch.optim.Adam(
        params, lr=c.lr, weight_decay=c.weight_decay, betas=betas
    ),
    "adamw": lambda params, c, betas: torch.optim.AdamW(
        params, lr=c.lr, weight_decay=c.weight_decay, betas=betas
    ),
    "sgd": lambda params, c, betas: torch.optim.SGD(
        params, lr=c.lr, weight_decay=c.weight_decay, momentum=c.momentum
    ),
    "rmsprop": lambda params, c, betas: torch.optim.RMSprop(
        params, lr=c.lr, weight_decay=c.weight_decay, momentum=c.momentum
    ),
}


def make_optimizer(
    params_of: torch.nn.Module | list, cfg, betas: tuple[float, float] = (0.9, 0.999)
) -> torch.optim.Optimizer:
    """The train section's optimiser over a model (its param_groups when it has them) or a list of parameters/groups."""
    if isinstance(params_of, torch.nn.Module):
        params = (
            params_of.param_groups(cfg)
            if isinstance(params_of, HasParamGroups)
            else [p for p in params_of.parameters() if p.requires_grad]
        )
    else:
        params = params_of
    return OPTIMIZERS[cfg.optimizer](params, cfg, betas)


def lr_factor(step: int, total: int, cfg) -> float:
    """The multiple of each group's base lr at global step `step` of `total`."""
    warmup = getattr(cfg, "warmup_steps", 0)
    if step < warmup:
        return (step + 1) / warmup
    if getattr(cfg, "scheduler", "none") != "cosine":
        return 1.0
    span = max(total - warmup, 1)
    return 0.5 * (1.0 + math.cos(math.pi * min(step - warmup, span) / span))


class Schedule:
    """Sets every optimiser's group learning rates for each step: base lr x lr_factor."""

    def __init__(self, optimizers: dict[str, torch.optim.Optimizer], cfg):
        self.cfg = cfg
        self.optimizers = optimizers
        self.base = {k: [g["lr"] for g in o.param_groups] for k, o in optimizers.items()}
        self.active = cfg.scheduler == "cosine" or getattr(cfg, "warmup_steps", 0) > 0

    def apply(self, step: int, total: int) -> None:
        if not self.active:
            return
        factor = lr_factor(step, total, self.cfg)
        for name, opt in self.optimizers.items():
            for g, base in zip(opt.param_groups, self.base[name]):
                g["lr"] = base * factor


def clip_gradients(params, max_norm: float | None) -> None:
    """Clip the global L2 norm of the gradients (they must be unscaled already under a GradScaler)."""
    if max_norm:
        torch.nn.utils.clip_grad_norm_([p for p in params if p.grad is not None], max_norm)
