"""The tune engine: exact trial counts with 2 worker processes (journal file, PostgreSQL), Ctrl-C and SIGKILL leave a resumable study."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import uuid

import optuna
import pytest
from optuna.trial import TrialState

from udlcli.tasks.tune import run as engine

DATA = {"data.dataset": "mnist-sample", "data.limit": 200}


def _opts(runs, **kw) -> engine.TuneOptions:
    base = dict(objective="ae", trials=4, max_epochs=1, out=runs)
    return engine.TuneOptions(**{**base, **kw})


def _tiny_search(tmp_path) -> str:
    path = tmp_path / "tiny.yaml"
    path.write_text("search:\n  channels: [4, 4]\n  latent_dim: [2, 4]\n")
    return str(path)


def _assert_exact(study, n: int) -> None:
    trials = study.get_trials(deepcopy=False)
    finished = [t for t in trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
    assert len(finished) == n, [
        (t.number, t.state.name, t.user_attrs.get("udl_note")) for t in trials
    ]
    assert not [t for t in trials if t.state == TrialState.RUNNING]
    assert len({t.number for t in trials}) == len(trials)  # no trial recorded twice
    # every finished trial has its complete spec and one value per epoch trained
    assert all("spec" in t.user_attrs and t.intermediate_values for t in finished)
    # failed trials are only the surplus ones a worker gave up before training (none lost)
    assert all(
        t.user_attrs.get("udl_note") == "surplus" for t in trials if t.state == TrialState.FAIL
    )


def test_two_workers_share_a_journal_and_finish_exactly_n(runs, tmp_path):
    # --devices cpu,cpu: each worker on its "device" from the list (GPUs take cuda:0,cuda:1 the same way)
    result = engine.tune(_opts(runs, n_jobs=2, devices="cpu,cpu"), _tiny_search(tmp_path), DATA)
    journal = runs / "tune" / "ae-study" / "journal.log"
    assert journal.is_file() and not (runs / "tune" / "ae-study" / "study.db").exists()
    assert result.summary["finished"] == 4 and result.summary["storage"] == str(journal)
    study = optuna.load_study(
        study_name="ae-study", storage=engine.open_storage(str(journal), "journal")
    )
    _assert_exact(study, 4)
    assert {t.user_attrs.get("udl_device") for t in study.get_trials()} == {"cpu"}
    # the study holds its objective and search space, so a later run can check it continues the same search
    assert study.user_attrs["udl_objective"] == "ae" and study.user_attrs["udl_search"][
        "channels"
    ] == [4, 4]


@pytest.mark.skipif(
    not os.environ.get("UDL_TEST_POSTGRES_URL"),
    reason="set UDL_TEST_POSTGRES_URL (.ci/run starts a local PostgreSQL)",
)
def test_two_workers_share_a_postgresql_study(runs, tmp_path):
    url = os.environ["UDL_TEST_POSTGRES_URL"]
    name = f"pg-{uuid.uuid4().hex[:8]}"  # the database outlives the test: a fresh study each time
    result = engine.tune(
        _opts(runs, n_jobs=2, storage=url, study_name=name), _tiny_search(tmp_path), DATA
    )
    assert result.summary["finished"] == 4
    study = optuna.load_study(study_name=name, storage=engine.open_storage(url, "rdb"))
    _assert_exact(study, 4)
    assert (runs / "tune" / name / "trials.csv").is_file()


def test_ctrl_c_stops_after_the_epoch_and_the_study_resumes(runs, tmp_path):
    (
        """A real SIGINT during a trial: that trial is marked failed after its epoch; the same call then finishes the study.

    Trials may run 40 epochs so the signal lands inside one even on a fast, idle machine (with 3 tiny
    epochs the first trial could finish before the poller's SIGINT arrived).
    """
        ""
    )
    search = _tiny_search(tmp_path)
    db = runs / "tune" / "ae-study" / "study.db"

    def press_ctrl_c():  # as soon as a trial has reported an epoch
        # Let the engine create the database first: a second process creating optuna's schema at the
        # same moment makes one of them fail ("table alembic_version already exists").
        while not db.exists():
            time.sleep(0.05)
        time.sleep(1.0)
        while True:
            time.sleep(0.05)
            try:
                trials = optuna.load_study(
                    study_name="ae-study", storage=f"sqlite:///{db}"
                ).get_trials(deepcopy=False)
            except Exception:
                continue
            if any(t.intermediate_values for t in trials):
                os.kill(os.getpid(), signal.SIGINT)
                return

    threading.Thread(target=press_ctrl_c, daemon=True).start()
    first = engine.tune(_opts(runs, trials=2, max_epochs=40), search, DATA)
    assert first.interrupted
    study = optuna.load_study(study_name="ae-study", storage=f"sqlite:///{db}")
    stopped = [t for t in study.get_trials() if t.state == TrialState.FAIL]
    assert len(stopped) == 1 and stopped[0].user_attrs["udl_note"].startswith(
        "interrupted after epoch"
    )
    assert len(stopped[0].intermediate_values) < 40  # it stopped before its last epoch
    again = engine.tune(_opts(runs, trials=2, max_epochs=40), search, DATA)
    assert not again.interrupted and again.summary["finished"] == 2 and again.summary["failed"] == 1


@pytest.mark.slow
def test_sigkill_keeps_finished_trials_and_fails_the_running_one(runs, tmp_path):
    """Kill -9 a running `udl tune`; the next run keeps every finished trial, fails the orphan and continues to N."""
    search = _tiny_search(tmp_path)
    # 30 epochs a trial: long enough (seconds) for the poll below to see a trial running after one has finished.
    cmd = [
        sys.executable,
        "-c",
        "from udlcli.cli.app import main; main()",
        "tune",
        "ae",
        "--trials",
        "3",
        "--max-epochs",
        "30",
        "-c",
        search,
        "--out",
        str(runs),
        "--dataset",
        "mnist-sample",
        "--limit",
        "200",
        "-q",
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    db = runs / "tune" / "ae-study" / "study.db"
    kept = []
    try:
        deadline = time.time() + 300
        while time.time() < deadline and proc.poll() is None:
            time.sleep(0.2)
            try:
                trials = optuna.load_study(
                    study_name="ae-study", storage=f"sqlite:///{db}"
                ).get_trials()
            except Exception:
                continue
            done = [t for t in trials if t.state == TrialState.COMPLETE]
            running = [t for t in trials if t.state == TrialState.RUNNING and t.intermediate_values]
            if done and running:
                kept = [(t.number, t.value) for t in done]
                os.kill(proc.pid, signal.SIGKILL)
                break
    finally:
        proc.kill()
        proc.wait()
    assert kept, "the study never had a finished and a running trial at once"
    result = engine.tune(_opts(runs, trials=3, max_epochs=3), search, {**DATA})
    study = optuna.load_study(study_name="ae-study", storage=f"sqlite:///{db}")
    trials = study.get_trials()
    assert [(t.number, t.value) for t in trials if t.number in dict(kept)] == kept
    orphans = [t for t in trials if t.state == TrialState.FAIL]
    assert len(orphans) == 1 and orphans[0].user_attrs["udl_note"] == "worker gone"
    assert result.summary["finished"] == 3
