"""The diffusion and flow samplers end to end, against data whose exact denoiser is known: Gaussian data.

For x0 ~ N(m, S) the best possible network is a closed form (Gaussian conditioning), so a module that
computes it is the reference here, not a mock: DDIM, ancestral sampling, Euler and Heun driven by it
must give back the data's mean and covariance. Then the trained path: a small MLP trained through
the families' own losses on 2-D Gaussian data, sampled by the same samplers.
"""

from __future__ import annotations

import math

import pytest
import torch

from udlcli.models.ddpm import DDPM, DDPMConfig
from udlcli.models.denoiser import CHUNK
from udlcli.models.flow import TIME_SCALE, Flow, FlowConfig

TINY = dict(width=8, blocks=1, attention=False)
MEAN = torch.tensor([0.2, -0.3, 0.1, 0.0], dtype=torch.float64)
# A full covariance (correlated, unequal variances), small enough that the data stays well inside
# [-1, 1] (DDPM clips its x0 estimates there): the largest standard deviation is about 0.27.
_L = torch.tensor(
    [[0.25, 0.0, 0.0, 0.0], [0.08, 0.15, 0.0, 0.0], [-0.05, 0.04, 0.2, 0.0], [0.0, 0.0, 0.06, 0.1]],
    dtype=torch.float64,
)
COV = _L @ _L.T
SHAPE = (1, 2, 2)  # four numbers an "image": (B, 1, 2, 2) flattens to (B, 4)


def _flat(x: torch.Tensor) -> torch.Tensor:
    return x.reshape(len(x), -1).double()


class Exact(torch.nn.Module):
    def __init__(self):
        super().__init__()
        # No weights to learn; one parameter says which device the sampler runs on.
        self.device_anchor = torch.nn.Parameter(torch.zeros(()))


class ExactDDPM(Exact):
    """E[eps | x_t] (or E[v | x_t]) for x0 ~ N(MEAN, COV): x_t ~ N(sqrt(a) m, a S + (1 - a) I), and
    E[x0 | x_t] = m + sqrt(a) S (a S + (1 - a) I)^-1 (x_t - sqrt(a) m)."""

    def __init__(self, abar: torch.Tensor, prediction: str):
        super().__init__()
        self.abar, self.prediction = abar.double(), prediction

    def forward(self, x, t, y=None):
        a = self.abar[t.long()[0]]  # every row of a sampling batch is at the same step
        xt = _flat(x)
        c = a * COV + (1 - a) * torch.eye(4, dtype=torch.float64)
        x0 = MEAN + (xt - a.sqrt() * MEAN) @ torch.linalg.solve(c, a.sqrt() * COV)
        eps = (xt - a.sqrt() * x0) / (1 - a).sqrt()
        out = eps if self.prediction == "eps" else a.sqrt() * eps - (1 - a).sqrt() * x0
        return out.float().reshape(x.shape)


class ExactFlow(Exact):
    """E[x1 - x0 | x_t] for x_t = (1 - t) x0 + t x1, x0 ~ N(0, I), x1 ~ N(m, S): with
    C = (1 - t)^2 I + t^2 S, v = m + (t S - (1 - t) I) C^-1 (x_t - t m) (finite at t = 1 too)."""

    def forward(self, x, t, y=None):
        s = float(t[0]) / TIME_SCALE  # every row of a sampling batch is at the same time
        eye = torch.eye(4, dtype=torch.float64)
        c = (1 - s) ** 2 * eye + s**2 * COV
        d = _flat(x) - s * MEAN
        v = MEAN + d @ torch.linalg.solve(c, s * COV - (1 - s) * eye).T
        return v.float().reshape(x.shape)


