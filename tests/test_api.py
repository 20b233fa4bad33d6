"""The Python API: docs/api.md's example runs as written, and udlcli.load's outputs and errors."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import torch

import udlcli
from udlcli.errors import CheckpointError, DataError, SpecError

DOC = Path(__file__).parents[1] / "docs" / "api.md"


def test_docs_example_runs(tmp_path, monkeypatch, capsys):
    code = re.search(r"```python\n(.*?)```", DOC.read_text(), re.S).group(1)
    monkeypatch.chdir(tmp_path)
    exec(compile(code, str(DOC), "exec"), {})
    out = capsys.readouterr().out
    assert "ae (1, 28, 28) (8, 7) (16, 1, 28, 28)" in out
    assert (tmp_path / "runs/ae/api-example/weights/best.pt").is_file()


def test_load_matches_the_run(latent_runs):
    model = udlcli.load(latent_runs["ae"])
    assert (model.kind, model.shape) == ("ae", (1, 28, 28))
    torch.manual_seed(0)
    x = torch.rand(4, 1, 28, 28)
    net = model.module
    with torch.no_grad():
        assert torch.allclose(model.reconstruct(x), net.reconstruct(x).clamp(0, 1))
        assert torch.allclose(model.encode(x), net.encode(x))
    # uint8 and NumPy (B, H, W) images are the same images
    as_bytes = (x * 255).round().to(torch.uint8)
    assert torch.allclose(
        model.encode(as_bytes.numpy()[:, 0]), model.encode(as_bytes.float() / 255)
    )
    vae = udlcli.load(latent_runs["vae"])
    a, b = vae.sample(6, seed=1), vae.sample(6, seed=1)
    assert a.shape == (6, 1, 28, 28) and torch.equal(a, b) and 0 <= a.min() and a.max() <= 1


def test_load_errors_are_one_line(latent_runs, tmp_path):
    with pytest.raises(CheckpointError, match="no checkpoint|not a run|no such"):
        udlcli.load(tmp_path)
    model = udlcli.load(latent_runs["ae"])
    with pytest.raises(DataError, match=r"images of shape \(2, 3, 32, 32\): this ae run takes"):
        model.encode(np.zeros((2, 3, 32, 32), np.float32))
    with pytest.raises(SpecError, match="cannot classify images"):
        model.classify(torch.zeros(1, 1, 28, 28))
    with pytest.raises(SpecError, match="udlcli.train: give a RunSpec"):
        udlcli.train(42)


def test_the_other_engines_take_dicts(latent_runs, tmp_path):
    out = {"out": tmp_path / "runs"}
    g = udlcli.gan(
        {"data": {"dataset": "mnist-sample", "limit": 256}, "train": {"epochs": 1}}, **out
    )
    assert (g.run_dir / "weights" / "last.pt").is_file() and g.summary["epochs"] == 1
    assert udlcli.load(g.run_dir).sample(3).shape == (3, 1, 28, 28)
    f = udlcli.finetune(
        {"finetune": {"ae": str(latent_runs["ae"]), "baselines": False}, "train": {"epochs": 1}},
        **out,
    )
    assert 0 < f.summary["test_accuracy"] <= 1
    assert udlcli.load(f.run_dir).classify(torch.rand(2, 1, 28, 28)).shape == (2,)
    with pytest.raises(SpecError, match="give a spec as a dict or a YAML path"):
        udlcli.gan(42)


def test_denoise_trains_the_cli_spec_and_scores_it(tmp_path):
    """udlcli.denoise trains a DAE on the spec `udl denoise` resolves from the same values, then measures it."""
    import yaml

    from udlcli.tasks.denoise import run as engine

    given = {
        "model": {"sigma": 0.3, "channels": 4},
        "data": {"dataset": "mnist-sample", "limit": 300},
        "train": {"epochs": 1},
    }
    r = udlcli.denoise(given, out=tmp_path / "runs")
    assert r.run_dir.parent == tmp_path / "runs" / "denoise"
    assert r.train_summary["epochs"] == 1 and r.train_summary["dataset"]["train_size"] == 300
    flags = {"model.sigma": 0.3, "model.channels": 4, "data.dataset": "mnist-sample"}
    want = engine.denoise_spec(None, {**flags, "data.limit": 300, "train.epochs": 1}, None, None)
    written = yaml.safe_load((r.run_dir / "spec.yaml").read_text())
    assert written["model"] == want.model.model_dump(mode="json")
    # spec.yaml keeps the precision the run trained in: --precision auto keeps the small DAE in float32
    assert want.train.precision == "auto"
    assert written["train"] == {**want.train.model_dump(mode="json"), "precision": "32"}
    assert (written["model"]["name"], written["model"]["sigma"]) == ("dae", 0.3)
    for noise in ("gaussian", "saltpepper", "both"):
        row = r.table["rows"][noise]
        assert row["noisy"]["psnr"] > 0 and row["dae"]["psnr"] > 0 and 0 < row["dae"]["ssim"] <= 1
    assert udlcli.load(r.run_dir).kind == "dae"
    with pytest.raises(SpecError, match="model.sigma"):
        udlcli.denoise({"model": {"sigma": -1}}, out=tmp_path / "runs")
