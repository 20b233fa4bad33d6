"""Trackers of a tuning study: one MLflow parent run per study and a child run per trial, or a TensorBoard folder per trial.

The parent's id is kept in the study (a user attribute), so every worker and machine logs its trials
under it. Built on udlcli/core/tracking.py's guarded clients: a server that goes away is warned about
once and the study goes on.
"""

from __future__ import annotations

from pathlib import Path

from udlcli.config import flatten
from udlcli.core.tracking import Guarded, artifacts, http_limits, numbers, open_mlflow, reason
from udlcli.errors import SpecError


class TrialTracker(Guarded):
    """One tuning trial in the tracker: a child MLflow run of the study's parent run, or its own
    TensorBoard folder (RUN/tensorboard/trial-0007). Opened by the worker that runs the trial."""

    def __init__(
        self, backend: str, study_dir: Path, number: int, params: dict, uri=None, parent=None
    ):
        self.backend, self.number, self.uri, self.folder = backend, number, uri, Path(study_dir)
        self.params = params
        self._guarded(f"trial {number}", lambda: self._start(parent))

    def _start(self, parent) -> None:
        if self.backend == "tensorboard":
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(
                log_dir=str(self.folder / "tensorboard" / f"trial-{self.number:04d}")
            )
            text = "\n".join(f"{k}: {v}" for k, v in self.params.items())
            self.writer.add_text("params", text, 0)
            return
        from mlflow.entities import Param
        from mlflow.tracking import MlflowClient

        self.client = MlflowClient(tracking_uri=self.uri)  # checked before the study started
        parent_run = self.client.get_run(parent)
        tags = {"mlflow.parentRunId": parent, "optuna.trial": str(self.number)}
        run = self.client.create_run(
            parent_run.info.experiment_id, run_name=f"trial {self.number}", tags=tags
        )
        self.run_id = run.info.run_id
        self.client.log_batch(
            self.run_id, params=[Param(k, str(v)[:500]) for k, v in self.params.items()]
        )

    def log_epoch(self, epoch: int, row: dict) -> None:
        self._guarded(f"trial {self.number}, epoch {epoch}", lambda: self._log_epoch(epoch, row))

    def _log_epoch(self, epoch: int, row: dict) -> None:
        values = {k: v for k, v in numbers(row).items() if k not in ("epoch", "epochs")}
        if self.backend == "tensorboard":
            for k, v in values.items():
                self.writer.add_scalar(k, v, epoch)
            self.writer.flush()
            return
        from mlflow.entities import Metric

        ms = int(__import__("time").time() * 1000)
        self.client.log_batch(
            self.run_id, metrics=[Metric(k, v, ms, epoch) for k, v in values.items()]
        )

    def end(self, state: str, value: float | None) -> None:
        """state: COMPLETE, PRUNED or FAIL (optuna's); value: the trial's objective when it has one."""
        self._guarded(f"the end of trial {self.number}", lambda: self._end(state, value))

    def _end(self, state: str, value: float | None) -> None:
        if self.backend == "tensorboard":
            from torch.utils.tensorboard.summary import hparams

            shown = {k: v for k, v in self.params.items() if isinstance(v, (int, float, str, bool))}
            metric = {"objective": value if value is not None else float("nan")}
            for event in hparams(shown, metric):
                self.writer.file_writer.add_summary(event)
            if value is not None:
                self.writer.add_scalar("objective", value, 0)
            self.writer.close()
            return
        if value is not None:
            self.client.log_metric(self.run_id, "objective", value)
        self.client.set_tag(self.run_id, "optuna.state", state)
        self.client.set_terminated(self.run_id, "FAILED" if state == "FAIL" else "FINISHED")


def start_study(backend: str, study, study_dir: Path, base: dict, uri=None) -> str | None:
    """The study's parent MLflow run (kept in the study's user attrs, so a rerun, other workers and
    other machines log their trials under the same run); None for TensorBoard."""
    if backend != "mlflow":
        return None
    known = study.user_attrs.get("udl_mlflow_parent")
    client = open_mlflow(uri)
    if known:
        try:
            with http_limits():
                client.get_run(known)
            return known
        except Exception:  # the parent lives in another tracking store: start one here
            pass
    from mlflow.entities import Param

    params = [Param(k, str(v)[:500]) for k, v in flatten(base).items() if k.split(".")[0] != "meta"]
    try:
        with http_limits():
            found = client.get_experiment_by_name("tune")
            exp_id = (
                found.experiment_id
                if found
                else client.create_experiment("tune", artifacts(uri, "tune"))
            )
            run = client.create_run(
                exp_id, run_name=study.study_name, tags={"udl.study_dir": str(study_dir)}
            )
            client.log_batch(run.info.run_id, params=params)
    except Exception as e:  # it answered the check a moment ago
        raise SpecError(
            f"--mlflow-uri {uri or '(MLflow default)'}: the study's parent run could not be "
            f"created ({reason(e)}); no trial has run"
        ) from None
    study.set_user_attr("udl_mlflow_parent", run.info.run_id)
    return run.info.run_id


class _StudyTracker(Guarded):
    def __init__(self, backend: str, uri: str | None, study_dir: Path):
        self.backend, self.uri, self.folder = backend, uri, study_dir


def finish_study(
    backend: str, parent: str | None, study_dir: Path, summary: dict, uri=None
) -> None:
    """The study's summary numbers and figures on its parent run (MLflow), or its own folder (TensorBoard)."""
    call = lambda: _finish_study(backend, parent, study_dir, summary, uri)  # noqa: E731
    _StudyTracker(backend, uri, study_dir)._guarded("the study's summary", call)


def _finish_study(backend: str, parent: str | None, study_dir: Path, summary: dict, uri) -> None:
    images = (
        sorted((study_dir / "figures").glob("*.png")) if (study_dir / "figures").is_dir() else []
    )
    if backend == "tensorboard":
        import numpy as np
        from matplotlib.image import imread
        from torch.utils.tensorboard import SummaryWriter

        with SummaryWriter(log_dir=str(study_dir / "tensorboard" / "study")) as w:
            for k, v in numbers(summary).items():
                w.add_scalar(f"summary/{k}", v, 0)
            for p in images:
                w.add_image(
                    f"figures/{p.stem}", np.atleast_3d(imread(p))[..., :3], 0, dataformats="HWC"
                )
        return
    if parent is None:
        return
    from mlflow.entities import Metric
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    ms = int(__import__("time").time() * 1000)
    client.log_batch(
        parent, metrics=[Metric(f"summary.{k}", v, ms, 0) for k, v in numbers(summary).items()]
    )
    for p in images:
        client.log_artifact(parent, str(p), artifact_path="figures")
    client.set_terminated(parent, "FINISHED")
