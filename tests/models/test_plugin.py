"""A model family defined here, in the test, registered at run time: every command takes it, with no change under udlcli/.

The toy family is a linear autoencoder (images -> d codes -> images) with one feature layer. It is
what a plug-in package adds through the `udlcli.families` entry point: a config, a model that
follows the contracts, and one `register(Family(...))`.
"""

from __future__ import annotations

import json
import math
from typing import Literal

import pytest
import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn

from udlcli.cli.app import app
from udlcli.config import Strict
from udlcli.core.contracts import Graph
from udlcli.models import Family, register, unregister
from udlcli.rows import LOCAL, Rows


class ToyConfig(Strict):
    name: Literal["toy"] = "toy"
    latent_dim: int = Field(6, ge=1, le=256)


class LinearAE(nn.Module):
    """x (B, C, H, W) -> flatten -> Linear -> z (B, d) -> Linear -> sigmoid -> x~."""

    def __init__(self, latent_dim: int, shape: tuple[int, int, int]):
        super().__init__()
        self.shape, n = tuple(shape), math.prod(shape)
        self.enc, self.dec = nn.Linear(n, latent_dim), nn.Linear(latent_dim, n)

    def encode(self, x):
        return self.enc(x.flatten(1))

    def decode(self, z):
        return torch.sigmoid(self.dec(z)).view(-1, *self.shape)

    def reconstruct(self, x):
        return self.decode(self.encode(x))

    def loss(self, x, y, rows: Rows = LOCAL):
        return {"loss": F.mse_loss(self.reconstruct(x), x)}

    def feature_layers(self):
        return {"code": self.enc.out_features}

    def feature_extractor(self, layer=None):
        return nn.Sequential(nn.Flatten(), self.enc)

    def graphs(self):
        x = torch.rand(2, *self.shape)
        return {"encoder": Graph.of(self, "encode", "images -> codes", input=x)}


def build(cfg: ToyConfig, data) -> LinearAE:
    return LinearAE(cfg.latent_dim, tuple(getattr(data, "shape", None) or (1, 28, 28)))


@pytest.fixture
def toy():
    family = register(
        Family(
            name="toy",
            config=ToyConfig,
            build=build,
            model=LinearAE,
            description="a linear autoencoder defined in a test",
            train_defaults={"lr": 1e-2, "batch_size": 64, "epochs": 2},
        )
    )
    yield family
    unregister("toy")


def test_a_family_defined_in_a_test_goes_through_every_command(toy, runner, tmp_path):
    import udlcli

    out = tmp_path / "runs"
    quick = ["--dataset", "mnist-sample", "--limit", "256", "--out", str(out), "-q"]

    def ok(*args):
        r = runner.invoke(app, list(args))
        assert r.exit_code == 0, (args, r.output)
        return r

    ok("train", "toy", *quick, "--epochs", "1")
    run = out / "toy" / "toy"
    ok("train", "--resume", str(run), "--epochs", "2", "-q")
    s = json.loads((run / "summary.json").read_text())
    assert (s["model"], s["status"], s["epochs"]) == ("toy", "finished", 2) and s["test_mse"] < 0.2
    assert (
        run / "figures" / "reconstructions.png"
    ).is_file()  # it reconstructs: udl train draws it

    listed = json.loads(ok("runs", "--json", "--root", str(out)).output)
    assert [r["status"] for r in listed if r["name"] == "toy"] == ["finished"]

    model = udlcli.load(run)
    assert model.kind == "toy" and model.encode(torch.rand(3, 1, 28, 28)).shape == (3, 6)

    ok("embed", str(run), "--method", "pca", "--n", "300", "-q")
    assert json.loads((run / "embed" / "pca_n300.json").read_text())["features"] == "code"

    ok("finetune", str(run), "--epochs", "3", "--no-baselines", "--out", str(out), "-q")
    clf = json.loads((out / "finetune" / "finetune" / "summary.json").read_text())
    assert clf["test_accuracy"] > 0.2  # a head on the toy's 6 codes (205 digits): twice chance

    ok("export", str(run), "--format", "onnx")
    assert (run / "export" / "onnx" / "encoder.onnx").is_file()
    assert udlcli.load(run / "export" / "onnx").kind == "toy"

    # What it cannot do is one line naming what it lacks.
    r = runner.invoke(app, ["sample", "toy", str(run)])
    assert r.exit_code != 0 and "cannot generate images (it has no generate())" in r.output


def test_a_plugin_is_gone_when_unregistered(runner, tmp_path):
    r = runner.invoke(app, ["train", "toy", "--out", str(tmp_path)])
    assert r.exit_code == 2 and "unknown model 'toy'" in r.output


def test_a_plugin_that_fails_to_import_is_one_warning_and_the_rest_works(tmp_path):
    """An installed plug-in whose module raises on import: every command still runs, with one
    warning that names its entry point (before: a 19-frame traceback on every command)."""
    import os
    import subprocess
    import sys

    site = tmp_path / "site"
    dist = site / "broken_udl_plugin-0.1.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: broken-udl-plugin\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[udlcli.families]\nbroken = broken_udl_plugin\n")
    (site / "broken_udl_plugin.py").write_text(
        "raise ImportError('needs a package that is gone')\n"
    )
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")]),
    }
    r = subprocess.run(
        [sys.executable, "-m", "udlcli", "train", "ae", "--print-spec"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    out = r.stdout + r.stderr
    assert r.returncode == 0, out
    assert "Traceback" not in out and "model: {" in out  # the AE's spec, as without the plug-in
    warned = [ln for ln in out.splitlines() if "warning:" in ln]
    assert len(warned) == 1, out
    assert "'broken' (entry point broken_udl_plugin)" in warned[0]
    assert "ImportError: needs a package that is gone" in warned[0]
