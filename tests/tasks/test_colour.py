"""Every command on real colour images: seeded 32x32 and 64x64 patches of scikit-image's photographs.

The patches (tests/photos.py) are written as a folder: dataset and in CIFAR-10's and SVHN's layouts,
so the readers, the models sized from the shape, the colour figures and the one-line errors of
images of another shape are all exercised offline. Each run is tiny (a few hundred images, 1-2 epochs).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
import yaml
from conftest import REPO, one_error_line
from photos import patches, write_cifar, write_folder, write_svhn
from PIL import Image

from udlcli.cli.app import app

TINY = ["--epochs", "1", "--channels", "4", "-q", "--device", "cpu"]


def _colour(png) -> bool:
    """A PNG is in colour: RGB and its channels differ somewhere."""
    a = np.asarray(Image.open(png).convert("RGB"), np.int16)
    return bool((np.abs(a - a[..., :1]) > 2).any())


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("photos")
    x32, y32, classes = patches(32, 36, seed=0)  # 324 patches, 9 classes
    x64, y64, _ = patches(64, 12, seed=1)
    n_test = 108
    data = root / "data"
    write_cifar(data, x32[n_test:], y32[n_test:], x32[:n_test], y32[:n_test], classes)
    write_svhn(data, x32[n_test:], y32[n_test:], x32[:n_test], y32[:n_test])
    return {
        "p32": write_folder(root / "p32", x32, y32, classes),
        "p64": write_folder(root / "p64", x64, y64, classes),
        "data": data,
        "x32": x32,
    }


@pytest.fixture(scope="module")
def colour_runs(photos, tmp_path_factory) -> dict:
    """An AE, a VAE and a DAE on the 32x32 patches, trained once for the commands that read them."""
    from typer.testing import CliRunner

    out = tmp_path_factory.mktemp("colour_runs")
    d = ["--dataset", f"folder:{photos['p32']}", "--out", str(out), *TINY]
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("XDG_CACHE_HOME", str(out / "cache"))
        for args in (["train", "ae", "--epochs", "2"], ["train", "vae"], ["denoise"]):
            r = CliRunner().invoke(app, [*args, *d])
            assert r.exit_code == 0, r.output
    return {
        "out": out,
        "photos_data": photos["data"],
        "ae": out / "ae" / "ae",
        "vae": out / "vae" / "vae",
        "dae": out / "denoise" / "dae",
    }


def test_a_colour_folder_trains_an_ae_at_its_own_shape(colour_runs):
    run = colour_runs["ae"]
    spec = yaml.safe_load((run / "spec.yaml").read_text())
    assert spec["data"]["shape"] == [3, 32, 32]
    assert len(spec["data"]["mean"]) == 3 and len(set(spec["data"]["mean"])) == 3  # per channel
    assert any("colour images found" in n for n in spec["meta"]["dataset"]["notes"])
    sd = torch.load(run / "weights" / "last.pt", weights_only=True)["model"]
    first = next(v for k, v in sd.items() if k.endswith("weight") and v.ndim == 4)
    assert first.shape[1] == 3  # the encoder's first conv reads three channels
    figs = sorted((run / "figures").glob("*.png"))
    assert figs and any(_colour(f) for f in figs)


def test_a_64_pixel_folder_and_image_size_48(photos, runner, runs):
    for size, extra in ((64, []), (48, ["--image-size", "48"])):
        r = runner.invoke(
            app,
            ["train", "ae", "--dataset", f"folder:{photos['p64']}", *extra, "--out", str(runs)]
            + ["--name", f"s{size}", *TINY],
        )
        assert r.exit_code == 0, r.output
        spec = yaml.safe_load((runs / "ae" / f"s{size}" / "spec.yaml").read_text())
        assert spec["data"]["shape"] == [3, size, size]


def test_color_gray_converts_a_colour_folder(photos, runner, runs):
    r = runner.invoke(
        app,
        ["train", "ae", "--dataset", f"folder:{photos['p32']}", "--color", "gray"]
        + ["--out", str(runs), *TINY],
    )
    assert r.exit_code == 0, r.output
    assert "converted to gray" in r.output
    assert yaml.safe_load((runs / "ae" / "ae" / "spec.yaml").read_text())["data"]["shape"] == [
        1,
        32,
        32,
    ]


def test_cifar_and_svhn_layouts_train(photos, runner, runs):
    for name in ("cifar10", "svhn"):
        r = runner.invoke(
            app,
            ["train", "ae", "--dataset", name, "--data-dir", str(photos["data"])]
            + ["--out", str(runs), "--name", name, *TINY],
        )
        assert r.exit_code == 0, r.output
        ds = yaml.safe_load((runs / "ae" / name / "spec.yaml").read_text())["meta"]["dataset"]
        assert ds["shape"] == [3, 32, 32] and ds["train_size"] == 216 and ds["test_size"] == 108


def test_sample_vae_grid_and_embed_tsne_on_the_colour_run(colour_runs, runner):
    r = runner.invoke(
        app, ["sample", "vae", str(colour_runs["vae"]), "--grid", "--size", "5", "-q"]
    )
    assert r.exit_code == 0, r.output
    grids = list(colour_runs["vae"].rglob("*grid*.png"))
    assert grids and _colour(grids[0])
    r = runner.invoke(app, ["sample", "ae", str(colour_runs["ae"]), "--n", "16", "-q"])
    assert r.exit_code == 0, r.output
    r = runner.invoke(
        app,
        ["embed", str(colour_runs["ae"]), "--method", "tsne", "--n", "40", "-q", "--device", "cpu"],
    )
    assert r.exit_code == 0, r.output
    assert list(colour_runs["ae"].rglob("*tsne*"))


def test_finetune_on_the_colour_encoder(colour_runs, runner, runs):
    r = runner.invoke(
        app,
        ["finetune", str(colour_runs["ae"]), "--epochs", "2", "--out", str(runs), "-q"]
        + ["--device", "cpu", "--no-baselines"],
    )
    assert r.exit_code == 0, r.output
    scores = json.loads((runs / "finetune" / "finetune" / "summary.json").read_text())
    assert scores["test_accuracy"] > 1 / 9  # nine photographs: better than chance after 2 epochs


def test_denoise_input_resizes_images_of_another_size_and_says_so(colour_runs, runner, tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    rng = np.random.default_rng(0)
    for i in range(2):
        Image.fromarray(rng.integers(0, 255, (40, 40, 3), dtype=np.uint8)).save(src / f"{i}.png")
    out = tmp_path / "clean"
    r = runner.invoke(
        app,
        ["denoise", "--input", str(src), "--run", str(colour_runs["dae"]), "--out", str(out)]
        + ["-q", "--device", "cpu"],
    )
    assert r.exit_code == 0, r.output
    assert "resized" in r.output and "32x32" in r.output
    cleaned = sorted(out.rglob("*.png"))
    assert cleaned and Image.open(cleaned[0]).mode == "RGB"


@pytest.mark.parametrize("arch,folder", [("mlp", "p32"), ("dcgan", "p32"), ("dcgan", "p64")])
def test_gan_both_archs_in_colour(photos, runner, runs, arch, folder):
    r = runner.invoke(
        app,
        ["gan", "--arch", arch, "--dataset", f"folder:{photos[folder]}", "--epochs", "1"]
        + ["--batch-size", "32", "--out", str(runs), "-q", "--device", "cpu"],
    )
    assert r.exit_code == 0, r.output
    run = runs / "gan" / "gan"
    assert any(_colour(f) for f in (run / "figures").glob("*.png"))
    assert list(run.rglob("*.gif"))


def test_evaluate_trains_a_feature_network_for_the_colour_data(colour_runs, runner, tmp_path):
    r = runner.invoke(
        app,
        ["evaluate", str(colour_runs["ae"]), str(colour_runs["vae"]), "--n", "40", "-q"]
        + ["--device", "cpu"],
        env={"XDG_CACHE_HOME": str(tmp_path / "cache")},
    )
    assert r.exit_code == 0, r.output
    ev = json.loads((colour_runs["vae"] / "evaluation.json").read_text())
    assert np.isfinite(ev["fid"]) and ev["n"] == 40
    assert list((tmp_path / "cache").rglob("featurenet.json"))  # trained for this data, cached


def test_tune_ae_on_cifar_layout(photos, runner, runs):
    r = runner.invoke(
        app,
        ["tune", "ae", "--dataset", "cifar10", "--data-dir", str(photos["data"]), "--trials", "2"]
        + ["--max-epochs", "1", "--out", str(runs), "-q", "--device", "cpu"],
    )
    assert r.exit_code == 0, r.output
    best = yaml.safe_load((runs / "tune" / "ae-study" / "best.yaml").read_text())
    assert best["data"]["dataset"] == "cifar10" and best["data"]["shape"] == [3, 32, 32]
    # The same study at another size would mix MSEs of different images: refused, nothing added.
    r = runner.invoke(
        app,
        ["tune", "ae", "--dataset", "cifar10", "--data-dir", str(photos["data"]), "--trials", "3"]
        + ["--image-size", "48", "--max-epochs", "1", "--out", str(runs), "-q", "--device", "cpu"],
    )
    assert r.exit_code != 0 and "was made with data" in one_error_line(r)
    assert "image_size" in one_error_line(r)


# slow: the colour folder and CIFAR reader tests run in CI; this runs the whole study file
@pytest.mark.slow
def test_reproduce_the_cifar10_study_tiny(photos, runner, tmp_path):
    d = yaml.safe_load((REPO / "examples" / "cifar10.yaml").read_text())
    tiny = {"spec": {"data": {"limit": 100}, "train": {"epochs": 1}}}
    d["profiles"]["tiny"] = {
        "tune_ae": {"trials": 2, "max_epochs": 1, "spec": {"data": {"limit": 100}}},
        "train_ae": tiny,
        "embed_pca": {"n": 50},
        "embed_tsne": {"n": 50},
        "tune_finetune": {"trials": 2, "max_epochs": 1},
        "finetune": tiny,
        "finetune_unfrozen": tiny,
        "denoise": tiny,
        "train_vae": tiny,
        "gan": {"spec": {"data": {"limit": 100}, "train": {"epochs": 1, "batch_size": 32}}},
        "evaluate": {"n": 100},
    }
    d["profiles"]["tiny"] = {k: v for k, v in d["profiles"]["tiny"].items() if k in d["steps"]}
    study = tmp_path / "study.yaml"
    study.write_text(yaml.safe_dump(d, sort_keys=False))
    r = runner.invoke(
        app,
        ["reproduce", str(study), "--profile", "tiny", "--data-dir", str(photos["data"])]
        + ["--out", str(tmp_path / "runs"), "-q", "--device", "cpu"],
        env={"XDG_CACHE_HOME": str(tmp_path / "cache")},
    )
    assert r.exit_code == 0, r.output
    report = next((tmp_path / "runs" / "report").iterdir())
    assert (report / "report.html").is_file()
    assert (report / "steps" / "vae" / "train_vae" / "samples" / "vae_grid.png").is_file()


# ---------------------------------------------------------------- bad input: one line, nothing written


@pytest.mark.parametrize("size", ["20", "65"])
def test_image_size_out_of_range(photos, runner, runs, size):
    r = runner.invoke(
        app,
        ["train", "ae", "--dataset", f"folder:{photos['p32']}", "--image-size", size]
        + ["--out", str(runs), *TINY],
    )
    assert r.exit_code != 0
    assert "28" in one_error_line(r) and "64" in one_error_line(r)
    assert not runs.exists()


def test_dcgan_refuses_a_size_it_has_no_network_for(photos, runner, runs):
    r = runner.invoke(
        app,
        ["gan", "--arch", "dcgan", "--dataset", f"folder:{photos['p32']}", "--image-size", "48"]
        + ["--out", str(runs), "-q", "--device", "cpu"],
    )
    assert r.exit_code != 0
    line = one_error_line(r)
    assert "dcgan" in line and "48" in line
    assert not (runs / "gan").exists()


def _legacy_copy(run, dest):
    """A copy of a run as udl wrote it before shapes were recorded: no data.shape in its checkpoints."""
    import shutil

    from udlcli.core.checkpoint import load_checkpoint, save_checkpoint

    shutil.copytree(run, dest)
    for ck in (dest / "weights").glob("*.pt"):
        payload = load_checkpoint(ck)
        payload["spec"]["data"].pop("shape", None)
        save_checkpoint(ck, payload)
    return dest


def test_finetune_refuses_data_of_another_shape(colour_runs, runner, runs, latent_runs, tmp_path):
    # A gray MNIST run asked for rgb; the 32x32 colour AE given MNIST; an AE from before shapes were
    # recorded (MNIST-shaped) given CIFAR-10's layout.
    legacy = _legacy_copy(latent_runs["ae"], tmp_path / "legacy_ae")
    cases = [
        ([str(latent_runs["ae"]), "--color", "rgb"], "images are 1x28x28", "gives 3x28x28"),
        (
            [str(colour_runs["ae"]), "--dataset", "mnist-sample"],
            "images are 3x32x32",
            "gives 1x28x28",
        ),
        (
            [str(legacy), "--dataset", "cifar10", "--data-dir", str(colour_runs["photos_data"])],
            "images are 1x28x28",
            "gives 3x32x32",
        ),
    ]
    for args, ran, gives in cases:
        r = runner.invoke(
            app, ["finetune", *args, "--out", str(runs), "--epochs", "1", "-q", "--device", "cpu"]
        )
        assert r.exit_code != 0
        line = one_error_line(r)
        assert ran in line and gives in line, line
    assert not (runs / "finetune").exists()


def test_a_folder_of_non_images(runner, runs, tmp_path):
    bad = tmp_path / "notes"
    bad.mkdir()
    (bad / "a.png").write_text("not a picture")
    (bad / "b.png").write_text("nor this")
    r = runner.invoke(app, ["train", "ae", "--dataset", f"folder:{bad}", "--out", str(runs), *TINY])
    assert r.exit_code != 0
    assert "not a readable image" in one_error_line(r)
    assert not runs.exists()


@pytest.mark.parametrize("layout", ["unlabelled", "one class"])
def test_evaluate_refuses_data_without_two_classes(photos, runner, runs, tmp_path, layout):
    # A flat folder has no labels; one sub-folder is one class: neither can train a classifier.
    folder = tmp_path / layout.replace(" ", "_")
    sub = folder if layout == "unlabelled" else folder / "chelsea"
    sub.mkdir(parents=True)
    for i, img in enumerate(photos["x32"][:60]):
        Image.fromarray(img.transpose(1, 2, 0)).save(sub / f"{i:03d}.png")
    r = runner.invoke(
        app, ["train", "ae", "--dataset", f"folder:{folder}", "--out", str(runs), *TINY]
    )
    assert r.exit_code == 0, r.output
    run = runs / "ae" / "ae"
    r = runner.invoke(
        app,
        ["evaluate", str(run), "--n", "20", "-q", "--device", "cpu"],
        env={"XDG_CACHE_HOME": str(tmp_path / "cache")},
    )
    assert r.exit_code != 0
    line = one_error_line(r)
    assert "two or more classes" in line
    assert ("without a class label" in line) == (layout == "unlabelled")
    assert not (run / "evaluation.json").exists()
    assert not list((tmp_path / "cache").rglob("featurenet.json"))


def test_diffusion_on_the_cifar_layout_end_to_end(photos, runner, runs):
    """CIFAR-10's 32x32 colour layout: flow trains, resumes, samples in colour and is evaluated; 2 ranks train too."""
    data = ["--dataset", "cifar10", "--data-dir", str(photos["data"]), "-q", "--device", "cpu"]
    tiny = ["--set", "model.width=8", "--set", "model.attention=false"]
    r = runner.invoke(app, ["train", "flow", "--epochs", "1", *tiny, *data, "--out", str(runs)])
    assert r.exit_code == 0, r.output
    run = runs / "flow" / "flow"
    r = runner.invoke(app, ["train", "--resume", str(run), "--epochs", "2", "-q"])
    assert r.exit_code == 0, r.output
    assert json.loads((run / "summary.json").read_text())["epochs"] == 2
    r = runner.invoke(app, ["sample", "flow", str(run), "--n", "4", "--steps", "3", "-q"])
    assert r.exit_code == 0 and _colour(run / "samples" / "flow_samples_steps3.png")
    r = runner.invoke(app, ["evaluate", str(run), "--n", "30", "--steps", "3", "-q"])
    assert r.exit_code == 0, r.output
    assert json.loads((run / "evaluation_steps3.json").read_text())["n"] == 30  # its setting's file
    # --devices relaunches the command line itself, so it runs as a user runs it: a subprocess.
    r = subprocess.run(
        [sys.executable, "-m", "udlcli", "train", "ddpm", "--epochs", "1", "--devices", "2"]
        + ["--name", "two", *tiny, *data, "--set", "model.timesteps=100", "--out", str(runs)],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "MPLBACKEND": "Agg"},
    )
    assert r.returncode == 0, r.stderr[-2000:]
    assert _colour(runs / "ddpm" / "two" / "samples" / "epoch_001.png")


def test_self_supervised_on_the_cifar_layout_with_the_resnet(photos, runner, runs):
    r = runner.invoke(
        app,
        [
            "train",
            "simclr",
            "--dataset",
            "cifar10",
            "--data-dir",
            str(photos["data"]),
            "--epochs",
            "2",
        ]
        + ["--set", "model.backbone=resnet", "--set", "model.width=8", "--batch-size", "64"]
        + ["-q", "--device", "cpu", "--out", str(runs)],
    )
    assert r.exit_code == 0, r.output
    run = runs / "simclr" / "simclr"
    assert _colour(run / "figures" / "views.png")
    s = json.loads((run / "summary.json").read_text())
    assert s["test_knn_acc"] > 1 / 9  # nine photographs: above chance after 2 epochs
    r = runner.invoke(app, ["probe", str(run), "--k", "10", "-q"])
    assert r.exit_code == 0, r.output
