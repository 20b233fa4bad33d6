"""The train section's optimisers and schedules on real digits: AdamW, warmup, gradient clipping (unscaled under a GradScaler), dropping the short last batch."""

from __future__ import annotations

import math

import pytest
import torch

from udlcli.core.callbacks import Callback
from udlcli.core.optim import lr_factor
from udlcli.core.spec import resolve_spec
from udlcli.core.trainer import Trainer
from udlcli.data import load_dataset
from udlcli.models import get


@pytest.fixture(scope="module")
def digits():
    return load_dataset("mnist-sample", limit=100)  # 100 real digits of every class


def _trainer(digits, **train) -> Trainer:
    spec = resolve_spec(
        "ae",
        flags={
            "model.channels": 4,
            "train.batch_size": 32,
            **{f"train.{k}": v for k, v in train.items()},
        },
    )
    torch.manual_seed(0)
    model = get("ae").build(spec.model, spec.data)
    return Trainer(model, spec.train, digits.train, None, torch.device("cpu"))


class Watch(Callback):
    """Each step's learning rate and batch size (rows seen), and the parameter update of step 1."""

    def __init__(self):
        self.lrs, self.sizes = [], []

    def on_step(self, trainer, step, out):
        self.lrs.append(trainer.optimizers["model"].param_groups[0]["lr"])


def test_adamw_decouples_the_weight_decay(digits):
    adam, adamw = (
        _trainer(digits, optimizer=o, weight_decay=0.5, epochs=1) for o in ("adam", "adamw")
    )
    assert isinstance(adamw.optimizers["model"], torch.optim.AdamW)
    for t in (adam, adamw):
        t.fit()
    w = lambda t: t.model.state_dict()["to_latent.weight"]  # noqa: E731
    assert not torch.allclose(w(adam), w(adamw))  # L2 in the gradient vs decay of the weights
    assert adamw.state()["optimizer"]["param_groups"][0]["weight_decay"] == 0.5


def test_warmup_then_cosine_is_a_function_of_the_step(digits):
    t = _trainer(digits, epochs=2, warmup_steps=3, scheduler="cosine")
    watch = Watch()
    t.callbacks.append(watch)
    t.fit()  # 100 digits at batch 32: 4 steps an epoch, 8 in all
    base = 2.218e-3
    assert watch.lrs[:3] == pytest.approx([base / 3, 2 * base / 3, base])
    expected = [base * 0.5 * (1 + math.cos(math.pi * (s - 3) / 5)) for s in range(3, 8)]
    assert watch.lrs[3:] == pytest.approx(expected)
    assert lr_factor(0, 8, t.cfg) == pytest.approx(1 / 3) and lr_factor(7, 8, t.cfg) < lr_factor(
        3, 8, t.cfg
    )


def _first_step(digits, **train) -> torch.Tensor:
    """The gradient the optimiser stepped with on the first batch (clipped, and unscaled under a GradScaler)."""
    from udlcli.rows import Rows

    t = _trainer(
        digits, optimizer="sgd", momentum=0.0, lr=1e-3, weight_decay=0.0, epochs=1, **train
    )
    x, y = next(t.train_data.batches(t.cfg.batch_size, t.shuffle_gen))
    t.step(x, y, Rows())
    return torch.cat([p.grad.flatten() for p in t.model.parameters()])


def test_gradient_clipping_bounds_the_global_norm(digits):
    free = _first_step(digits)
    clipped = _first_step(digits, grad_clip=1e-3)
    assert float(free.norm()) > 1e-2  # a real gradient, far above the bound
    assert float(clipped.norm()) == pytest.approx(1e-3, rel=1e-3)
    torch.testing.assert_close(clipped / clipped.norm(), free / free.norm())  # the same direction


def test_clipping_under_a_grad_scaler_clips_the_unscaled_gradient(digits):
    # float16 with loss scaling: the scaled gradient is 65,536 times the true one; clipping it
    # unscaled first gives the same bound as in float32.
    clipped = _first_step(digits, grad_clip=1e-3, precision="16-mixed")
    assert float(clipped.norm()) == pytest.approx(1e-3, rel=2e-2)


def test_drop_last_skips_the_short_batch(digits):
    for drop, steps in ((False, 4), (True, 3)):  # 100 digits: 32 + 32 + 32 + 4
        t = _trainer(digits, epochs=1, drop_last=drop)
        watch = Watch()
        t.callbacks.append(watch)
        t.fit()
        assert len(watch.lrs) == steps and t.n_batches() == steps
        assert t.history[-1]["images_per_s"] > 0
    assert resolve_spec("ae", flags={"train.drop_last": True}).train.drop_last
