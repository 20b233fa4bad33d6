"""The diffusion family on real digits: the schedules, the noising and its loss, DDIM and ancestral sampling, guidance."""

from __future__ import annotations

import math

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


def _cosine_abar(t: int, steps: int = 1000, s: float = 0.008) -> float:
    """Nichol and Dhariwal's alpha-bar after t steps: f(t) / f(0), f(t) = cos^2((t/T + s) / (1 + s) pi/2)."""
    f = lambda u: math.cos((u / steps + s) / (1 + s) * math.pi / 2) ** 2  # noqa: E731
    return f(t) / f(0)


def test_the_models_alpha_bar_is_the_papers_at_interior_steps():
    """The model's abar[i] is the product of (1 - beta) over steps 1..i+1, each written out here."""
    cosine = DDPM(DDPMConfig(**{**TINY, "timesteps": 1000}), (1, 28, 28)).abar
    for t in (1, 100, 250, 500, 750, 900):
        assert float(cosine[t - 1]) == pytest.approx(_cosine_abar(t), rel=1e-5), t
    linear = DDPM(DDPMConfig(**{**TINY, "timesteps": 1000, "schedule": "linear"}), (1, 28, 28))
    for t in (1, 10, 300, 600, 999):
        want = 1.0
        for i in range(t):  # Ho et al.: beta from 1e-4 to 0.02 in equal steps over 1,000
            want *= 1 - (1e-4 + (0.02 - 1e-4) * i / 999)
        assert float(linear.abar[t - 1]) == pytest.approx(want, rel=1e-5), t


class Recorder(torch.nn.Module):
    """A stand-in for the U-Net inside a loss: records what it is shown and answers a fixed tensor."""

    def __init__(self, answer: torch.Tensor):
        super().__init__()
        self.answer, self.seen = answer, {}
        self.device_anchor = torch.nn.Parameter(torch.zeros(()))

    def forward(self, x, t, y=None):
        self.seen = {"x": x, "t": t}
        return self.answer


@pytest.mark.parametrize("prediction", ["eps", "v"])
def test_the_noising_and_the_target_are_the_papers(digits, prediction):
    """x_t = sqrt(abar) x0 + sqrt(1 - abar) eps, and the loss is the MSE to eps or to
    v = sqrt(abar) eps - sqrt(1 - abar) x0 (Salimans and Ho), with abar from the formula above."""
    x = digits[0][:6]
    model = DDPM(DDPMConfig(**{**TINY, "timesteps": 1000}, prediction=prediction), (1, 28, 28))
    answer = torch.randn(6, 1, 28, 28, generator=torch.Generator().manual_seed(9))
    model.net = Recorder(answer)
    torch.manual_seed(4)
    got = model.loss(x, torch.zeros(6))["loss"]
    torch.manual_seed(4)  # the same draws, in the loss's order: t, then the noise
    t, eps = torch.randint(0, 1000, (6,)), torch.randn(6, 1, 28, 28)
    a = torch.tensor([_cosine_abar(int(i) + 1) for i in t]).view(-1, 1, 1, 1)
    x0 = 2 * x - 1
    torch.testing.assert_close(model.net.seen["x"], a.sqrt() * x0 + (1 - a).sqrt() * eps)
    torch.testing.assert_close(model.net.seen["t"], t.float())
    target = eps if prediction == "eps" else a.sqrt() * eps - (1 - a).sqrt() * x0
    torch.testing.assert_close(got, ((answer - target) ** 2).mean())


def _pair(model, t: int):
    """A clean image x0 in [-1, 1], noise eps, and x_t made from them by the formula."""
    g = torch.Generator().manual_seed(t)
    x0 = torch.rand(2, 1, 28, 28, generator=g) * 1.6 - 0.8
    eps = torch.randn(2, 1, 28, 28, generator=g)
    a = _cosine_abar(t + 1, model.steps)
    return x0, eps, math.sqrt(a) * x0 + math.sqrt(1 - a) * eps, a


@pytest.mark.parametrize("prediction", ["eps", "v"])
def test_the_output_inverts_to_the_clean_image_and_the_noise(prediction):
    """Shown the true eps (or v) of an x_t, the model recovers the x0 and eps it was made from."""
    model = DDPM(DDPMConfig(**{**TINY, "timesteps": 1000}, prediction=prediction), (1, 28, 28))
    for t in (50, 400, 900):
        x0, eps, xt, a = _pair(model, t)
        true = eps if prediction == "eps" else math.sqrt(a) * eps - math.sqrt(1 - a) * x0
        model.net = Recorder(true)
        got_eps, got_x0 = model._eps_x0(xt, t, None, 1.0)
        torch.testing.assert_close(got_x0, x0, atol=2e-4, rtol=0)
        torch.testing.assert_close(got_eps, eps, atol=2e-4, rtol=0)


def _linear_abar(t: int, steps: int) -> float:
    """alpha-bar after t steps of Ho et al.'s linear betas (1e-4 .. 0.02 at T = 1,000, scaled by 1000 / T)."""
    out, scale = 1.0, 1000 / steps
    for i in range(t):
        out *= 1 - scale * (1e-4 + (0.02 - 1e-4) * i / (steps - 1))
    return out


