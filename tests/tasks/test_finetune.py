"""The finetune engine on real digits: run folder and scores, frozen vs unfrozen encoder, resume, errors."""

from __future__ import annotations

import json

import pytest
import torch

from udlcli.core.checkpoint import load_checkpoint
from udlcli.core.loading import load_run
from udlcli.core.spec import resolve_spec
from udlcli.errors import CheckpointError, SpecError
from udlcli.tasks import finetune as ft
from udlcli.tasks.train import RunOptions, train

# One epoch in batches of 32 (100 steps) takes a 4-channel AE off the mean-digit plateau.
SMALL = ["data.dataset=mnist-sample", "model.channels=4", "train.epochs=1", "train.batch_size=32"]


@pytest.fixture(scope="module")
def ae_runs(tmp_path_factory):
    """Two tiny AEs on the 4,000 mnist-sample digits: latent 7 (used throughout) and latent 3."""
    root = tmp_path_factory.mktemp("runs")
    out = {}
    for d in (7, 3):
        spec = resolve_spec(
            "ae", sets=[*SMALL, f"model.latent_dim={d}"] + (["data.limit=500"] if d == 3 else [])
        )
        out[d] = train(spec, RunOptions(out=root, name=f"ae{d}")).run_dir
    return root, out


def _spec(ae_dir, *sets):
    return ft.resolve_finetune_spec(sets=[f"finetune.ae={ae_dir}", "train.epochs=2", *sets])


def test_frozen_run_writes_scores_figures_and_keeps_the_encoder(ae_runs, tmp_path):
    root, aes = ae_runs
    res = ft.finetune(_spec(aes[7]), RunOptions(out=tmp_path))
    run = tmp_path / "finetune" / "finetune"
    assert res.run_dir == run
    for f in (
        "spec.yaml",
        "metrics.csv",
        "summary.json",
        "baselines.json",
        "weights/best.pt",
        "weights/last.pt",
        "figures/loss.png",
        "figures/confusion.png",
        "figures/mistakes.png",
    ):
        assert (run / f).is_file() and (run / f).stat().st_size > 0, f
    s = json.loads((run / "summary.json").read_text())
    assert s["ae_run"] == str(aes[7]) and s["encoder"] == "frozen" and s["epochs"] == 2
    assert (
        s["dataset"]["name"] == "mnist-sample" and s["dataset"]["train_size"] == 4000
    )  # the AE's data
    # a head on the codes of a 4-channel AE trained for one epoch: well above chance (10%), as are the baselines
    assert 0.3 < s["test_accuracy"] <= 1.0
    assert 0.3 < s["baselines"]["linear_probe"] <= 1.0 and 0.3 < s["baselines"]["knn5"] <= 1.0
    assert set(s["per_class"]) == {str(i) for i in range(10)}
    assert sum(c["support"] for c in s["per_class"].values()) == 1000
    assert all(0.0 <= c["f1"] <= 1.0 for c in s["per_class"].values())
    assert (
        s["trainable_params"] == 7 * 928 + 928 + 928 * 10 + 10
        and s["params"] > s["trainable_params"]
    )
    # the frozen encoder's weights are the AE's, bit for bit; the head is what trained
    clf, ae = (
        load_checkpoint(run / "weights/best.pt")["model"],
        load_checkpoint(aes[7] / "weights/best.pt")["model"],
    )
    enc = [k for k in clf if k.startswith(("backbone.encoder.", "backbone.to_latent."))]
    assert enc and all(torch.equal(clf[k], ae[k.removeprefix("backbone.")]) for k in enc)
    # load_run rebuilds the classifier from its run folder alone
    loaded = load_run(run, tmp_path, family="classifier")
    assert loaded.spec.model.backbone["latent_dim"] == 7 and loaded.spec.model.hidden == 928

    # resume extends the run to 3 epochs and keeps the first two epochs' history
    before = (run / "metrics.csv").read_text().splitlines()
    res2 = ft.resume(run, epochs=3)
    after = (run / "metrics.csv").read_text().splitlines()
    assert res2.summary["epochs"] == 3 and len(after) == 4 and after[:3] == before
    assert res2.summary["baselines"] == s["baselines"]  # read back, not recomputed
    with pytest.raises(SpecError, match="already has 3 epochs"):
        ft.resume(run, epochs=2)


def test_unfreeze_trains_the_encoder(ae_runs, tmp_path):
    _, aes = ae_runs
    res = ft.finetune(
        _spec(
            aes[7],
            "finetune.unfreeze=true",
            "finetune.encoder_lr=1e-3",
            "finetune.baselines=false",
            "finetune.hidden=64",
            "train.epochs=1",
        ),
        RunOptions(out=tmp_path),
    )
    s = res.summary
    assert (
        s["encoder"] == "fine-tuned"
        and s["baselines"] == {}
        and s["trainable_params"] == s["params"]
    )
    clf, ae = (
        load_checkpoint(res.run_dir / "weights/best.pt")["model"],
        load_checkpoint(aes[7] / "weights/best.pt")["model"],
    )
    assert not torch.equal(clf["backbone.encoder.body.0.weight"], ae["encoder.body.0.weight"])


