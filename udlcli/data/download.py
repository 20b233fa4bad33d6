"""Downloading a named dataset into the user cache from the URLs and checksums torchvision lists: all or nothing, with progress, never for long on a dead network."""

from __future__ import annotations

import hashlib
import shutil
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from udlcli import ui
from udlcli.data.fetch import (  # noqa: F401  (md5_of: udl data verify's, through this module)
    Bar,
    DownloadFailed,
    State,
    first_line,
    md5_of,
    network_reason,
    size,
    unpack,
)
from udlcli.data.sources import SOURCES, missing_files

CELEBA_FILES = ("img_align_celeba.zip", "list_eval_partition.txt")
"""The CelebA files udl reads; torchvision lists four more (attributes, landmarks ...) that udl never uses."""

USER_AGENT = "pytorch/vision"
"""torchvision's own: some dataset hosts refuse Python's default agent."""


@dataclass(frozen=True)
class Remote:
    """One file of a dataset's download, as torchvision lists it."""

    name: str
    """Its file name, as messages say it."""
    urls: tuple[str, ...]
    """Tried in order (MNIST has two mirrors); none for a Google Drive file."""
    path: str
    """Where it goes, relative to the cache."""
    md5: str
    unpack: bool = False
    """An archive: unpacked where it lies, then deleted."""
    drive_id: str = ""
    """A Google Drive file (CelebA's only source): fetched with gdown."""


def _torchvision_class(name: str):
    import torchvision.datasets as tvd

    return getattr(tvd, SOURCES[name].torchvision)


def remotes(name: str) -> list[Remote]:
    """What to download for a named dataset, read from torchvision's class attributes at each call (tests point them at a local server)."""
    cls = _torchvision_class(name)
    folder = SOURCES[name].folder
    if hasattr(cls, "mirrors"):  # the MNIST family: four .gz files, kept packed (udl reads them so)
        return [
            Remote(f, tuple(m + f for m in cls.mirrors), f"{folder}/{f}", md5)
            for f, md5 in cls.resources
        ]
    if hasattr(cls, "tgz_md5"):  # CIFAR and STL-10: one archive holding the dataset's folder
        return [Remote(cls.filename, (cls.url,), cls.filename, cls.tgz_md5, unpack=True)]
    if hasattr(cls, "split_list"):  # SVHN: one .mat file a split
        return [
            Remote(f, (url,), f"{folder}/{f}", md5)
            for url, f, md5 in (cls.split_list[s] for s in ("train", "test"))
        ]
    return [  # CelebA: Google Drive ids
        Remote(f, (), f"{folder}/{f}", md5, unpack=f.endswith(".zip"), drive_id=file_id)
        for file_id, md5, f in cls.file_list
        if f in CELEBA_FILES
    ]


def known_md5(name: str) -> dict[str, str]:
    """The md5 torchvision knows for each file of a dataset as it lies in its folder, by file name (udl data verify)."""
    cls = _torchvision_class(name)
    pairs = [
        tuple(p) for a in ("resources", "train_list", "test_list") for p in getattr(cls, a, [])
    ]
    if isinstance(getattr(cls, "meta", None), dict):  # CIFAR's class names
        pairs.append((cls.meta["filename"], cls.meta["md5"]))
    pairs += [(f, md5) for _, f, md5 in getattr(cls, "split_list", {}).values()]
    pairs += [(f, md5) for _, md5, f in getattr(cls, "file_list", [])]
    return dict(pairs)


def drive_download(file_id: str, dest: Path) -> None:
    """Fetch a Google Drive file with gdown, as torchvision does: Drive answers a large file with a confirmation page that gdown gets past."""
    try:
        import gdown
    except ImportError:
        raise DownloadFailed(
            "CelebA's files are on Google Drive, which needs the gdown package: pip install gdown"
        ) from None
    try:
        out = gdown.download(id=file_id, output=str(dest), quiet=True, user_agent=USER_AGENT)
    except Exception as e:  # requests' and gdown's own errors: all mean Drive did not send the file
        raise DownloadFailed(f"network error: Google Drive: {first_line(e)}") from None
    if out is None or not dest.is_file():
        raise DownloadFailed(
            f"network error: Google Drive sent no file for {dest.name} (its daily quota may be used up; try later)"
        )


# ---------------------------------------------------------------- the download


def download_torchvision(name: str, root: Path, timeout: float = 15.0) -> str | None:
    """Download a named dataset into root/<its folder>/, from the URLs and with the checksums torchvision lists.

    Returns None on success, or the one line that says why not: a network error (which host, what
    error), a folder that cannot be written (which one, why), or a checksum mismatch. The files go to
    a scratch folder inside root, moved into place only when every one arrived, passed its checksum
    and was unpacked: a failed, stalled or interrupted download leaves nothing behind. A download
    gives up when no data arrives for `timeout` seconds, however long it has run (CIFAR-10 is
    170 MB, STL-10 2.6 GB). A terminal shows a progress bar (bytes, rate, ETA); --quiet or a pipe
    get one line at the start and one at the end.
    """
    items = remotes(name)
    top = SOURCES[name].folder.split("/")[0]  # MNIST/raw: the whole MNIST folder moves
    state = State(root)
    try:
        root.mkdir(parents=True, exist_ok=True)
        scratch = Path(tempfile.mkdtemp(prefix=f".download-{name}-", dir=root))
    except OSError as e:
        return str(state.cannot_write(e))
    hosts = list(
        dict.fromkeys(urlsplit(r.urls[0]).netloc if r.urls else "Google Drive" for r in items)
    )
    ui.console.print(  # markup off: a path may hold [brackets]
        f"{name}: downloading {len(items)} file{'s' if len(items) > 1 else ''} from {', '.join(hosts)} "
        f"into {root} (gives up when no data arrives for {timeout:g} s)",
        markup=False,
    )
    t0 = time.monotonic()
    worker = threading.Thread(
        target=_work, args=(name, items, scratch, state, timeout), daemon=True
    )
    try:
        with Bar(state) as bar:
            worker.start()
            while worker.is_alive():
                worker.join(0.2)
                bar.show()
                if not state.unpacking and time.monotonic() - state.beat > timeout + 5:
                    # The socket's own timeout ends a stalled read; this ends what it cannot reach
                    # (a name lookup on a dead network, gdown's requests without a timeout).
                    break
        error = state.error
        if worker.is_alive():
            error = f"network error: {state.host}: no answer for {timeout:g} s"
        elif error is None:
            error = _move_into_place(scratch / top, root / top, state)
    finally:  # also on Ctrl-C: the worker stops at its next chunk, and the scratch folder goes
        state.cancelled = True
        shutil.rmtree(scratch, ignore_errors=True)
    if error is None:
        dt = time.monotonic() - t0
        ui.console.print(
            f"{name}: {size(state.fetched)} in {dt:.1f} s ({size(state.fetched / max(dt, 1e-3))}/s), "
            f"checked against torchvision's md5 and stored in {root / top}",
            markup=False,
        )
    return error


