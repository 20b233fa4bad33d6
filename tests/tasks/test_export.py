"""`udl export`: safetensors and ONNX exports of real runs, loaded back, checked against torch, and the refusals."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch

import udlcli
from udlcli.cli.app import app
from udlcli.tasks.export import export

ort = pytest.importorskip("onnxruntime")


@pytest.fixture()
def ae_run(latent_runs, tmp_path):
    run = tmp_path / "runs" / "ae" / "ae"
    shutil.copytree(latent_runs["ae"], run)
    return run


def test_safetensors_export_loads_back_the_same_model(runner, ae_run):
    r = runner.invoke(app, ["export", str(ae_run)])
    assert r.exit_code == 0, r.output
    out = ae_run / "export" / "safetensors"
    assert sorted(p.name for p in out.iterdir()) == [
        "README.md",
        "config.json",
        "model.safetensors",
    ]
    config = json.loads((out / "config.json").read_text())
    assert (config["kind"], config["shape"]) == ("ae", [1, 28, 28])
    assert config["spec"]["model"]["name"] == "ae"
    card = (out / "README.md").read_text()
    summary = json.loads((ae_run / "summary.json").read_text())
    assert f"| test_mse | {summary['test_mse']:.6g} |" in card
    import yaml

    command = yaml.safe_load((ae_run / "spec.yaml").read_text())["meta"]["command"]
    assert command in card and "mnist-sample" in card
    exported, original = udlcli.load(out), udlcli.load(ae_run)
    x = torch.rand(5, 1, 28, 28)
    assert torch.equal(exported.reconstruct(x), original.reconstruct(x))
    assert torch.equal(exported.encode(x), original.encode(x))


def test_onnx_graphs_match_torch(ae_run, latent_runs):
    result = export(ae_run, "onnx")
    assert {p.name for p in result.files} >= {"encoder.onnx", "decoder.onnx", "model.safetensors"}
    model = udlcli.load(ae_run)
    x = torch.rand(7, 1, 28, 28)  # another batch size than the export's example
    enc = ort.InferenceSession(str(result.out / "encoder.onnx"))
    dec = ort.InferenceSession(str(result.out / "decoder.onnx"))
    z = enc.run(None, {"input": x.numpy()})[0]
    np.testing.assert_allclose(z, model.encode(x).numpy(), atol=1e-4)
    x_hat = dec.run(None, {"input": z})[0]
    np.testing.assert_allclose(x_hat, model.decode(torch.from_numpy(z)).numpy(), atol=1e-4)
    assert max(result.checked.values()) <= 1e-4
    # The VAE too: its encoder graph gives the posterior mean.
    vae = export(latent_runs["vae"], "onnx", out=ae_run.parent / "vae-onnx")
    mu = ort.InferenceSession(str(vae.out / "encoder.onnx")).run(None, {"input": x.numpy()})[0]
    np.testing.assert_allclose(mu, udlcli.load(latent_runs["vae"]).encode(x).numpy(), atol=1e-4)


def test_gan_generator_exports_images(runner, tmp_path):
    r = runner.invoke(
        app,
        [
            "gan",
            "--dataset",
            "mnist-sample",
            "--limit",
            "256",
            "--epochs",
            "1",
            "-q",
            "--out",
            str(tmp_path),
        ],
    )
    assert r.exit_code == 0, r.output
    result = export(tmp_path / "gan" / "gan", "onnx")
    gan = udlcli.load(tmp_path / "gan" / "gan")
    z = torch.randn(6, gan.spec.model.noise_dim, generator=torch.Generator().manual_seed(0))
    images = ort.InferenceSession(str(result.out / "generator.onnx")).run(
        None, {"input": z.numpy()}
    )[0]
    assert images.shape == (6, 1, 28, 28) and images.min() >= 0 and images.max() <= 1
    # udlcli.load of the export samples exactly as the run does
    assert torch.equal(udlcli.load(result.out).sample(4, seed=3), gan.sample(4, seed=3))


def test_export_refusals_are_one_line_and_write_nothing(runner, ae_run, tmp_path, monkeypatch):
    from conftest import one_error_line

    bare = tmp_path / "runs" / "ae" / "bare"  # a run folder without weights
    (bare / "weights").mkdir(parents=True)
    r = runner.invoke(app, ["export", str(bare)])
    assert r.exit_code != 0 and "no checkpoint" in one_error_line(r).lower()
    assert not (bare / "export").exists()
    r = runner.invoke(app, ["export", str(ae_run), "--format", "pickle"])
    assert "--format 'pickle': choose safetensors or onnx" in one_error_line(r)

    def broken(*args, **kwargs):
        raise RuntimeError("Unsupported operator aten::fancy")

    monkeypatch.setattr(torch.onnx, "export", broken)
    r = runner.invoke(app, ["export", str(ae_run), "--format", "onnx"])
    assert (
        "torch.onnx could not export encoder (Unsupported operator aten::fancy)"
        in one_error_line(r)
    )
    assert not (ae_run / "export").exists() or not any((ae_run / "export").iterdir())
    monkeypatch.undo()
    assert runner.invoke(app, ["export", str(ae_run)]).exit_code == 0
    r = runner.invoke(app, ["export", str(ae_run)])
    assert "already holds files" in one_error_line(r)


def test_load_refuses_what_is_not_a_run_or_export(tmp_path):
    from udlcli.errors import CheckpointError

    (tmp_path / "config.json").write_text('{"format": "something-else"}')
    with pytest.raises(CheckpointError, match="is not a udl export"):
        udlcli.load(tmp_path)
