"""--track tensorboard|mlflow: what real runs log, read back with tensorboard's EventAccumulator and
MLflow's client; a tracking server that cannot be reached, or goes away during a run."""

from __future__ import annotations

import csv
import http.server
import json
import socket
import sys
import threading
import time

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


# ---------------------------------------------------------------- tracking servers that do not answer


@pytest.mark.parametrize(
    "listening, why",
    [
        # A mistyped port: bound, never listening, so every connection is refused. MLflow's own
        # client retried for 251 s before its error.
        (False, "connection refused"),
        # A server that accepts the connection and sends nothing (a hung proxy): the kernel
        # completes connections, nothing reads or answers them.
        (True, "it accepts connections but sent no answer in 3 s"),
    ],
)
def test_a_server_that_does_not_answer_is_one_line_within_seconds(runner, tmp_path, listening, why):
    pytest.importorskip("mlflow")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        if listening:
            s.listen(8)
        uri = f"http://127.0.0.1:{s.getsockname()[1]}/"
        args = ["train", "ae", *TINY, "--track", "mlflow", "--mlflow-uri", uri]
        t0 = time.perf_counter()
        r = runner.invoke(app, [*args, "--out", str(tmp_path / "runs")])
        took = time.perf_counter() - t0
    assert took < 10, took
    assert r.exit_code == 2
    assert f"--mlflow-uri {uri}: no tracking server answers there ({why})" in one_error_line(r)
    assert not (tmp_path / "runs").exists()


class StandIn(http.server.ThreadingHTTPServer):
    """A tracking server answering the MLflow REST calls udl's tracker makes (CI has no `mlflow server`:
    mlflow-skinny leaves the server out). It records what was logged, and goes away, its port closed,
    once `lives` batches of metrics have arrived."""

    def __init__(self, lives: int):
        self.lives, self.metrics, self.calls = lives, [], []
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                self._answer({})

            def do_POST(self):
                size = int(self.headers.get("Content-Length") or 0)
                self._answer(json.loads(self.rfile.read(size) or b"{}"))

            def _answer(self, body: dict):
                endpoint = self.path.split("?")[0].removeprefix("/api/2.0/mlflow/")
                server.calls.append(endpoint)
                code, out = 200, {}
                if endpoint == "experiments/search":
                    out = {"experiments": []}
                elif endpoint == "experiments/get-by-name":
                    code, out = 404, {"error_code": "RESOURCE_DOES_NOT_EXIST", "message": "none"}
                elif endpoint == "experiments/create":
                    out = {"experiment_id": "1"}
                elif endpoint == "runs/create":
                    info = {"run_id": "r1", "run_uuid": "r1", "experiment_id": "1"}
                    info |= {"status": "RUNNING", "lifecycle_stage": "active", "start_time": 0}
                    out = {"run": {"info": info, "data": {}}}
                data = json.dumps(out).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
                if endpoint == "runs/log-batch" and body.get("metrics"):
                    server.metrics.append(body["metrics"])
                    if len(server.metrics) == server.lives:
                        threading.Thread(target=server.go_away).start()

        super().__init__(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server_address[1]}"
        threading.Thread(target=self.serve_forever, daemon=True).start()

    def go_away(self):
        if self.socket.fileno() != -1:
            self.shutdown()
            self.server_close()  # the port refuses connections from now on


def test_a_server_that_goes_away_mid_run_is_said_once_and_the_run_completes(runner, tmp_path):
    pytest.importorskip("mlflow")
    server = StandIn(lives=1)  # epoch 1's metrics arrive; then the server is gone
    args = ["train", "ae", *TINY, "--epochs", "3", "--track", "mlflow", "--mlflow-uri", server.url]
    t0 = time.perf_counter()
    try:
        r = runner.invoke(app, [*args, "--out", str(tmp_path)])
    finally:
        server.go_away()
    took = time.perf_counter() - t0
    assert r.exit_code == 0, r.output
    run = tmp_path / "ae" / "ae"
    warnings = [ln for ln in r.output.splitlines() if ln.startswith("warning: --track mlflow")]
    assert len(warnings) == 1, r.output
    assert (
        f"the MLflow store {server.url} stopped answering (epoch 2: connection refused)"
        in (warnings[0])
    )
    assert str(run) in warnings[0]
    rows = metrics(run)
    assert [int(row["epoch"]) for row in rows] == [1, 2, 3]
    for f in ("summary.json", "figures/loss.png", "figures/reconstructions.png", "weights/best.pt"):
        assert (run / f).is_file(), f
    (epoch1,) = server.metrics
    sent = {m["key"]: float(m["value"]) for m in epoch1}
    assert sent["val_loss"] == pytest.approx(float(rows[0]["val_loss"]), rel=1e-6)
    # Once gone, the tracker is left alone: the later epochs and the summary cost no more waits.
    assert took < 60, took


def test_a_tuning_worker_whose_server_is_gone_warns_once_and_goes_on(tmp_path, capsys):
    pytest.importorskip("mlflow")
    from udlcli.tasks.tune.tracking import TrialTracker

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))  # a server that went away: its port refuses connections
        uri = f"http://127.0.0.1:{s.getsockname()[1]}"
        t0 = time.perf_counter()
        for number in range(3):  # three trials of one worker
            trial = TrialTracker("mlflow", tmp_path, number, {"lr": 1e-3}, uri, parent="p")
            trial.log_epoch(1, {"epoch": 1, "val_loss": 0.1})
            trial.end("COMPLETE", 0.1)
        took = time.perf_counter() - t0
    out = capsys.readouterr().out
    assert out.count("warning:") == 1, out
    assert f"the MLflow store {uri} stopped answering (trial 0: connection refused)" in out
    assert took < 10, took  # MLflow's own retries would take minutes for each call
