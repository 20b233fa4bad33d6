"""BYOL on real digits: the target moves only by its momentum, on the cosine schedule, the loss pairs
each view's prediction with the other view's target, and the loss falls."""

from __future__ import annotations

import json

import pytest
import torch
from conftest import untrained_test_knn

from udlcli.config import DataConfig
from udlcli.core.spec import resolve_spec
from udlcli.data import load_dataset
from udlcli.data.augment import augment
from udlcli.models.byol import BYOL, BYOLConfig
from udlcli.rows import LOCAL
from udlcli.tasks.train import RunOptions, train

TINY = dict(channels=8, proj_hidden=32, proj_dim=16, pred_hidden=32)


@pytest.fixture(scope="module")
def digits():
    d = load_dataset("mnist-sample", limit=256)
    return d.train.images(torch.arange(128)), d.train.y[:128]


def online_of(model: BYOL) -> list[torch.Tensor]:
    return [*model.backbone.parameters(), *model.projector.parameters()]


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
    model.after_step(0.0)  # tau = 0.9 at the start
    for t, b, o in zip(model.target.parameters(), before, online_of(model)):
        torch.testing.assert_close(t, 0.9 * b + 0.1 * o)


# tau(p) = 1 - (1 - m)(cos(pi p) + 1) / 2 for m = 0.9, by hand (cos(pi / 4) = 0.70710678):
#   p = 0     1 - 0.1 x 2 / 2               = 0.9
#   p = 0.25  1 - 0.05 x (1 + 0.70710678)   = 0.91464466
#   p = 0.5   1 - 0.05 x 1                  = 0.95
#   p = 0.75  1 - 0.05 x (1 - 0.70710678)   = 0.98535534
#   p = 1     1 - 0.05 x 0                  = 1: the target stops moving
#   p = 1.5   past the end (more epochs on resume): still 1
TAU_09 = {0.0: 0.9, 0.25: 0.91464466, 0.5: 0.95, 0.75: 0.98535534, 1.0: 1.0, 1.5: 1.0}


@pytest.mark.parametrize("progress", TAU_09)
def test_after_step_moves_the_target_by_the_cosine_momentum(progress):
    torch.manual_seed(0)
    model = BYOL(BYOLConfig(**TINY, momentum=0.9), DataConfig(dataset="mnist"))
    with torch.no_grad():  # the online network far from the target, as after some steps
        for o in online_of(model):
            o.add_(torch.randn_like(o))
    target = [t.detach().double().clone() for t in model.target.parameters()]
    online = [o.detach().double().clone() for o in online_of(model)]
    predictor = [p.detach().clone() for p in model.predictor.parameters()]
    model.after_step(progress)
    tau = TAU_09[progress]
    for t, b, o in zip(model.target.parameters(), target, online):
        # A move of a different tau by even 0.001 is off by ~1e-3 here (|o - b| ~ 1).
        torch.testing.assert_close(t.double(), tau * b + (1 - tau) * o, rtol=0, atol=1e-6)
    for o, before in zip(online_of(model), online):
        assert torch.equal(o.double(), before)  # the online network is not moved
    assert all(torch.equal(a, b) for a, b in zip(model.predictor.parameters(), predictor))


