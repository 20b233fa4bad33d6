"""The user cache: the one folder udl writes caches and downloads to (a data folder is only ever read)."""

from __future__ import annotations

import os
from pathlib import Path


def default_cache_dir() -> Path:
    """The user cache: $UDL_CACHE_DIR, else $XDG_CACHE_HOME/udl, else ~/.cache/udl. The only folder udl writes caches to."""
    own = os.environ.get("UDL_CACHE_DIR")
    if own:
        return Path(own).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "udl"
