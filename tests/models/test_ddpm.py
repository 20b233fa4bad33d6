"""The diffusion family on real digits: the schedules, the noising and its loss, DDIM and ancestral sampling, guidance."""

from __future__ import annotations

import pytest
import torch

from udlcli.data import load_dataset
from udlcli.errors import SpecError
from udlcli.models.ddpm import DDPM, DDPMConfig, betas_for
from udlcli.rows import Rows

TINY = dict(width=8, blocks=1, attention=False, timesteps=100)


@pytest.fixture(scope="module")
def digits():
    d = load_dataset("mnist-sample", limit=64)
    return d.train.images(torch.arange(64)), d.train.y[:64]


def test_schedules_match_their_papers():
    lin = betas_for("linear", 1000)
    assert float(lin[0]) == pytest.approx(1e-4) and float(lin[-1]) == pytest.approx(0.02)
    abar = torch.cumprod(1 - betas_for("cosine", 1000), 0)
    assert (
        float(abar[0]) > 0.9999 and float(abar[-1]) < 1e-4 and bool((abar[1:] <= abar[:-1]).all())
    )


def _fit(model, x, y, steps=30):
    opt = torch.optim.Adam(model.parameters(), 3e-3)
    losses = []
    for i in range(steps):
        torch.manual_seed(i)
        loss = model.loss(x, y)["loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses


@pytest.mark.parametrize("prediction", ["eps", "v"])
def test_the_loss_falls_on_real_digits(digits, prediction):
    torch.manual_seed(0)
    model = DDPM(DDPMConfig(**TINY, prediction=prediction), (1, 28, 28))
    losses = _fit(model, *digits)
    assert sum(losses[-5:]) / 5 < 0.6 * sum(losses[:5]) / 5


def test_sampling_is_seeded_in_range_and_the_samplers_differ(digits):
    torch.manual_seed(0)
    model = DDPM(DDPMConfig(**TINY), (1, 28, 28))
    _fit(model, *digits, steps=10)
    model.eval()
    a = model.generate(4, torch.Generator().manual_seed(1), steps=10)
    assert a.shape == (4, 1, 28, 28) and 0 <= float(a.min()) and float(a.max()) <= 1
    assert torch.equal(a, model.generate(4, torch.Generator().manual_seed(1), steps=10))
    assert not torch.equal(a, model.generate(4, torch.Generator().manual_seed(2), steps=10))
    anc = model.generate(4, torch.Generator().manual_seed(1), sampler="ancestral")
    assert not torch.equal(a, anc)  # 100 stochastic steps, not 10 deterministic ones
    frames = model.trajectory(torch.Generator().manual_seed(1), frames=5, steps=10)
    assert frames.shape == (5, 1, 28, 28)
    torch.testing.assert_close(
        frames[-1], a[0], atol=1e-4, rtol=0
    )  # the path ends at sample 0 (a batch of 1)
    with pytest.raises(SpecError, match="ancestral sampling takes all 100 steps"):
        model.generate(2, None, steps=10, sampler="ancestral")
    with pytest.raises(SpecError, match="--class needs a model trained with --conditional"):
        model.generate(2, None, class_=3)


def test_guidance_mixes_the_class_with_no_class(digits):
    torch.manual_seed(0)
    model = DDPM(DDPMConfig(**TINY, conditional=True, classes=10), (1, 28, 28))
    _fit(model, *digits, steps=5)
    model.eval()
    x, t = torch.randn(3, 1, 28, 28), torch.full((3,), 50.0)
    with torch.no_grad():
        c = model.net(x, t, torch.full((3,), 7))
        u = model.net(x, t, torch.full((3,), 10))
        torch.testing.assert_close(model.guided(x, t, 7, 3.0), u + 3.0 * (c - u))
        torch.testing.assert_close(model.guided(x, t, 7, 1.0), c)
        torch.testing.assert_close(model.guided(x, t, None, 3.0), model.net(x, t))
    with pytest.raises(SpecError, match="--guidance .* give --class K too"):
        model.generate(2, None, guidance=2.0)
    with pytest.raises(SpecError, match="--class 12: this model knows classes 0..9"):
        model.generate(2, None, class_=12)


def test_label_dropout_uses_the_trainers_rows():
    model = DDPM(DDPMConfig(**TINY, conditional=True, classes=10, p_uncond=0.5), (1, 28, 28))
    y = torch.arange(10).repeat(10)
    torch.manual_seed(3)
    whole = model.labels(y, Rows())
    torch.manual_seed(3)
    half = model.labels(
        y[50:], Rows(100, slice(50, 100))
    )  # rank 1 of 2: the same labels as one process
    assert torch.equal(whole[50:], half) and 20 < int((whole == 10).sum()) < 80


def test_ddim_steps_start_from_pure_noise_and_a_short_linear_schedule_stays_finite():
    from udlcli.models.ddpm import ddim_steps

    assert ddim_steps(1000, 1) == [999] and ddim_steps(1000, 2) == [999, 0]
    many = ddim_steps(1000, 50)
    assert len(many) == 50 and many[0] == 999 and many[-1] == 0
    short = torch.cumprod(1 - betas_for("linear", 10), 0)  # Ho's betas stretched to T = 10
    assert bool(torch.isfinite(short).all()) and float(short.min()) > 0