def test_one_ddim_step_and_one_ancestral_step_on_fixed_tensors():
    """From x_t made of (x0, eps), a network that answers that eps takes DDIM to
    sqrt(abar_prev) x0 + sqrt(1 - abar_prev) eps, and the ancestral step to the DDPM posterior
    mean (Ho et al. eq. 7) plus its standard deviation times the step's noise."""
    T = 100
    model = DDPM(DDPMConfig(**TINY, schedule="linear"), (1, 28, 28))
    abar = [_linear_abar(t, T) for t in range(1, T + 1)]
    g = torch.Generator().manual_seed(3)
    x0 = torch.rand(2, 1, 28, 28, generator=g) * 1.6 - 0.8
    eps = torch.randn(2, 1, 28, 28, generator=g)
    xt = math.sqrt(abar[T - 1]) * x0 + math.sqrt(1 - abar[T - 1]) * eps
    model.net = Recorder(eps)  # the right eps at step T - 1; only the first step is checked
    # DDIM over 2 steps: T - 1 -> 0 -> the image; frames[1] is x after the first step (image 0).
    first = model._sample(xt, None, keep=3, steps=2, sampler="ddim")[1]
    want = math.sqrt(abar[0]) * x0[0] + math.sqrt(1 - abar[0]) * eps[0]
    torch.testing.assert_close(first, want, atol=1e-3, rtol=0)
    # Ancestral: T - 1 -> T - 2 with the posterior q(x_{t-1} | x_t, x0).
    z = torch.randn(2, 1, 28, 28, generator=torch.Generator().manual_seed(11))
    frames = model._sample(xt, lambda step: z, keep=T + 1, sampler="ancestral")
    a_t, a_prev = abar[T - 1], abar[T - 2]
    beta = 1 - a_t / a_prev
    mean = (math.sqrt(a_prev) * beta / (1 - a_t)) * x0 + (
        math.sqrt(1 - beta) * (1 - a_prev) / (1 - a_t)
    ) * xt
    var = (1 - a_prev) / (1 - a_t) * beta
    torch.testing.assert_close(frames[1], (mean + math.sqrt(var) * z)[0], atol=1e-3, rtol=0)


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


class StepLog(torch.nn.Module):
    """A network that answers zeros and logs every step it is called at."""

    def __init__(self):
        super().__init__()
        self.steps: list[int] = []
        self.device_anchor = torch.nn.Parameter(torch.zeros(()))

    def forward(self, x, t, y=None):
        self.steps.append(int(t[0]))
        return torch.zeros_like(x)


def test_the_samplers_visit_their_steps_and_the_schedule_is_not_a_weight():
    """Ancestral sampling calls the network at every t from T - 1 down to 0, once each; DDIM at
    ddim_steps (50 by default); 1 and T steps are allowed, 0 and T + 1 are not. The schedule is a
    function of the config, not a weight: checkpoints do not carry it."""
    from udlcli.models.ddpm import ddim_steps

    model = DDPM(DDPMConfig(**TINY), (1, 28, 28))  # T = 100
    assert not any("abar" in k for k in model.state_dict())
    model.net = StepLog()
    model.generate(1, torch.Generator().manual_seed(0), sampler="ancestral")
    assert model.net.steps == list(range(99, -1, -1))
    for steps, want in ((None, ddim_steps(100, 50)), (1, [99]), (100, list(range(99, -1, -1)))):
        model.net.steps = []
        model.generate(1, torch.Generator().manual_seed(0), steps=steps)
        assert model.net.steps == want, steps
    assert len(ddim_steps(100, 50)) == 50
    for bad in (0, 101):
        with pytest.raises(SpecError, match=f"--steps {bad}: give 1 to 100 DDIM steps"):
            model.generate(1, None, steps=bad)


def test_the_last_ancestral_steps_add_their_noise_and_the_final_one_none():
    """With a network that answers zeros, the step from t = 1 to 0 is the posterior mean plus
    sqrt(beta~_1) z, and the step from t = 0 to the image is its mean alone."""
    T = 100
    model = DDPM(DDPMConfig(**TINY, schedule="linear"), (1, 28, 28))
    model.net = StepLog()
    abar = [_linear_abar(t, T) for t in range(1, T + 1)]
    x = torch.randn(2, 1, 28, 28, generator=torch.Generator().manual_seed(1)) * 0.1
    z = torch.randn(2, 1, 28, 28, generator=torch.Generator().manual_seed(2))
    frames = model._sample(x, lambda step: z, keep=T + 1, sampler="ancestral")
    for i, t in ((T - 2, 1), (T - 1, 0)):  # frames[i] is x before the step at t
        a_t = abar[t]
        a_prev = abar[t - 1] if t > 0 else 1.0
        beta = 1 - a_t / a_prev
        xt = frames[i]
        x0 = (xt / math.sqrt(a_t)).clamp(-1, 1)  # eps = 0: x0 is x_t rescaled
        mean = (math.sqrt(a_prev) * beta * x0 + math.sqrt(1 - beta) * (1 - a_prev) * xt) / (1 - a_t)
        var = (1 - a_prev) / (1 - a_t) * beta
        want = mean + (math.sqrt(var) * z[0] if t > 0 else 0)
        torch.testing.assert_close(frames[i + 1], want, atol=1e-5, rtol=1e-4)
    assert float(frames[-1].sub(frames[-2]).abs().max()) > 0
