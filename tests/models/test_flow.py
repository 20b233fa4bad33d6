"""Flow matching on real digits: straight paths, the velocity loss, Euler and Heun sampling."""

from __future__ import annotations

import math

import pytest
import torch

from udlcli.data import load_dataset
from udlcli.errors import SpecError
from udlcli.models.flow import Flow, FlowConfig

TINY = dict(width=8, blocks=1, attention=False)


@pytest.fixture(scope="module")
def digits():
    d = load_dataset("mnist-sample", limit=64)
    return d.train.images(torch.arange(64)), d.train.y[:64]


def test_the_loss_is_the_straight_paths_velocity(digits):
    """The loss is MSE(net((1-t) x0 + t x1, 1000 t), x1 - x0) with x0, t from the rows' draws."""
    x, y = digits
    model = Flow(FlowConfig(**TINY), (1, 28, 28))
    for p in model.net.out[-1].parameters():
        torch.nn.init.normal_(p, std=0.05)
    torch.manual_seed(7)
    got = model.loss(x[:8], y[:8])["loss"]
    torch.manual_seed(7)
    x0, t = torch.randn(8, 1, 28, 28), torch.rand(8)
    x1, tt = 2 * x[:8] - 1, t.view(-1, 1, 1, 1)
    want = torch.nn.functional.mse_loss(model.net((1 - tt) * x0 + tt * x1, 1000 * t), x1 - x0)
    torch.testing.assert_close(got, want)


