"""--track tensorboard|mlflow: what real runs log, read back with tensorboard's EventAccumulator and MLflow's client."""

from __future__ import annotations

import csv
import sys

import pytest
from conftest import one_error_line

from udlcli.cli.app import app

TINY = ["--dataset", "mnist-sample", "--limit", "600", "--channels", "4", "--epochs", "2", "-q"]


def metrics(run) -> list[dict]:
    with open(run / "metrics.csv") as f:
        return list(csv.DictReader(f))


def test_tensorboard_logs_metrics_spec_figures_and_summary(runner, tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    r = runner.invoke(app, ["train", "ae", *TINY, "--track", "tensorboard", "--out", str(tmp_path)])
    assert r.exit_code == 0, r.output
    run = tmp_path / "ae" / "ae"
    ea = EventAccumulator(str(run / "tensorboard"), size_guidance={"images": 0, "scalars": 0})
    ea.Reload()
    rows = metrics(run)
    logged = ea.Scalars("val_loss")
    assert [e.step for e in logged] == [int(row["epoch"]) for row in rows]
    assert [e.value for e in logged] == pytest.approx(
        [float(row["val_loss"]) for row in rows], rel=1e-5
    )
    assert {"figures/loss", "figures/reconstructions"} <= set(ea.Tags()["images"])
    assert ea.Scalars("summary/test_mse")[0].value > 0
    assert "spec/text_summary" in ea.Tags()["tensors"]


def test_mlflow_logs_one_run_that_resume_continues(runner, tmp_path):
    pytest.importorskip("mlflow")
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{tmp_path / 'mlruns.db'}"
    args = ["train", "ae", *TINY, "--track", "mlflow", "--mlflow-uri", uri, "--out", str(tmp_path)]
    assert runner.invoke(app, args).exit_code == 0
    run = tmp_path / "ae" / "ae"
    r = runner.invoke(app, ["train", "--resume", str(run), "--epochs", "3"])
    assert r.exit_code == 0, r.output
    client = MlflowClient(tracking_uri=uri)
    (found,) = client.search_runs([client.get_experiment_by_name("ae").experiment_id])
    assert (found.info.run_name, found.info.status) == ("ae", "FINISHED")
    assert found.data.params["train.lr"] == "0.002218"
    assert found.data.params["model.channels"] == "4"
    history = client.get_metric_history(found.info.run_id, "val_loss")
    rows = metrics(run)
    history = sorted(history, key=lambda m: m.step)
    assert [m.step for m in history] == [int(row["epoch"]) for row in rows]
    assert [m.value for m in history] == pytest.approx(
        [float(row["val_loss"]) for row in rows], rel=1e-5
    )
    assert len(rows) == 3  # the resumed epoch 3 went to the same MLflow run
    assert found.data.metrics["summary.test_mse"] > 0
    assert "figures" in [a.path for a in client.list_artifacts(found.info.run_id)]


def test_gan_tracks_its_losses(runner, tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    args = ["gan", "--dataset", "mnist-sample", "--limit", "256", "--epochs", "1", "-q"]
    r = runner.invoke(app, [*args, "--track", "tensorboard", "--out", str(tmp_path)])
    assert r.exit_code == 0, r.output
    ea = EventAccumulator(str(tmp_path / "gan" / "gan" / "tensorboard"))
    ea.Reload()
    assert {"d_loss", "g_loss"} <= set(ea.Tags()["scalars"])


@pytest.mark.parametrize(
    "args, message",
    [
        (["--track", "wandb"], "train.track: Input should be 'none', 'tensorboard' or 'mlflow'"),
        (
            ["--track", "mlflow", "--mlflow-uri", "bogus-scheme://nowhere"],
            "--mlflow-uri bogus-scheme://nowhere: MLflow cannot open it",
        ),
    ],
)
def test_bad_tracking_options_are_one_line_and_write_nothing(runner, tmp_path, args, message):
    pytest.importorskip("mlflow")
    r = runner.invoke(app, ["train", "ae", *TINY, *args, "--out", str(tmp_path / "runs")])
    assert r.exit_code != 0
    assert message in one_error_line(r)
    assert not (tmp_path / "runs").exists()


def test_a_missing_tracker_names_its_extra(runner, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "mlflow", None)  # import mlflow now raises ImportError
    r = runner.invoke(
        app, ["train", "ae", *TINY, "--track", "mlflow", "--out", str(tmp_path / "r")]
    )
    assert r.exit_code == 2
    assert (
        "--track mlflow needs the mlflow package: pip install 'udlcli[mlflow]'" in one_error_line(r)
    )
    assert not (tmp_path / "r").exists()


def test_tune_logs_a_parent_run_and_a_child_per_trial(runs, tmp_path):
    pytest.importorskip("mlflow")
    from mlflow.tracking import MlflowClient

    from udlcli.tasks.tune import run as tune

    search = tmp_path / "tiny.yaml"
    search.write_text("search:\n  channels: [4, 4]\n  latent_dim: [2, 4]\n")
    uri = f"sqlite:///{tmp_path / 'mlruns.db'}"
    flags = {"data.dataset": "mnist-sample", "data.limit": 200}
    flags |= {"train.track": "mlflow", "train.mlflow_uri": uri}
    opts = tune.TuneOptions(objective="ae", trials=3, max_epochs=2, out=runs)
    result = tune.tune(opts, str(search), flags)
    client = MlflowClient(tracking_uri=uri)
    exp = client.get_experiment_by_name("tune").experiment_id
    everything = client.search_runs([exp])
    (parent,) = [r for r in everything if "mlflow.parentRunId" not in r.data.tags]
    children = [
        r for r in everything if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id
    ]
    assert parent.info.run_name == "ae-study" and parent.info.status == "FINISHED"
    assert len(children) == 3
    assert {r.data.tags["optuna.state"] for r in children} <= {"COMPLETE", "PRUNED"}
    best = min(r.data.metrics["objective"] for r in children if "objective" in r.data.metrics)
    assert best == pytest.approx(result.summary["best"]["value"])
    assert parent.data.metrics["summary.best.value"] == pytest.approx(best)
    assert all("latent_dim" in r.data.params for r in children)
    assert len(client.get_metric_history(children[0].info.run_id, "val_loss")) >= 1


def test_reproduce_tracks_every_step_that_trains(runner, tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    study = tmp_path / "study.yaml"
    study.write_text(
        "name: tracked\ndata: {dataset: mnist-sample}\nsteps:\n  train_ae:\n    run: train ae\n"
        "    spec: {data: {limit: 300}, model: {channels: 4}, train: {epochs: 1}}\nprofiles: {quick: {}}\n"
    )
    out = tmp_path / "runs"
    r = runner.invoke(
        app, ["reproduce", str(study), "--out", str(out), "-q", "--track", "tensorboard"]
    )
    assert r.exit_code == 0, r.output
    (events,) = list(out.glob("report/tracked/steps/**/tensorboard"))
    ea = EventAccumulator(str(events))
    ea.Reload()
    assert "val_loss" in ea.Tags()["scalars"]
