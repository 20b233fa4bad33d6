"""The parts of a download that are not the network: its progress (a rich bar, or nothing while it runs), unpacking, checksums, and the words of its errors."""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from pathlib import Path

from udlcli import ui


class DownloadFailed(Exception):
    """A download that cannot finish; its message is the one line the user reads."""


def digest(path: Path, algorithm: str = "md5") -> str:
    """A file's hex digest (md5: torchvision's checksums; sha256: udl evaluate's networks), read in 1 MiB blocks."""
    h = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def md5_of(path: Path) -> str:
    return digest(path, "md5")


@dataclass
class State:
    """What the worker thread is doing, read by the main thread for the progress bar and the stall watch."""

    root: Path
    file: str = ""
    host: str = ""
    done: int = 0
    total: int | None = None
    fetched: int = 0  # bytes of every file so far
    beat: float = 0.0  # when data last arrived (or an attempt began)
    unpacking: bool = False
    # gdown writes the file itself: its progress is the bytes under this folder
    poll: Path | None = None
    cancelled: bool = False
    error: str | None = "the download stopped without a result"

    def begin(self, file: str, host: str) -> None:
        self.file, self.host, self.done, self.total = file, host, 0, None
        self.beat = time.monotonic()

    def add(self, n: int, fetched: bool = True) -> None:
        self.done += n
        self.fetched += n if fetched else 0
        self.beat = time.monotonic()
        if self.cancelled:  # the main thread gave up: stop writing into the scratch folder
            raise DownloadFailed("cancelled")

    def cannot_write(self, e: OSError) -> DownloadFailed:
        return DownloadFailed(f"cannot write to {self.root}: {e.strerror or first_line(e)}")


def unpack(archive: Path, state: State) -> None:
    """Unpack an archive beside itself, then delete it (STL-10's is 2.6 GB): only plain files and folders inside it."""
    import tarfile
    import zipfile

    state.begin(f"unpacking {archive.name}", "")
    try:
        if archive.suffix == ".zip":
            with zipfile.ZipFile(archive) as z:  # zipfile keeps every member inside the folder
                state.total = sum(i.file_size for i in z.infolist())
                for info in z.infolist():
                    z.extract(info, archive.parent)
                    state.add(info.file_size, fetched=False)
        else:
            with tarfile.open(archive) as t:
                for member in t:
                    extract(t, member, archive.parent)
                    state.add(member.size, fetched=False)
        archive.unlink()
    except (tarfile.TarError, zipfile.BadZipFile, EOFError) as e:
        raise DownloadFailed(
            f"{archive.name} is not a readable archive ({first_line(e)})"
        ) from None
    except OSError as e:
        raise state.cannot_write(e) from None


def extract(t, member, where: Path) -> None:
    import tarfile

    if hasattr(tarfile, "data_filter"):  # Python 3.11.4+ / 3.10.12+: refuses links out, devices, ..
        t.extract(member, where, filter="data")
    elif member.isfile() or member.isdir():
        if member.name.startswith("/") or ".." in Path(member.name).parts:
            raise tarfile.TarError(f"{member.name} points outside the archive's folder")
        t.extract(member, where)


class Bar:
    """A rich bar (bytes, rate, ETA) for each file on a terminal; nothing while it runs otherwise."""

    def __init__(self, state: State):
        self.state, self.progress, self.task, self.file = state, None, None, None
        self.seen = 0

    def __enter__(self) -> Bar:
        if ui.live_enabled():
            from rich.progress import (
                BarColumn,
                DownloadColumn,
                Progress,
                TextColumn,
                TimeRemainingColumn,
                TransferSpeedColumn,
            )

            self.progress = Progress(
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                DownloadColumn(),
                TransferSpeedColumn(),
                TextColumn("eta"),
                TimeRemainingColumn(),
                console=ui.console,
                transient=True,
            )
            self.progress.__enter__()
        return self

    def show(self) -> None:
        s = self.state
        if s.poll is not None:  # gdown writes on its own: count what is on disk
            size = bytes_under(s.poll)
            if size != self.seen:
                self.seen, s.done, s.beat = size, size, time.monotonic()
        if self.progress is None:
            return
        if s.file != self.file:
            if self.task is not None:
                self.progress.remove_task(self.task)
            self.task, self.file = self.progress.add_task(s.file, total=s.total), s.file
        self.progress.update(self.task, completed=s.done, total=s.total)

    def __exit__(self, *exc) -> None:
        if self.progress is not None:
            self.progress.__exit__(*exc)


def network_reason(e: BaseException, timeout: float, silent: str) -> str:
    """What went wrong on the network, in a few words: urllib wraps the socket's error in its reason."""
    import socket

    reason = getattr(e, "reason", e)
    if isinstance(reason, TimeoutError) or isinstance(e, TimeoutError):
        return f"{silent} for {timeout:g} s"
    if isinstance(reason, ConnectionRefusedError):
        return "connection refused"
    if isinstance(reason, socket.gaierror):
        return f"cannot resolve the name ({reason.strerror})"
    if isinstance(reason, OSError) and reason.strerror:
        return reason.strerror
    return f"{reason.__class__.__name__}: {first_line(reason)}".rstrip(": ")


def first_line(e: object) -> str:
    return (str(e).strip().splitlines() or [""])[0]


def size(n: float) -> str:
    from rich.filesize import decimal

    return decimal(int(n))


def bytes_under(folder: Path) -> int:
    """Bytes in the files under folder (0 once it is gone)."""
    total = 0
    for f in folder.rglob("*"):
        try:
            total += f.stat().st_size
        except OSError:  # moved or removed while we looked
            pass
    return total