def test_init_head_needs_the_same_latent_size(ae_runs, tmp_path):
    _, aes = ae_runs
    first = ft.finetune(
        _spec(aes[3], "finetune.hidden=16", "finetune.baselines=false", "train.epochs=1"),
        RunOptions(out=tmp_path),
    ).run_dir
    with pytest.raises(CheckpointError, match="latent size 3.*latent size 7") as e:
        ft.prepare(_spec(aes[7], f"finetune.init_head={first}"), tmp_path)
    assert "\n" not in str(e.value)
    # the same latent size: the head starts from the earlier run's weights and takes its hidden size
    prep = ft.prepare(_spec(aes[3], f"finetune.init_head={first}"), tmp_path)
    assert prep.run_spec.model.hidden == 16
    head = load_checkpoint(first / "weights/best.pt")["model"]
    assert torch.equal(prep.head_state["head.0.weight"], head["head.0.weight"])
    assert torch.equal(
        prep.head_state["standardize.mean"], head["standardize.mean"]
    )  # the head keeps the scaling it was trained behind


def test_bad_specs_are_one_line_errors_and_write_nothing(ae_runs, tmp_path):
    root, aes = ae_runs
    with pytest.raises(SpecError, match=r"finetune.dropout.*1\.5"):
        _spec(aes[7], "finetune.dropout=1.5")
    with pytest.raises(CheckpointError, match="no ae/.*run with weights"):
        ft.finetune(ft.resolve_finetune_spec(), RunOptions(out=tmp_path))
    with pytest.raises(
        CheckpointError,
        match="is an AE run, not a classifier run; resume it with udl train --resume",
    ):
        ft.resume(aes[7])
    assert not (tmp_path / "finetune").exists()


def test_unfreeze_and_frozen_defaults_are_the_measured_recipes(ae_runs):
    _, aes = ae_runs
    frozen = ft.resolve_finetune_spec(sets=[f"finetune.ae={aes[7]}"])
    assert (
        frozen.train.epochs,
        frozen.train.scheduler,
        frozen.finetune.shift,
        frozen.finetune.features,
    ) == (ft.FROZEN_EPOCHS, "cosine", 0, None)  # None: the encoder's default layer, an AE's code
    assert ft.prepare(frozen, "runs").run_spec.model.features == "latent"
    unfrozen = ft.resolve_finetune_spec(sets=[f"finetune.ae={aes[7]}", "finetune.unfreeze=true"])
    assert (unfrozen.train.epochs, unfrozen.finetune.shift, unfrozen.finetune.encoder_lr) == (
        ft.UNFROZEN_EPOCHS,
        2,
        None,
    )
    prep = ft.prepare(unfrozen, "runs")
    model = ft.make_trainer(prep).model
    assert [g["lr"] for g in model.param_groups(prep.run_spec.train)] == [
        1.839e-3,
        1.839e-3,
    ]  # the encoder at the head's lr
    # Anything given explicitly wins over the mode's defaults.
    mine = ft.resolve_finetune_spec(
        sets=[
            f"finetune.ae={aes[7]}",
            "finetune.unfreeze=true",
            "train.epochs=3",
            "finetune.shift=0",
        ]
    )
    assert (mine.train.epochs, mine.finetune.shift) == (3, 0)


@pytest.mark.parametrize("features", ["hidden", "conv"])
def test_a_head_on_other_features(ae_runs, tmp_path, features):
    _, aes = ae_runs
    res = ft.finetune(
        _spec(aes[7], f"finetune.features={features}", "finetune.hidden=64", "train.epochs=4"),
        RunOptions(out=tmp_path),
    )
    s = res.summary
    assert s["features"] == features and s["baselines"]["features"] == features
    width = {"hidden": 64, "conv": 3 * 3 * 4 * 4}[features]
    assert s["trainable_params"] == width * 64 + 64 + 64 * 10 + 10
    assert 0.3 < s["test_accuracy"] <= 1.0 and 0.3 < s["baselines"]["linear_probe"] <= 1.0
    loaded = load_run(res.run_dir, family="classifier")
    assert loaded.spec.model.features == features


def test_same_seed_same_numbers_and_nothing_written(ae_runs, tmp_path):
    """fit_head (the tuning objective) twice from one prepared spec: identical histories, no files."""
    _, aes = ae_runs
    prep = ft.prepare(
        _spec(aes[7], "finetune.hidden=32", "train.epochs=1", "data.limit=800"), tmp_path
    )
    rows = [ft.fit_head(prep).history[0] for _ in range(2)]
    assert {k: v for k, v in rows[0].items() if "time" not in k and "per_s" not in k} == {
        k: v for k, v in rows[1].items() if "time" not in k and "per_s" not in k
    }
    assert not any(tmp_path.iterdir())
