"""Downloading a named dataset with torchvision into the user cache: all or nothing, and never for long on a dead network."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from udlcli.data.sources import SOURCES


def download_torchvision(name: str, root: Path, timeout: float = 15.0) -> str | None:
    """Download a dataset with torchvision into root/<its folder>/, giving up when no data arrives for timeout seconds.

    Returns None on success, or a short reason on failure. torchvision writes into a scratch
    folder beside the target, which is moved into place only when every split arrived, so a
    failed or stalled download leaves nothing behind. The download runs in a daemon thread
    watched for progress: a dead network ends it after `timeout` seconds, while a large archive
    (CIFAR-10 is 170 MB, STL-10 2.6 GB) may take as long as its bytes keep coming.
    """
    import shutil
    import socket
    import tempfile

    import torchvision.datasets as tvd

    src = SOURCES[name]
    cls = getattr(tvd, src.torchvision)
    result: dict[str, str | None] = {"error": "timed out"}
    try:
        root.mkdir(parents=True, exist_ok=True)
        scratch = Path(tempfile.mkdtemp(prefix=f".download-{src.folder}-", dir=root))
    except OSError as e:
        return f"cannot write to {root} ({e.__class__.__name__})"

    def work() -> None:
        old = socket.getdefaulttimeout()
        socket.setdefaulttimeout(min(timeout, 10.0))
        try:
            if hasattr(cls, "tgz_md5"):
                # CIFAR and STL-10 are one checked archive. Constructing torchvision's class would
                # also read it, and its CIFAR reader unpickles with plain pickle: udl reads the
                # files itself (data/photos.py), so only fetch and unpack here.
                from torchvision.datasets.utils import download_and_extract_archive

                download_and_extract_archive(
                    cls.url, str(scratch / src.root_sub), filename=cls.filename, md5=cls.tgz_md5
                )
            for kwargs in () if hasattr(cls, "tgz_md5") else src.downloads:
                cls(str(scratch / src.root_sub), download=True, **kwargs)
            top = src.folder.split("/")[0]  # MNIST/raw: the whole MNIST folder moves
            target = root / top
            if target.exists():  # an incomplete earlier copy: the fresh one replaces it
                shutil.rmtree(target)
            (
                scratch / src.root_sub / top
                if src.root_sub and top != src.root_sub
                else scratch / top
            ).rename(target)
            result["error"] = None
        except Exception as e:  # network errors come in many types; all mean "no data"
            result["error"] = (
                f"{e.__class__.__name__}: {str(e).splitlines()[0] if str(e) else ''}".strip(": ")
            )
        finally:
            socket.setdefaulttimeout(old)
            shutil.rmtree(scratch, ignore_errors=True)

    t = threading.Thread(target=work, daemon=True)
    t.start()
    seen, last_change = -1, time.monotonic()
    while t.is_alive() and time.monotonic() - last_change < timeout:
        t.join(min(1.0, timeout))
        size = _bytes_under(scratch)
        if size != seen:
            seen, last_change = size, time.monotonic()
    if t.is_alive():  # stalled: whatever it wrote goes now; the thread dies with the process
        result["error"] = f"no data arrived for {timeout:.0f} s"
        shutil.rmtree(scratch, ignore_errors=True)
    return result["error"]


def _bytes_under(folder: Path) -> int:
    """Bytes in the files under folder (0 once it is gone): how a download shows progress."""
    total = 0
    for f in folder.rglob("*"):
        try:
            total += f.stat().st_size
        except OSError:  # moved or removed while we looked
            pass
    return total