def _moments(samples: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and covariance in the models' [-1, 1] space (samples come back as (x + 1) / 2)."""
    z = 2 * _flat(samples) - 1
    return z.mean(0), torch.cov(z.T)


N = 4000
# n = 4,000 draws: the mean's standard error is at most 0.27 / sqrt(4000) = 0.0043 a coordinate, so
# 0.015 is 3.5 of them. A covariance entry's sampling error is about sqrt(2 / n) = 2.2% of the
# variances (0.014-0.063), and DDIM's 50 steps shrink them by up to 11% (measured at n = 20,000;
# 200 steps: 3%): 0.01 absolute, 16% of the largest variance, allows for both. Euler's 4 steps
# miss by 0.043, and a wrong target, inversion or posterior misses by far more.
MEAN_TOL, COV_TOL = 0.015, 0.01


def _check(samples: torch.Tensor, mean_tol=MEAN_TOL, cov_tol=COV_TOL) -> None:
    mean, cov = _moments(samples)
    assert (mean - MEAN).abs().max() < mean_tol, (mean, MEAN)
    assert (cov - COV).abs().max() < cov_tol, (cov, COV)


def _ddpm(prediction="eps", schedule="cosine", timesteps=1000) -> DDPM:
    model = DDPM(
        DDPMConfig(**TINY, timesteps=timesteps, schedule=schedule, prediction=prediction),
        (1, 28, 28),
    )
    model.shape, model.net = SHAPE, ExactDDPM(model.abar, prediction)
    return model.eval()


@pytest.mark.parametrize("prediction", ["eps", "v"])
def test_ddim_with_the_exact_denoiser_gives_back_the_data(prediction):
    _check(_ddpm(prediction).generate(N, torch.Generator().manual_seed(0), steps=50))


@pytest.mark.parametrize("schedule", ["cosine", "linear"])
def test_ancestral_sampling_with_the_exact_denoiser_gives_back_the_data(schedule):
    model = _ddpm("eps", schedule)
    _check(model.generate(N, torch.Generator().manual_seed(1), sampler="ancestral"))


@pytest.mark.parametrize("sampler, steps", [("euler", 100), ("heun", 20)])
def test_flow_with_the_exact_velocity_gives_back_the_data(sampler, steps):
    model = Flow(FlowConfig(**TINY), (1, 28, 28))
    model.shape, model.net = SHAPE, ExactFlow()
    _check(model.eval().generate(N, torch.Generator().manual_seed(2), steps=steps, sampler=sampler))


def test_few_euler_steps_are_measurably_off_and_heun_is_closer():
    """The tolerance above can tell a sampler from a wrong one: 4 Euler steps miss the covariance."""
    model = Flow(FlowConfig(**TINY), (1, 28, 28))
    model.shape, model.net = SHAPE, ExactFlow()
    g = lambda: torch.Generator().manual_seed(3)  # noqa: E731
    euler = (_moments(model.generate(N, g(), steps=4))[1] - COV).abs().max()
    heun = (_moments(model.generate(N, g(), steps=4, sampler="heun"))[1] - COV).abs().max()
    assert euler > COV_TOL and heun < euler / 2


def test_ancestral_noise_is_each_images_own():
    """The same seed gives the same images whatever n is (across a chunk boundary too)."""
    model = _ddpm("eps", timesteps=50)
    few = model.generate(3, torch.Generator().manual_seed(5), sampler="ancestral")
    many = model.generate(CHUNK + 2, torch.Generator().manual_seed(5), sampler="ancestral")
    torch.testing.assert_close(few, many[:3], atol=1e-3, rtol=0)  # batch-size rounding only
    assert not torch.allclose(many[0], many[1])  # and the images do not share their noise
    again = model.generate(CHUNK + 2, torch.Generator().manual_seed(5), sampler="ancestral")
    assert torch.equal(many, again)


# ---------------------------------------------------------------- the trained path


class TimeMLP(torch.nn.Module):
    """A small network of (x (B, 1, 1, 2), t (B,)) for 2-D data: what the U-Net is for images."""

    def __init__(self, scale: float):
        super().__init__()
        self.scale = scale
        self.net = torch.nn.Sequential(
            torch.nn.Linear(2 + 16, 128),
            torch.nn.SiLU(),
            torch.nn.Linear(128, 128),
            torch.nn.SiLU(),
            torch.nn.Linear(128, 2),
        )

    def forward(self, x, t, y=None):
        freqs = torch.arange(1, 9, dtype=torch.float32) * math.pi / 2
        s = (t.float() / self.scale).unsqueeze(1) * freqs  # (B, 8)
        h = torch.cat([x.reshape(len(x), 2), s.sin(), s.cos()], dim=1)
        return self.net(h).reshape(x.shape)


MEAN2 = torch.tensor([0.3, -0.2], dtype=torch.float64)
COV2 = torch.tensor([[0.04, 0.024], [0.024, 0.025]], dtype=torch.float64)


def _fit(model, steps=1500, batch=512) -> None:
    g = torch.Generator().manual_seed(0)
    chol = torch.linalg.cholesky(COV2).float()
    opt = torch.optim.Adam(model.net.parameters(), 3e-3)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    for _ in range(steps):
        z = MEAN2.float() + torch.randn(batch, 2, generator=g) @ chol.T  # data in [-1, 1]
        loss = model.loss(((z + 1) / 2).reshape(batch, 1, 1, 2), torch.zeros(batch))["loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()


def _check2(samples: torch.Tensor) -> None:
    z = 2 * _flat(samples) - 1
    # A trained network is close to the exact one, not equal: 0.04 on the mean (the data's std is
    # 0.16-0.2) and 25% of the covariance's largest entry.
    assert (z.mean(0) - MEAN2).abs().max() < 0.04, z.mean(0)
    assert (torch.cov(z.T) - COV2).abs().max() < 0.01, torch.cov(z.T)


@pytest.mark.parametrize("prediction", ["eps", "v"])
def test_a_ddpm_trained_on_2d_gaussian_data_samples_it(prediction):
    torch.manual_seed(0)
    model = DDPM(DDPMConfig(**TINY, timesteps=200, prediction=prediction), (1, 28, 28))
    model.shape, model.net = (1, 1, 2), TimeMLP(200.0)
    _fit(model)
    _check2(model.eval().generate(N, torch.Generator().manual_seed(0), steps=50))


def test_a_flow_trained_on_2d_gaussian_data_samples_it():
    torch.manual_seed(0)
    model = Flow(FlowConfig(**TINY), (1, 28, 28))
    model.shape, model.net = (1, 1, 2), TimeMLP(TIME_SCALE)
    _fit(model)
    _check2(model.eval().generate(N, torch.Generator().manual_seed(0), steps=50))


# ---------------------------------------------------------------- settings that would be ignored


@pytest.mark.parametrize("kind", ["ddpm", "flow"])
def test_p_uncond_without_conditional_is_one_warning(runner, kind):
    from udlcli.cli.app import app

    r = runner.invoke(app, ["train", kind, "--set", "model.p_uncond=0.3", "--print-spec"])
    assert r.exit_code == 0, r.output
    warned = [ln for ln in r.output.splitlines() if ln.startswith("warning:")]
    assert (
        len(warned) == 1 and "model.p_uncond=0.3 has no effect without --conditional" in warned[0]
    )
    quiet = runner.invoke(
        app, ["train", kind, "--conditional", "--set", "model.p_uncond=0.3", "--print-spec"]
    )
    assert quiet.exit_code == 0 and "warning:" not in quiet.output
    plain = runner.invoke(app, ["train", kind, "--print-spec"])  # the default p_uncond: no word
    assert plain.exit_code == 0 and "warning:" not in plain.output


@pytest.mark.parametrize("kind", ["ddpm", "flow"])
def test_the_registry_builds_the_family_for_the_datas_shape(kind):
    from udlcli.config import DataConfig
    from udlcli.models import get

    family = get(kind)
    model = family.build(family.config(**TINY), DataConfig(dataset="mnist", shape=(3, 32, 32)))
    assert isinstance(model, family.model) and model.shape == (3, 32, 32)
    assert model.generate(1, torch.Generator().manual_seed(0), steps=1).shape == (1, 3, 32, 32)


# ---------------------------------------------------------------- classes, guidance, chunks


def test_labels_keep_every_class_and_only_out_of_range_ones_are_clamped():
    model = Flow(FlowConfig(**TINY, conditional=True, classes=10, p_uncond=0.0), (1, 28, 28))
    from udlcli.rows import Rows

    y = torch.tensor([-1, 0, 3, 9, 12])
    assert model.labels(y, Rows()).tolist() == [0, 0, 3, 9, 9]  # 10 is "no class": never a label
    everything = Flow(FlowConfig(**TINY, conditional=True, classes=10, p_uncond=1.0), (1, 28, 28))
    assert everything.labels(y, Rows()).tolist() == [10] * 5
    assert Flow(FlowConfig(**TINY), (1, 28, 28)).net.label is None  # unconditional: no embedding
    assert Flow(FlowConfig(**TINY, conditional=True), (1, 28, 28)).net.label.num_embeddings == 2


def test_the_class_and_guidance_bounds():
    """Classes 0..C-1 (C is "no class"), guidance 0 (unconditioned) to 50; either end is allowed."""
    from udlcli.errors import SpecError

    model = Flow(FlowConfig(**TINY, conditional=True, classes=10), (1, 4, 4)).eval()
    for k in (0, 9):
        model.check_options(k, 1.0)
    for g in (0.0, 50.0):
        model.check_options(3, g)
    for k in (-1, 10):
        with pytest.raises(SpecError, match=f"--class {k}: this model knows classes 0..9"):
            model.check_options(k, 1.0)
    for g in (-0.5, 50.5):
        with pytest.raises(SpecError, match=f"--guidance {g}: give a scale between 0 and 50"):
            model.check_options(3, g)


def test_guidance_two_mixes_and_a_batch_across_chunks_has_n_images():
    torch.manual_seed(0)
    model = Flow(FlowConfig(**TINY, conditional=True, classes=10), (1, 28, 28)).eval()
    with torch.no_grad():  # the U-Net starts with zero outputs: give it some, so classes differ
        for p in model.net.parameters():
            if not p.abs().sum():
                p.normal_(std=0.1)
    x, t = torch.randn(2, 1, 28, 28), torch.full((2,), 300.0)
    with torch.no_grad():
        c, u = model.net(x, t, torch.full((2,), 4)), model.net(x, t, torch.full((2,), 10))
        assert (c - u).abs().max() > 1e-3  # else any mix would pass
        torch.testing.assert_close(model.guided(x, t, 4, 2.0), u + 2.0 * (c - u))
        torch.testing.assert_close(model.guided(x, t, 4, 0.0), u)
    flat = Flow(FlowConfig(**TINY), (1, 2, 2))
    flat.net = ExactFlow()
    flat.shape = SHAPE
    assert flat.generate(CHUNK + 3, torch.Generator().manual_seed(0), steps=1).shape == (
        CHUNK + 3,
        *SHAPE,
    )
    path = flat.trajectory(torch.Generator().manual_seed(0), steps=20)  # 8 frames of 21 states
    assert path.shape == (8, *SHAPE)
    torch.testing.assert_close(
        path[-1], flat.generate(1, torch.Generator().manual_seed(0), steps=20)[0]
    )
