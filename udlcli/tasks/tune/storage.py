"""Where a `udl tune` study lives (SQLite, a journal file, or an RDB server) and how its trials are counted and orphans failed."""

from __future__ import annotations

import os
import socket
import time
import warnings
from pathlib import Path

from udlcli.errors import UdlError

RDB_SCHEMES = ("sqlite", "postgresql", "postgres", "mysql")
HEARTBEAT_S, GRACE_S = 10, 60
"""Shared RDB storages: a trial whose worker has not written a heartbeat for GRACE_S is marked failed."""


class StorageError(UdlError):
    """The optuna storage cannot be opened or holds an incompatible study."""


# ---------------------------------------------------------------- storage


def choose_storage(storage: str | None, study_dir: Path, n_jobs: int) -> tuple[str, str, str]:
    """(storage, kind, why): kind is 'rdb' (a URL) or 'journal' (a file path)."""
    if storage is None:
        journal, db = study_dir / "journal.log", study_dir / "study.db"
        if journal.exists() or (n_jobs > 1 and not db.exists()):
            return (
                str(journal),
                "journal",
                f"a journal file, safe for {n_jobs} writers (optuna warns against SQLite with several)"
                if n_jobs > 1
                else "the study's journal file",
            )
        if n_jobs > 1:
            raise StorageError(
                f"{db} is an SQLite study, which is not safe for {n_jobs} writers; continue it with --n-jobs 1, "
                f"or start a new --study-name (several workers then get a journal file)"
            )
        return f"sqlite:///{db}", "rdb", "SQLite (one writer; optuna-dashboard opens it as it is)"
    if "://" in storage:
        scheme = storage.split("://", 1)[0].split("+", 1)[0].lower()
        if scheme not in RDB_SCHEMES:
            raise StorageError(
                f"--storage {storage}: unknown URL scheme {scheme!r}; use sqlite:///FILE, postgresql://USER@HOST/DB, mysql://USER@HOST/DB or a journal file path"
            )
        if scheme == "sqlite" and n_jobs > 1:
            raise StorageError(
                "--storage sqlite:/// is not safe for several writers; drop --storage (a journal file is picked) or use postgresql://"
            )
        return storage, "rdb", "an RDB server" if scheme != "sqlite" else "SQLite"
    if ":" in storage.split("/", 1)[0] and not Path(storage).exists():
        raise StorageError(
            f"--storage {storage}: not a URL (SCHEME://...) nor a journal file path; e.g. postgresql://user@host/db"
        )
    return (
        storage,
        "journal",
        "a journal file (safe for several writers, also on a shared filesystem)",
    )


def shown(url: str) -> str:
    try:
        from sqlalchemy.engine import make_url

        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return url


def open_storage(storage: str, kind: str):
    """The optuna storage; any failure (bad URL, no driver, server down) becomes one StorageError line."""
    import optuna
    from optuna.storages.journal import JournalFileBackend, JournalStorage

    try:
        if kind == "journal":
            Path(storage).parent.mkdir(parents=True, exist_ok=True)
            return JournalStorage(JournalFileBackend(storage))
        if storage.startswith("sqlite"):
            return optuna.storages.RDBStorage(
                storage, engine_kwargs={"connect_args": {"timeout": 60}}
            )
        connect = {"connect_timeout": 10} if storage.startswith(("postgres", "mysql")) else {}
        with warnings.catch_warnings():
            warnings.simplefilter(
                "ignore", optuna.exceptions.ExperimentalWarning
            )  # heartbeats are marked experimental
            return optuna.storages.RDBStorage(
                storage,
                engine_kwargs={"connect_args": connect},
                heartbeat_interval=HEARTBEAT_S,
                grace_period=GRACE_S,
            )
    except ImportError:
        raise StorageError(
            f"--storage {shown(storage)}: its database driver is not installed; pip install 'udlcli[postgres]' (psycopg) or a MySQL driver (pymysql)"
        ) from None
    except Exception as e:
        first = (str(getattr(e, "orig", None) or e).strip().splitlines() or [type(e).__name__])[0]
        raise StorageError(
            f"--storage {shown(storage)}: cannot open it ({first}); check the URL, that the server is up and the user may connect"
        ) from None


# ---------------------------------------------------------------- counting, stale trials, the worker loop


def counts(study) -> dict:
    from optuna.trial import TrialState

    c = {"complete": 0, "pruned": 0, "failed": 0, "running": 0, "surplus": 0}
    best = None
    sign = -1 if study.direction.name == "MAXIMIZE" else 1  # an accuracy: the highest is best
    for t in study.get_trials(deepcopy=False):
        if t.state == TrialState.COMPLETE:
            c["complete"] += 1
            if best is None or sign * t.value < sign * best.value:
                best = t
        elif t.state == TrialState.PRUNED:
            c["pruned"] += 1
        elif t.state in (TrialState.RUNNING, TrialState.WAITING):
            c["running"] += 1
        elif t.user_attrs.get("udl_note") == "surplus":
            c["surplus"] += 1
        else:
            c["failed"] += 1
    c["finished"] = c["complete"] + c["pruned"]
    c["best"] = None if best is None else (best.number, best.value)
    return c


def status_line(c: dict, n: int) -> str:
    best = f"best {c['best'][1]:.5g} (trial {c['best'][0]})" if c["best"] else "best -"
    return f"{c['finished']}/{n} finished ({c['pruned']} pruned), {c['failed']} failed, {c['running']} running; {best}"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a killed child not yet reaped is a zombie: dead for our purposes
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"
    except OSError:
        return True


def fail_orphans(study) -> int:
    """Mark FAIL the RUNNING trials whose worker is gone: a dead pid on this host, or a stale heartbeat."""
    import optuna
    from optuna.storages._heartbeat import is_heartbeat_enabled
    from optuna.trial import TrialState

    if is_heartbeat_enabled(study._storage):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            optuna.storages.fail_stale_trials(study)
    host, n = socket.gethostname(), 0
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        worker = t.user_attrs.get("udl_worker")
        if worker is None:  # died between ask and its first write: orphaned once it is a minute old
            dead = t.datetime_start is not None and time.time() - t.datetime_start.timestamp() > 60
        else:
            h, pid = worker.rsplit(":", 1)
            dead = h == host and not _alive(int(pid))
        if dead:
            try:
                study._storage.set_trial_user_attr(t._trial_id, "udl_note", "worker gone")
                study._storage.set_trial_state_values(t._trial_id, TrialState.FAIL)
                n += 1
            except Exception:  # another worker marked it first
                pass
    return n