def test_the_loss_pairs_each_prediction_with_the_other_views_target(digits):
    """loss = 2 - [mean cos(p(v1), t(v2)) + mean cos(p(v2), t(v1))], computed here pair by pair
    from the same views (the same seed): pairing a prediction with its own view's target, or one
    pair twice, gives another number."""
    x, y = digits[0][:16], digits[1][:16]
    torch.manual_seed(0)
    model = BYOL(BYOLConfig(**TINY, momentum=0.9), DataConfig(dataset="mnist"))
    with torch.no_grad():  # a target that is not the online network's copy any more
        for t in model.target.parameters():
            t.add_(0.1 * torch.randn_like(t))
    params = [p for p in model.parameters() if p.requires_grad]
    torch.manual_seed(3)
    out = model.loss(x, y)
    got_grads = torch.autograd.grad(out["loss"], params)

    torch.manual_seed(3)
    v1 = augment(x, model.aug, False, LOCAL)  # the loss's two draws, in order (digits: no flips)
    v2 = augment(x, model.aug, False, LOCAL)
    assert (v1 - v2).abs().amax() > 0.1  # the views differ, so the pairing matters

    def online(v):
        return model.predictor(model.projector(model.backbone(v)))

    def cos(a, b):  # per row, by hand
        return (a * b).sum(1) / (a.norm(dim=1) * b.norm(dim=1))

    # Both views go through the heads as one batch, as in the loss: their BatchNorm normalises
    # over the 2b rows together.
    p1, p2 = online(torch.cat([v1, v2])).double().chunk(2)
    with torch.no_grad():
        t1, t2 = model.target(torch.cat([v1, v2])).double().chunk(2)
    cross = cos(p1, t2).mean() + cos(p2, t1).mean()
    want = 2 - cross
    torch.testing.assert_close(out["loss"].double(), want, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(out["cos"].double(), cross / 2, rtol=1e-5, atol=1e-6)
    for wrong in (
        cos(p1, t1).mean() + cos(p2, t2).mean(),  # each view's own target
        2 * cos(p1, t2).mean(),  # one direction twice
        2 * cos(p2, t1).mean(),
    ):
        assert abs(float(2 - wrong.detach()) - float(want.detach())) > 1e-3  # beyond the tolerance
    for g, w in zip(got_grads, torch.autograd.grad(want, params)):
        torch.testing.assert_close(g.double(), w.double(), rtol=1e-4, atol=1e-6)


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


# The budget that shows SimCLR learning (tests/models/test_simclr.py's LEARN): 2,048 digits, 10
# epochs of 25 steps, no warmup, milder views.
LEARN = {
    "data.dataset": "mnist-sample",
    "data.limit": 2048,
    "train.epochs": 10,
    "train.batch_size": 64,
    "train.lr": 5e-3,
    "train.warmup_steps": 0,
    "train.device": "cpu",
    "train.precision": "32",  # the numbers below were measured in float32
    "model.augment.strength": 0.5,
    **{f"model.{k}": v for k, v in TINY.items()},
}


def test_a_run_learns(tmp_path):
    spec = resolve_spec("byol", flags=LEARN)
    before = untrained_test_knn(spec)
    r = train(resolve_spec("byol", flags=LEARN), RunOptions(out=tmp_path))
    s = json.loads((r.run_dir / "summary.json").read_text())
    assert s["test_knn_acc"] >= before + 0.03, (before, s["test_knn_acc"])


def test_a_checkpoint_with_the_old_layernorm_heads_still_loads():
    """Runs made before the heads' BatchNorm keep their backbone: upgrade() gives the norms fresh
    statistics, and the state loads strictly into today's model."""
    from udlcli.models.byol import HEAD_NORMS, upgrade

    torch.manual_seed(0)
    model = BYOL(BYOLConfig(**TINY), DataConfig(dataset="mnist"))
    state = model.state_dict()
    old = {
        k: v
        for k, v in state.items()
        if not k.endswith(("running_mean", "running_var", "num_batches_tracked"))
    }
    payload = upgrade({"model": old, "ema": dict(old)})
    fresh = BYOL(BYOLConfig(**TINY), DataConfig(dataset="mnist"))
    fresh.load_state_dict(payload["model"])  # strict: every key there, none extra
    for p in HEAD_NORMS:
        assert torch.equal(
            payload["ema"][f"{p}.running_var"], torch.ones_like(state[f"{p}.weight"])
        )
    x = torch.rand(4, 1, 28, 28)
    torch.testing.assert_close(fresh.backbone(x), model.backbone(x))


def test_upgrade_leaves_todays_checkpoints_and_other_payloads_alone():
    from udlcli.models.byol import upgrade

    torch.manual_seed(0)
    state = BYOL(BYOLConfig(**TINY), DataConfig(dataset="mnist")).state_dict()
    assert upgrade({"model": dict(state)})["model"].keys() == state.keys()
    assert upgrade({"model": {}, "ema": None}) == {"model": {}, "ema": None}  # no heads: nothing
    old = {k: v for k, v in state.items() if "running" not in k and "num_batches" not in k}
    assert int(upgrade({"model": old})["model"]["projector.1.num_batches_tracked"]) == 0
