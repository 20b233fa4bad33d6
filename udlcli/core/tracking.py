"""Experiment trackers (`--track tensorboard|mlflow`): the spec as hyperparameters, per-epoch metrics, figures and the summary.

    none         the default: the run folder alone (metrics.csv, figures/, summary.json)
    tensorboard  event files in RUN/tensorboard/ (`tensorboard --logdir runs` shows every run)
    mlflow       one MLflow run per udl run, in train.mlflow_uri (else MLflow's own default:
                 $MLFLOW_TRACKING_URI, or ./mlruns); a resumed run continues the same MLflow run

Both are optional extras (`pip install 'udlcli[tensorboard]'`, `'udlcli[mlflow]'`), checked with
the rest of the spec before anything is written; a tracking server (an http(s) URI) must answer
within PROBE_TIMEOUT_S then. The tracker is a trainer callback: it logs each epoch's row after its
checkpoint, on rank 0 only, and finish() logs the figures and the summary. A tracker that fails
during training (the server went away, the disk is full) is warned about once and left alone: the
run goes on, and its folder has everything.
"""

from __future__ import annotations

import importlib.util
import math
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from udlcli import ui
from udlcli.config import flatten
from udlcli.core.trainer import Callback
from udlcli.errors import SpecError, shorten

EXTRAS = {"tensorboard": "tensorboard", "mlflow": "mlflow"}
"""--track value -> the extra that installs it."""


def check(train_cfg) -> None:
    """One-line errors, before any folder exists: the tracker's package is missing, or its URI cannot be opened."""
    check_backend(getattr(train_cfg, "track", "none"), getattr(train_cfg, "mlflow_uri", None))


def check_backend(track: str, uri: str | None) -> None:
    if track == "none":
        return
    try:
        if track == "tensorboard":
            from torch.utils.tensorboard import SummaryWriter  # noqa: F401  (needs the tensorboard package)
        elif importlib.util.find_spec("mlflow") is None:  # found, not imported: that takes 1.3 s
            raise ImportError("mlflow")
    except ImportError:
        raise SpecError(
            f"--track {track} needs the {track} package: pip install 'udlcli[{EXTRAS[track]}]'"
        ) from None
    if track == "mlflow":
        _probe_server(uri)
        open_mlflow(uri)


PROBE_TIMEOUT_S = (3.0, 3.0)
"""(connect, read) seconds a tracking server gets to answer before a run starts: 6 s at most, where
MLflow's own client retries for about 4 minutes before its error."""

HTTP_LIMITS = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "1",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "5",
}
"""MLflow's HTTP client while udl calls it (defaults: 7 retries with exponential backoff, 120 s for
each answer): a tracking call that fails costs a training run seconds, not minutes. A value set in
the environment wins."""


@contextmanager
def http_limits() -> Iterator[None]:
    """HTTP_LIMITS in the environment for the calls inside (MLflow reads them at every request)."""
    added = {k: v for k, v in HTTP_LIMITS.items() if k not in os.environ}
    os.environ.update(added)
    try:
        yield
    finally:
        for k in added:
            os.environ.pop(k, None)


def _probe_server(uri: str | None) -> None:
    """One short request to an http(s) tracking URI: any HTTP answer will do; none is a one-line SpecError."""
    uri = uri or os.environ.get("MLFLOW_TRACKING_URI", "")  # unset: MLflow's local default
    if not uri.startswith(("http://", "https://")):
        return
    import requests

    url = uri.rstrip("/") + "/api/2.0/mlflow/experiments/search"
    try:
        requests.get(url, params={"max_results": 1}, timeout=PROBE_TIMEOUT_S)
        return
    except requests.exceptions.ConnectTimeout:
        why = f"no connection in {PROBE_TIMEOUT_S[0]:g} s"
    except requests.exceptions.ReadTimeout:
        why = f"it accepts connections but sent no answer in {PROBE_TIMEOUT_S[1]:g} s"
    except requests.exceptions.RequestException as e:
        why = reason(e)
    raise SpecError(
        f"--mlflow-uri {uri}: no tracking server answers there ({why}); start one "
        "(mlflow server --host HOST --port PORT), fix the URI, or use sqlite:///mlruns.db"
    )


