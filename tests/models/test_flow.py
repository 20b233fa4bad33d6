"""Flow matching on real digits: straight paths, the velocity loss, Euler and Heun sampling."""

from __future__ import annotations

import pytest
import torch

from udlcli.data import load_dataset
from udlcli.errors import SpecError
from udlcli.models.flow import Flow, FlowConfig
from udlcli.rows import Rows

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


def test_logit_normal_times_stay_inside_the_path():
    model = Flow(FlowConfig(**TINY, time="logit-normal"), (1, 28, 28))
    torch.manual_seed(0)
    t = torch.sigmoid(Rows().randn((10_000,), "cpu"))
    assert 0 < float(t.min()) and float(t.max()) < 1 and abs(float(t.mean()) - 0.5) < 0.01
    assert model.time_sampling == "logit-normal"


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
