"""SimCLR on real digits: NT-Xent as written by hand, a falling loss, the kNN monitor and the views figure."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F

import udlcli
from udlcli.cli.app import app
from udlcli.config import DataConfig
from udlcli.core.spec import resolve_spec
from udlcli.data import load_dataset
from udlcli.models.simclr import SimCLR, SimCLRConfig
from udlcli.tasks.train import RunOptions, train

TINY = dict(channels=8, proj_hidden=32, proj_dim=16)


@pytest.fixture(scope="module")
def digits():
    d = load_dataset("mnist-sample", limit=256)
    return d.train.images(torch.arange(128)), d.train.y[:128]


def test_nt_xent_is_the_papers(digits):
    x, y = digits
    torch.manual_seed(0)
    model = SimCLR(SimCLRConfig(**TINY, temperature=0.5), DataConfig(dataset="mnist"))
    torch.manual_seed(1)
    got = model.loss(x[:16], y[:16])["loss"]
    torch.manual_seed(1)
    v1, v2 = model.views(x[:16])
    z = F.normalize(model.projector(model.backbone(torch.cat([v1, v2]))), dim=1)  # (32, p)
    sim = z @ z.T / 0.5
    sim.fill_diagonal_(float("-inf"))
    target = torch.cat([torch.arange(16, 32), torch.arange(16)])
    torch.testing.assert_close(got, F.cross_entropy(sim, target))


def test_a_run_learns_and_monitors_knn(tmp_path):
    flags = {
        "data.dataset": "mnist-sample",
        "data.limit": 512,
        "train.epochs": 3,
        "train.batch_size": 64,
        "train.device": "cpu",
        **{f"model.{k}": v for k, v in TINY.items()},
    }
    r = train(resolve_spec("simclr", flags=flags), RunOptions(out=tmp_path))
    h = r.history
    assert h[-1]["train_loss"] < h[0]["train_loss"] and 0 <= h[-1]["knn_acc"] <= 1
    s = json.loads((r.run_dir / "summary.json").read_text())
    assert s["test_knn_acc"] > 0.5  # 512 digits, 3 epochs: far above chance
    assert s["key_metric"]["name"] == "test kNN accuracy"
    assert (r.run_dir / "figures" / "views.png").is_file()
    assert "knn_acc" in (r.run_dir / "metrics.csv").read_text().splitlines()[0]


def test_the_run_encodes_probes_and_exports(tmp_path, runner):
    flags = {
        "data.dataset": "mnist-sample",
        "data.limit": 300,
        "train.epochs": 1,
        "train.batch_size": 64,
        "train.device": "cpu",
        **{f"model.{k}": v for k, v in TINY.items()},
    }
    r = train(resolve_spec("simclr", flags=flags), RunOptions(out=tmp_path))
    model = udlcli.load(r.run_dir)
    x = load_dataset("mnist-sample", limit=300).test.images(torch.arange(5))
    z, p = model.encode(x), model.encode(x, "projection")
    assert z.shape == (5, model.module.backbone.dim) and p.shape == (5, 16)
    torch.testing.assert_close(z, model.module.backbone(x))
    probed = runner.invoke(app, ["probe", str(r.run_dir), "--k", "10", "-q"])
    assert probed.exit_code == 0, probed.output
    assert json.loads((r.run_dir / "probe.json").read_text())["features"] == "backbone"
    exported = runner.invoke(app, ["export", str(r.run_dir), "-q"])
    assert exported.exit_code == 0, exported.output
    again = udlcli.load(r.run_dir / "export" / "safetensors")
    torch.testing.assert_close(again.encode(x), z)


def test_embed_finetune_and_tune_take_a_simclr_run(tmp_path, runner):
    """The rest of udl takes the run: embed maps its backbone, finetune trains a head frozen and
    unfrozen, and tune searches its temperature, learning rate and augmentation strength."""
    flags = {
        "data.dataset": "mnist-sample",
        "data.limit": 300,
        "train.epochs": 2,
        "train.batch_size": 64,
        "train.device": "cpu",
        **{f"model.{k}": v for k, v in TINY.items()},
    }
    run = train(resolve_spec("simclr", flags=flags), RunOptions(out=tmp_path)).run_dir

    def ok(*args):
        r = runner.invoke(app, [*args, "-q"])
        assert r.exit_code == 0, r.output

    ok("embed", str(run), "--method", "pca", "--n", "300")
    assert json.loads((run / "embed" / "pca_n300.json").read_text())["features"] == "backbone"
    for name, more in (("frozen", []), ("unfrozen", ["--unfreeze"])):
        ok("finetune", str(run), "--epochs", "2", "--limit", "300", "--no-baselines", *more,
           "--name", name, "--out", str(tmp_path))  # fmt: skip
        s = json.loads((tmp_path / "finetune" / name / "summary.json").read_text())
        assert s["test_accuracy"] > 0.2, (name, s["test_accuracy"])  # ten digits: twice chance
    ok("tune", "simclr", "--trials", "2", "--max-epochs", "1", "--dataset", "mnist-sample",
       "--limit", "300", "--batch-size", "64", "--out", str(tmp_path), "--name", "ssl-study",
       *[a for k, v in TINY.items() for a in ("--set", f"model.{k}={v}")])  # fmt: skip
    trials = (tmp_path / "tune" / "ssl-study" / "trials.csv").read_text()
    assert "temperature" in trials and "strength" in trials
    import yaml

    best = yaml.safe_load((tmp_path / "tune" / "ssl-study" / "best.yaml").read_text())
    # The searched strength lands in the model's augment section, the temperature beside it.
    assert 0.5 <= best["model"]["augment"]["strength"] <= 1.5
    assert best["model"]["augment"]["strength"] != 1.0 and 0.1 <= best["model"]["temperature"] <= 1
