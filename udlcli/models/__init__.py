"""Model families: importing this package imports every module in it, and each family module registers itself.

A module ending in `register(Family(...))` is a family; helper modules (network bodies shared by
families) register nothing. Other packages add families through the entry-point group
`udlcli.families` (each entry point names a module to import), so a plug-in needs no edit here.
"""

import importlib
import pkgutil
from importlib.metadata import entry_points

from udlcli.models.registry import REGISTRY, Family, default, families, get, register, unregister


def _discover() -> None:
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if not info.name.startswith("_") and info.name != "registry":
            importlib.import_module(f"{__name__}.{info.name}")
    for ep in entry_points(group="udlcli.families"):
        ep.load()


_discover()

__all__ = ["REGISTRY", "Family", "default", "families", "get", "register", "unregister"]