def reason(e: BaseException) -> str:
    """The innermost OS error of a failed request (connection refused, unknown host), else its first line."""
    found, seen, inner = None, set(), e
    while inner is not None and id(inner) not in seen:  # requests -> urllib3 -> the socket's error
        seen.add(id(inner))
        if isinstance(inner, OSError) and inner.strerror:
            found = inner
        nested = [a for a in inner.args if isinstance(a, BaseException)]
        inner = inner.__cause__ or inner.__context__ or getattr(inner, "reason", None)
        inner = inner if isinstance(inner, BaseException) else (nested or [None])[0]
    return found.strerror.lower() if found is not None else _first_line(e)


def _first_line(e: BaseException) -> str:
    return shorten((str(e).strip().splitlines() or [e.__class__.__name__])[0])


def open_mlflow(uri: str | None):
    from mlflow.tracking import MlflowClient

    try:
        client = MlflowClient(tracking_uri=uri)
        with http_limits():
            client.search_experiments(max_results=1)
    except Exception as e:  # a bad scheme, a server that refuses us, a folder it cannot write
        raise SpecError(
            f"--mlflow-uri {uri or '(MLflow default)'}: MLflow cannot open it ({_first_line(e)}); "
            "use sqlite:///mlruns.db, a folder path, or http://HOST:PORT of a tracking server"
        ) from None
    return client


_GONE: set[str] = set()
"""MLflow URIs that failed in this process: later runs and trials here (udl reproduce's steps, a
tuning worker's trials) skip them at once instead of waiting on each call again."""


class Guarded:
    """Logging calls that never stop training: the first failure is one warning, and this tracker
    (and, for MLflow, every later one at the same URI in this process) is left alone after it."""

    backend: str
    uri: str | None
    folder: Path
    failed: bool = False

    def _guarded(self, when: str, call: Callable[[], None]) -> None:
        if self.failed or (self.backend == "mlflow" and str(self.uri) in _GONE):
            self.failed = True
            return
        try:
            with http_limits():
                call()
        except Exception as e:  # a server gone, a full disk: the folder has it all anyway
            self.failed = True
            if self.backend == "mlflow":
                _GONE.add(str(self.uri))
                where = f"the MLflow store {self.uri or '(MLflow default)'} stopped answering"
            else:
                where = "its event files cannot be written"
            ui.warn(
                f"--track {self.backend}: {where} ({when}: {reason(e)}); training goes on "
                f"without it, and {self.folder} keeps everything"
            )


def numbers(d: dict) -> dict[str, float]:
    """The finite numbers of a flattened dict (booleans left out)."""
    return {
        k: float(v)
        for k, v in flatten(d).items()
        if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
    }


