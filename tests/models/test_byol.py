"""BYOL on real digits: the target moves only by its momentum, the loss falls."""

from __future__ import annotations

import math

import pytest
import torch

from udlcli.config import DataConfig
from udlcli.data import load_dataset
from udlcli.models.byol import BYOL, BYOLConfig

TINY = dict(channels=8, proj_hidden=32, proj_dim=16, pred_hidden=32)


@pytest.fixture(scope="module")
def digits():
    d = load_dataset("mnist-sample", limit=256)
    return d.train.images(torch.arange(128)), d.train.y[:128]


def test_the_target_follows_by_momentum_alone(digits):
    torch.manual_seed(0)
    model = BYOL(BYOLConfig(**TINY, momentum=0.9), DataConfig(dataset="mnist"))
    before = [p.clone() for p in model.target.parameters()]
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], 1e-2)
    loss = model.loss(*digits)["loss"]
    opt.zero_grad()
    loss.backward()
    assert all(p.grad is None for p in model.target.parameters())
    opt.step()
    assert all(torch.equal(a, b) for a, b in zip(before, model.target.parameters()))
    online = [*model.backbone.parameters(), *model.projector.parameters()]
    model.after_step(0.0)  # tau = 0.9 at the start
    for t, b, o in zip(model.target.parameters(), before, online):
        torch.testing.assert_close(t, 0.9 * b + 0.1 * o)
    tau_end = 1 - (1 - 0.9) * (math.cos(math.pi) + 1) / 2
    assert tau_end == pytest.approx(1.0)  # the target stops moving at the end


def test_the_loss_falls(digits):
    torch.manual_seed(0)
    model = BYOL(BYOLConfig(**TINY), DataConfig(dataset="mnist"))
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], 3e-3)
    losses = []
    for i in range(25):
        loss = model.loss(*digits)["loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()
        model.after_step(i / 25)
        losses.append(loss.item())
    assert sum(losses[-5:]) < sum(losses[:5])
