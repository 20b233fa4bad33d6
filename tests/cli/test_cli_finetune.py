"""`udl finetune` through the CLI: train on the newest AE, --predict a user's images (table and --json), one-line errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import (
    one_error_line as _only_error_line,  # the suite's check: one error line, no traceback
)
from PIL import Image

from udlcli.cli.app import app
from udlcli.data import load_dataset

AE = [
    "train",
    "ae",
    "--dataset",
    "mnist-sample",
    "--channels",
    "4",
    "--epochs",
    "1",
    "--batch-size",
    "32",
    "-q",
]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """An AE and a frozen-encoder classifier on it, both through the CLI, under one runs root."""
    from typer.testing import CliRunner

    runs = tmp_path_factory.mktemp("runs")
    runner = CliRunner()
    r = runner.invoke(app, [*AE, "--out", str(runs)])
    assert r.exit_code == 0, r.output
    r = runner.invoke(
        app, ["finetune", "--epochs", "2", "--out", str(runs), "-q"]
    )  # the newest AE run
    assert r.exit_code == 0, r.output
    return runs, r.output


def test_finetune_prints_per_class_scores_and_baselines(trained):
    runs, output = trained
    s = json.loads((runs / "finetune" / "finetune" / "summary.json").read_text())
    assert s["ae_run"] == str(runs / "ae" / "ae")
    assert "precision" in output and "recall" in output and "F1" in output
    assert f"{s['test_accuracy']:.2%}" in output
    assert (
        f"{s['baselines']['linear_probe']:.2%}" in output
        and f"{s['baselines']['knn5']:.2%}" in output
    )


def test_predict_classifies_a_users_images(trained, runner, tmp_path, monkeypatch):
    runs, _ = trained
    test = load_dataset("mnist-sample").test
    digits = test.x[:3, 0].numpy()  # (3, 28, 28)
    Image.fromarray(digits[0]).save(tmp_path / "mnist_like.png")
    Image.fromarray(255 - digits[1]).resize((84, 84)).save(
        tmp_path / "scan.png"
    )  # black on white, larger
    Image.fromarray(digits[2]).convert("RGB").save(tmp_path / "colour.jpg")
    files = [str(tmp_path / n) for n in ("mnist_like.png", "scan.png", "colour.jpg")]

    r = runner.invoke(
        app, ["finetune", "--out", str(runs), "--json", "--predict", *files]
    )  # the shell's expansion of *.png
    assert r.exit_code == 0, r.output
    out = json.loads(r.output)
    assert out["run"] == str(runs / "finetune" / "finetune")
    rows = out["predictions"]
    assert [row["file"] for row in rows] == files
    assert [row["resized"] for row in rows] == [False, True, False]
    assert [row["inverted"] for row in rows] == [False, True, False]
    assert all(
        row["label"] == str(row["class"]) and 0.1 <= row["probability"] <= 1.0 for row in rows
    )
    assert any("inverted" in n for n in out["notes"]) and any("resized" in n for n in out["notes"])

    # the table: one row per file as the user gave it, with the class, its probability and what was done
    monkeypatch.chdir(tmp_path)
    r = runner.invoke(
        app,
        [
            "finetune",
            "--out",
            str(runs),
            "--predict",
            "scan.png",
            "--run",
            str(runs / "finetune" / "finetune"),
        ],
    )
    assert r.exit_code == 0, r.output
    assert "scan.png" in r.output and f"{rows[1]['probability']:.1%}" in r.output
    assert (
        "resized from 84x84, inverted" in r.output and "note: 1 image was dark-on-light" in r.output
    )


def test_bad_input_is_one_line(trained, runner, tmp_path):
    runs, _ = trained
    (tmp_path / "notes.txt").write_text("not an image")
    cases = [
        (["finetune", "--dropout", "1.5", "--out", str(runs)], "dropout"),
        (
            ["finetune", "--out", str(runs), "--predict", str(tmp_path / "notes.txt")],
            "notes.txt: not a readable image",
        ),
        (
            ["finetune", "--out", str(runs), "--predict", str(tmp_path / "nothing*.png")],
            "matches no file",
        ),
        (
            [
                "finetune",
                "--out",
                str(tmp_path / "empty"),
                "--predict",
                str(tmp_path / "notes.txt"),
            ],
            "not a readable image",
        ),
        (
            ["finetune", str(runs / "ae" / "ae"), str(runs / "ae" / "ae"), "--out", str(runs)],
            "use --predict",
        ),
        (
            ["finetune", str(runs / "finetune" / "finetune"), "--out", str(runs)],
            "is a classifier run: a classifier cannot encode images",
        ),
    ]
    for args, expect in cases:
        r = runner.invoke(app, args)
        assert r.exit_code != 0, args
        assert expect in _only_error_line(r), (args, r.output)
    # an image, but no classifier run to use
    Image.fromarray(np.zeros((28, 28), np.uint8)).save(tmp_path / "blank.png")
    r = runner.invoke(
        app,
        ["finetune", "--out", str(tmp_path / "empty"), "--predict", str(tmp_path / "blank.png")],
    )
    assert (
        r.exit_code != 0
        and "no finetune run" in _only_error_line(r)
        and "(udl finetune)" in _only_error_line(r)
    )
    assert sorted(p.name for p in (runs / "finetune").iterdir()) == [
        "finetune"
    ]  # no failed command made a run