class Tracker(Guarded, Callback):
    """Logs one udl run to a tracker. Opened lazily on rank 0's first log, so other ranks open nothing."""

    name = "tracker"

    def __init__(self, backend: str, run_dir: Path, spec: dict, uri: str | None = None):
        self.backend, self.run_dir, self.spec, self.uri = backend, Path(run_dir), spec, uri
        self.folder = self.run_dir
        self.mlflow_run_id: str | None = None
        self._writer = None
        self._client = None

    # ---------------------------------------------------------------- trainer hooks

    def on_saved(self, trainer, row: dict) -> None:
        self.log_epoch(row)

    def state_dict(self) -> dict:
        return {"mlflow_run_id": self.mlflow_run_id} if self.mlflow_run_id else {}

    def load_state_dict(self, state: dict) -> None:
        self.mlflow_run_id = state.get("mlflow_run_id")

    # ---------------------------------------------------------------- logging

    def log_epoch(self, row: dict) -> None:
        self._guarded(f"epoch {int(row['epoch'])}", lambda: self._log_epoch(row))

    def finish(self, summary: dict, status: str = "finished") -> None:
        """The summary's numbers, the run's figures and sample grids as images, and the run closed."""
        self._guarded("the summary", lambda: self._finish(summary, status))

    def _log_epoch(self, row: dict) -> None:
        step = int(row["epoch"])
        values = {k: v for k, v in numbers(row).items() if k not in ("epoch", "epochs")}
        self._open()
        if self.backend == "tensorboard":
            for k, v in values.items():
                self._writer.add_scalar(k, v, step)
            self._writer.flush()
        else:
            from mlflow.entities import Metric

            ms = int(__import__("time").time() * 1000)
            metrics = [Metric(k, v, ms, step) for k, v in values.items()]
            self._client.log_batch(self.mlflow_run_id, metrics=metrics)

    def _finish(self, summary: dict, status: str) -> None:
        self._open()
        final = {f"summary/{k}": v for k, v in numbers(summary).items()}
        images = sorted(
            p
            for sub in ("figures", "samples")
            for p in (self.run_dir / sub).glob("*.png")
            if (self.run_dir / sub).is_dir()
        )
        if self.backend == "tensorboard":
            import numpy as np
            from matplotlib.image import imread

            step = int(summary.get("epochs", 0) or 0)
            for k, v in final.items():
                self._writer.add_scalar(k, v, step)
            for p in images:
                img = imread(p)  # (H, W, 3 or 4) floats in [0, 1]
                img = np.atleast_3d(img)[..., :3]
                self._writer.add_image(f"{p.parent.name}/{p.stem}", img, step, dataformats="HWC")
            self._writer.close()
            self._writer = None
        else:
            from mlflow.entities import Metric

            ms = int(__import__("time").time() * 1000)
            metrics = [Metric(k.replace("/", "."), v, ms, 0) for k, v in final.items()]
            self._client.log_batch(self.mlflow_run_id, metrics=metrics)
            for p in images:
                self._client.log_artifact(self.mlflow_run_id, str(p), artifact_path=p.parent.name)
            self._client.set_terminated(
                self.mlflow_run_id, "FINISHED" if status == "finished" else "FAILED"
            )

    def _open(self) -> None:
        if self.backend == "tensorboard":
            if self._writer is None:
                from torch.utils.tensorboard import SummaryWriter

                self._writer = SummaryWriter(log_dir=str(self.run_dir / "tensorboard"))
                import yaml

                text = yaml.safe_dump(self.spec, sort_keys=False)
                self._writer.add_text("spec", f"```\n{text}\n```", 0)
                self._hparams()
            return
        if self._client is not None:
            return
        from mlflow.tracking import MlflowClient

        self._client = MlflowClient(tracking_uri=self.uri)  # checked before the run started
        if self.mlflow_run_id is None:  # a new run (a resumed one keeps its id from the checkpoint)
            experiment = self.run_dir.parent.name  # the task: ae, vae, denoise, finetune, gan
            found = self._client.get_experiment_by_name(experiment)
            exp_id = (
                found.experiment_id
                if found
                else self._client.create_experiment(
                    experiment, artifact_location=artifacts(self.uri, experiment)
                )
            )
            run = self._client.create_run(exp_id, run_name=self.run_dir.name)
            self.mlflow_run_id = run.info.run_id
            from mlflow.entities import Param

            params = [
                Param(k, str(v)[:500])
                for k, v in flatten(self.spec).items()
                if k.split(".")[0] != "meta"
            ]
            self._client.log_batch(self.mlflow_run_id, params=params)
            self._client.set_tag(self.mlflow_run_id, "udl.run_dir", str(self.run_dir))

    def _hparams(self) -> None:
        from torch.utils.tensorboard.summary import hparams

        values = {
            k: v
            for k, v in flatten(self.spec).items()
            if isinstance(v, (int, float, str, bool)) and k.split(".")[0] != "meta"
        }
        # Written into the run's own event file, so the HPARAMS tab lists the run (add_hparams
        # would open a separate sub-run for it).
        for event in hparams(values, {"summary/best_val_loss": 0.0}):
            self._writer.file_writer.add_summary(event)


def artifacts(uri: str | None, experiment: str) -> str | None:
    """Where a new experiment's artifacts go: beside a SQLite database (MLflow would put them in
    ./mlruns of whatever folder udl runs in); None: the store's own choice (a folder, a server)."""
    if uri and uri.startswith("sqlite:///"):
        return (
            Path(uri[len("sqlite:///") :]).resolve().parent / "mlartifacts" / experiment
        ).as_uri()
    return None


def tracker_for(train_cfg, run_dir: Path, spec: dict) -> Tracker | None:
    """The run's tracker callback (None for --track none)."""
    track = getattr(train_cfg, "track", "none")
    if track == "none":
        return None
    return Tracker(track, run_dir, spec, getattr(train_cfg, "mlflow_uri", None))


# ---------------------------------------------------------------- tuning: a parent run, a child per trial