def test_training_and_sampling(digits):
    torch.manual_seed(0)
    model = Flow(FlowConfig(**TINY), (1, 28, 28))
    opt = torch.optim.Adam(model.parameters(), 3e-3)
    losses = []
    for _ in range(30):
        loss = model.loss(*digits)["loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert sum(losses[-5:]) < 0.6 * sum(losses[:5])
    model.eval()
    g = lambda: torch.Generator().manual_seed(4)  # noqa: E731
    euler, heun = model.generate(3, g(), steps=8), model.generate(3, g(), steps=8, sampler="heun")
    assert euler.shape == (3, 1, 28, 28) and torch.equal(euler, model.generate(3, g(), steps=8))
    assert not torch.equal(euler, heun)
    with pytest.raises(SpecError, match="--sampler ddim: flow samples with euler or heun"):
        model.generate(2, None, sampler="ddim")
    with pytest.raises(SpecError, match="--steps 0"):
        model.generate(2, None, steps=0)


class Recorder(torch.nn.Module):
    """A stand-in for the U-Net inside a loss or a sampler: records the times it is shown, answers
    `fn(x, t)` (t in [0, 1])."""

    def __init__(self, fn):
        super().__init__()
        self.fn, self.times = fn, []
        self.device_anchor = torch.nn.Parameter(torch.zeros(()))

    def forward(self, x, t, y=None):
        self.times.append(t / 1000)
        return self.fn(x, (t / 1000).view(-1, *([1] * (x.ndim - 1))))


def test_logit_normal_times_are_drawn_by_the_loss():
    """Flow.loss draws the noise, then t = sigmoid(n), n ~ N(0, 1), per image: the times the
    network is shown are those, and over many images logit(t) has mean 0 and deviation 1."""
    model = Flow(FlowConfig(**TINY, time="logit-normal"), (1, 4, 4))
    model.net = Recorder(lambda x, t: torch.zeros_like(x))
    x = torch.rand(20_000, 1, 4, 4)
    torch.manual_seed(0)
    model.loss(x, torch.zeros(len(x)))
    t = model.net.times[-1]
    torch.manual_seed(0)
    torch.randn(20_000, 1, 4, 4)  # the loss's noise comes first
    torch.testing.assert_close(t, torch.sigmoid(torch.randn(20_000)))
    logit = torch.log(t / (1 - t))
    assert abs(float(logit.mean())) < 0.03 and abs(float(logit.std()) - 1) < 0.03
    uniform = Flow(FlowConfig(**TINY), (1, 4, 4))
    uniform.net = Recorder(lambda x, t: torch.zeros_like(x))
    uniform.loss(x, torch.zeros(len(x)))
    u = uniform.net.times[-1]  # uniform on (0, 1): a quarter below 0.25, where logit-normal has 13%
    assert abs(float((u < 0.25).float().mean()) - 0.25) < 0.02
    assert abs(float((t < 0.25).float().mean()) - 0.1367) < 0.02


def _rate(t: float) -> float:
    return 1 + 2 * t


@pytest.mark.parametrize("steps", [1, 4, 10])
def test_euler_and_heun_take_their_textbook_steps(steps):
    """On dx/dt = (1 + 2t) x, whose solution is x(1) = e^2 x(0): Euler multiplies by
    prod (1 + (1 + 2 t_i) dt), Heun by prod (1 + dt/2 [k(t_i) + k(t_i + dt)(1 + k(t_i) dt)]),
    t_i = i dt; both products are written out here."""
    model = Flow(FlowConfig(**TINY), (1, 4, 4))
    model.net = Recorder(lambda x, t: (1 + 2 * t) * x)
    x = torch.randn(3, 1, 4, 4, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    dt, euler, heun = 1 / steps, 1.0, 1.0
    for i in range(steps):
        t = i * dt
        euler *= 1 + _rate(t) * dt
        heun *= 1 + dt / 2 * (_rate(t) + _rate(t + dt) * (1 + _rate(t) * dt))
    got_euler = model._sample(x.clone(), None, steps=steps, sampler="euler")
    got_heun = model._sample(x.clone(), None, steps=steps, sampler="heun")
    torch.testing.assert_close(got_euler, euler * x)
    torch.testing.assert_close(got_heun, heun * x)
    # Heun is second order: its error to e^2 shrinks far faster than Euler's.
    if steps == 10:
        assert abs(heun - math.e**2) < abs(euler - math.e**2) / 10


def test_conditional_training_needs_labels(runner, tmp_path):
    """A flat folder has no classes: --conditional is one line before anything is written."""
    from PIL import Image

    from udlcli.cli.app import app

    folder = tmp_path / "flat"
    folder.mkdir()
    for i, img in enumerate(load_dataset("mnist-sample", limit=40).train.images(torch.arange(40))):
        Image.fromarray((img[0] * 255).byte().numpy()).save(folder / f"{i:03d}.png")
    out = tmp_path / "runs"
    r = runner.invoke(
        app,
        ["train", "flow", "--conditional", "--dataset", f"folder:{folder}", "--out", str(out)]
        + ["--epochs", "1", "--set", "model.width=8", "-q"],
    )
    assert r.exit_code != 0 and "has training images without a class label" in r.output
    assert "Traceback" not in r.output and not out.exists()


def test_the_sampler_takes_its_steps_and_the_trajectory_runs_from_noise_to_the_sample():
    """20 Euler steps by default at t = 0, 1/20, ...; 1 and 1,000 steps allowed, 0 and 1,001 not;
    a trajectory's first frame is the starting noise and its last the sample."""
    model = Flow(FlowConfig(**TINY), (1, 4, 4))
    model.net = Recorder(lambda x, t: -x + 0.5)
    g = lambda: torch.Generator().manual_seed(6)  # noqa: E731
    model.generate(2, g())
    assert [round(float(t[0]) * 20) for t in model.net.times] == list(range(20))
    for steps in (1, 1000):
        model.net.times = []
        model.generate(1, g(), steps=steps)
        assert len(model.net.times) == steps
    for bad in (0, 1001):
        with pytest.raises(SpecError, match=f"--steps {bad}: give 1 to 1000 integration steps"):
            model.generate(1, None, steps=bad)
    sample = model.generate(3, g(), steps=5)
    frames = model.trajectory(g(), frames=6, steps=5)
    assert frames.shape == (6, 1, 4, 4)
    noise = (torch.randn(1, 1, 4, 4, generator=_after_base(g())) + 1) / 2  # the first image's
    torch.testing.assert_close(frames[0], noise[0].clamp(0, 1))
    torch.testing.assert_close(frames[-1], sample[0])
    # Each frame is one Euler step on from the one before (dx/dt = 0.5 - x in [-1, 1]), where the
    # frame before was not clipped to [0, 1] for showing.
    x, inside = 2 * frames[:-1] - 1, (frames[:-1] > 0) & (frames[:-1] < 1)
    want = ((x + 0.2 * (0.5 - x)) + 1).div(2).clamp(0, 1)
    assert int(inside.sum()) > 40
    torch.testing.assert_close(frames[1:][inside], want[inside])


def _after_base(g: torch.Generator) -> torch.Generator:
    """The generator after generate() has drawn its seed of the steps' noise (its first draw)."""
    torch.randint(0, 2**62, (), generator=g)
    return g
