"""The classifier family: a backbone's weights load from its run, a frozen backbone gets no gradients and stays in eval mode."""

from __future__ import annotations

import pytest
import torch

from udlcli.config import DataConfig, TrainConfig
from udlcli.core.spec import resolve_spec
from udlcli.data import load_dataset
from udlcli.models import get
from udlcli.models.ae import ConvAE
from udlcli.models.classifier import ClassifierConfig, build_classifier


@pytest.fixture(scope="module")
def batch():
    d = load_dataset("mnist-sample")
    idx = torch.arange(0, len(d.train), 40)  # 100 real digits of every class
    return d.train.images(idx), d.train.y[idx]


def _pair(unfreeze: bool, **kw):
    torch.manual_seed(0)
    ae = ConvAE(channels=4, latent_dim=5)
    backbone = {"name": "ae", "channels": 4, "latent_dim": 5}
    cfg = ClassifierConfig(backbone=backbone, hidden=32, unfreeze=unfreeze, **kw)
    clf = build_classifier(cfg, DataConfig())
    clf.load_backbone(ae)
    return ae, clf


def test_codes_are_the_aes_and_logits_have_one_column_per_class(batch):
    x, _ = batch
    ae, clf = _pair(unfreeze=False)
    clf.eval()
    ae.eval()
    assert torch.equal(clf.encode(x), ae.encode(x))
    assert clf(x).shape == (len(x), 10)


def test_frozen_encoder_gets_no_gradient_and_stays_in_eval_mode(batch):
    x, y = batch
    _, clf = _pair(unfreeze=False, dropout=0.5)
    clf.train()
    assert clf.head.training and not clf.backbone.training
    before = {k: v.clone() for k, v in clf.state_dict().items()}
    opt = torch.optim.Adam(
        [p for g in clf.param_groups(TrainConfig(lr=1e-2)) for p in g["params"]], lr=1e-2
    )
    out = clf.loss(x, y)
    assert set(out) == {"loss", "acc"} and 0.0 <= float(out["acc"]) <= 1.0
    out["loss"].backward()
    assert all(p.grad is None for p in clf.backbone.parameters())
    assert all(p.grad is not None for p in clf.head.parameters())
    opt.step()
    after = clf.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before if not k.startswith("head."))
    assert not torch.equal(before["head.0.weight"], after["head.0.weight"])
    assert clf.trainable_parameters() == sum(p.numel() for p in clf.head.parameters())


def test_unfrozen_encoder_trains_at_its_own_learning_rate(batch):
    x, y = batch
    _, clf = _pair(unfreeze=True, encoder_lr=3e-4)
    groups = clf.param_groups(TrainConfig(lr=2e-3))
    assert [g["lr"] for g in groups] == [2e-3, 3e-4]
    clf.train()
    assert clf.backbone.training
    clf.loss(x, y)["loss"].backward()
    assert all(p.grad is not None for p in clf.backbone.parameters())
    # without encoder_lr the encoder learns at the head's rate (the measured --unfreeze recipe), with 2-pixel shifts
    _, clf2 = _pair(unfreeze=True)
    assert [g["lr"] for g in clf2.param_groups(TrainConfig(lr=2e-3))] == [2e-3, 2e-3]
    assert clf2.cfg.shift == 2 and ClassifierConfig().shift == 0


def test_registered_as_a_finetune_family_with_the_reports_head():
    entry = get("classifier")
    assert entry.task == "finetune"
    spec = resolve_spec("classifier")
    assert (spec.model.hidden, spec.model.dropout) == (928, 0.104258)
    assert (spec.train.lr, spec.train.weight_decay, spec.train.optimizer) == (
        1.839e-3,
        5.81e-5,
        "adam",
    )
    model = entry.build(spec.model, DataConfig(mean=0.5, std=0.25))
    norm = model.backbone.encoder.normalize
    assert float(norm.mean) == 0.5 and float(norm.std) == 0.25
    # A classifier written before backbones were general (an AE's n and d, encoder.* keys) loads.
    old = ClassifierConfig(channels=4, latent_dim=5, hidden=32)
    assert old.backbone == {"name": "ae", "channels": 4, "latent_dim": 5}
    legacy = build_classifier(old, DataConfig())
    state = {k.replace("backbone.", "", 1): v.clone() + 1 for k, v in legacy.state_dict().items()}
    legacy.load_state_dict(state)
    assert torch.equal(legacy.backbone.to_latent.bias, state["to_latent.bias"])


def test_random_shift_moves_each_digit_by_whole_pixels_within_the_bound(batch):
    from udlcli.models.classifier import random_shift

    x, _ = batch
    x = x[:50]
    torch.manual_seed(0)
    shifted = random_shift(x, 2)
    assert shifted.shape == x.shape
    moved = 0
    for a, b in zip(x[:, 0], shifted[:, 0]):
        # Each output is the input rolled by one (dy, dx) in [-2, 2]^2 (digits have an empty border, so nothing is lost).
        hits = [
            (dy, dx)
            for dy in range(-2, 3)
            for dx in range(-2, 3)
            if torch.equal(torch.roll(a, (dy, dx), (0, 1)), b)
        ]
        assert len(hits) == 1
        moved += hits[0] != (0, 0)
    assert moved > 40  # 24 of 25 offsets move the digit


def test_shift_trains_only_an_unfrozen_encoder_and_only_in_training(batch):
    x, y = batch
    with pytest.raises(ValueError, match="shift .* needs unfreeze"):
        ClassifierConfig(shift=2)
    _, clf = _pair(
        True, shift=2, dropout=0.0
    )  # no dropout: any change of the loss comes from the shifts
    clf.eval()  # evaluation sees the images as they are: the same loss twice
    assert torch.equal(clf.loss(x, y)["loss"], clf.loss(x, y)["loss"])
    clf.train()
    torch.manual_seed(1)
    a = clf.loss(x, y)["loss"]
    torch.manual_seed(2)
    assert not torch.equal(a, clf.loss(x, y)["loss"])  # other shifts, other loss


@pytest.mark.parametrize("features,width", [("latent", 5), ("hidden", 64), ("conv", 3 * 3 * 4 * 4)])
def test_features_pick_what_the_head_sees(batch, features, width):
    x, y = batch
    ae, clf = _pair(unfreeze=False, features=features)
    clf.eval()
    ae.eval()
    f = clf.encode(x)
    assert f.shape == (len(x), width) and clf.head[0].in_features == width
    with torch.no_grad():
        expected = {
            "latent": ae.encode(x),
            "hidden": ae.encoder(x),
            "conv": ae.encoder.body[:7](ae.encoder.normalize(x)),
        }[features]
    torch.testing.assert_close(f, expected)
    torch.testing.assert_close(clf(x), clf.classify(f))  # the head alone on features computed once
    with torch.no_grad():
        assert float(clf.feature_loss(f, y)["loss"]) == pytest.approx(float(clf.loss(x, y)["loss"]))


def test_standardize_scales_the_features_with_fixed_numbers(batch):
    x, _ = batch
    _, clf = _pair(unfreeze=False, features="hidden")
    clf.eval()
    f = clf.encode(x)
    clf.standardize.fit(f)
    z = clf.standardize(f)
    live = f.std(0) > 1e-6  # ReLU units that never fire stay as they are
    torch.testing.assert_close(z.mean(0), torch.zeros(f.shape[1]), atol=1e-5, rtol=0)
    torch.testing.assert_close(z.std(0)[live], torch.ones(int(live.sum())), atol=1e-4, rtol=0)
    assert "standardize.mean" in clf.state_dict() and not any(
        p is clf.standardize.mean for p in clf.parameters()
    )