def _work(name: str, items: list[Remote], scratch: Path, state: State, timeout: float) -> None:
    try:
        for r in items:
            dest = scratch / r.path
            if state.cancelled:  # the main thread gave up and removed the scratch folder
                return
            try:
                dest.parent.mkdir(parents=True, exist_ok=True)
            except OSError as e:
                raise state.cannot_write(e) from None
            if r.drive_id:
                _from_drive(r, dest, state)
            else:
                _from_mirrors(r, dest, state, timeout)
        state.unpacking = True
        for r in items:
            if r.unpack:
                unpack(scratch / r.path, state)
        missing = missing_files(name, scratch)
        if missing:  # a good checksum on the wrong archive (only a test's mirror can serve one)
            raise DownloadFailed(f"the download holds no {', '.join(missing)}")
        state.error = None
    except DownloadFailed as e:
        state.error = str(e)
    except Exception as e:  # unforeseen: still one line, never a traceback from a thread
        state.error = f"{e.__class__.__name__}: {first_line(e)}"


def _from_mirrors(r: Remote, dest: Path, state: State, timeout: float) -> None:
    """Try each URL in turn; a network error or a bad checksum moves on to the next mirror, a disk error stops."""
    errors = []
    for url in r.urls:
        try:
            _get(url, r, dest, state, timeout)
            return
        except _MirrorFailed as e:
            errors.append(str(e))
    net = "network error: "
    if len(errors) > 1 and all(e.startswith(net) for e in errors):
        raise DownloadFailed(net + "; ".join(e[len(net) :] for e in errors))
    raise DownloadFailed("; ".join(errors))


class _MirrorFailed(DownloadFailed):
    """This mirror could not serve the file; another may."""


def _get(url: str, r: Remote, dest: Path, state: State, timeout: float) -> None:
    import http.client
    import urllib.error
    import urllib.request

    host = urlsplit(url).netloc or url
    state.begin(r.name, host)
    request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as e:
        raise _MirrorFailed(
            f"network error: {host}: HTTP {e.code} {e.reason} for {r.name}"
        ) from None
    except (OSError, http.client.HTTPException, ValueError) as e:
        raise _MirrorFailed(
            f"network error: {host}: {network_reason(e, timeout, 'no answer')}"
        ) from None
    h = hashlib.md5()
    with response:
        length = response.headers.get("Content-Length", "")
        state.total = int(length) if length.isdigit() else None
        try:
            f = open(dest, "wb")
        except OSError as e:
            raise state.cannot_write(e) from None
        with f:
            while True:
                try:
                    chunk = response.read1(1 << 16)  # what has come, not a wait for 64 kB
                except (OSError, http.client.HTTPException) as e:  # a stall is a TimeoutError
                    why = network_reason(e, timeout, "no data")
                    raise _MirrorFailed(
                        f"network error: {host}: {why} after {state.done:,} bytes of {r.name}"
                    ) from None
                if not chunk:
                    break
                h.update(chunk)
                try:
                    f.write(chunk)
                except OSError as e:  # a full disk, most likely
                    raise state.cannot_write(e) from None
                state.add(len(chunk))
    if state.total is not None and state.done < state.total:
        raise _MirrorFailed(
            f"network error: {host}: closed the connection after {state.done:,} of {state.total:,} bytes of {r.name}"
        )
    _check(r, h.hexdigest(), host)


def _check(r: Remote, got: str, host: str) -> None:
    if got != r.md5:
        raise _MirrorFailed(
            f"checksum mismatch: {r.name} from {host} has md5 {got}, torchvision expects {r.md5}"
        )


def _from_drive(r: Remote, dest: Path, state: State) -> None:
    state.begin(r.name, "Google Drive")
    state.poll = dest.parent
    try:
        drive_download(r.drive_id, dest)
    finally:
        state.poll = None
    state.fetched += dest.stat().st_size
    _check(r, md5_of(dest), "Google Drive")


def _move_into_place(new: Path, target: Path, state: State) -> str | None:
    """Replace target (an incomplete earlier copy, if any) with the fresh folder; None, or why not."""
    old = new.parent / "replaced"  # goes with the scratch folder, once the new copy is in place
    try:
        if target.exists():
            target.rename(old)
        new.rename(target)
    except OSError as e:
        if old.exists() and not target.exists():  # put the earlier copy back as it was
            old.rename(target)
        return str(state.cannot_write(e))
    return None
