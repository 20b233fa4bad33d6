"""Model families: importing this package imports every module in it, and each family module registers itself.

A module ending in `register(Family(...))` is a family; helper modules (network bodies shared by
families) register nothing. Other packages add families through the entry-point group
`udlcli.families` (each entry point names a module to import), so a plug-in needs no edit here;
one that fails to import is one warning naming its entry point, and every other family still works.
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
        try:
            ep.load()
        except Exception as e:  # a broken plug-in must not take every command down with it
            from udlcli import ui

            why = str(e).splitlines()[0] if str(e) else ""
            ui.warn(
                f"the plug-in family {ep.name!r} (entry point {ep.value}) did not load: "
                f"{type(e).__name__}{': ' + why if why else ''}; udl goes on without it "
                "(fix or uninstall the package that provides it)"
            )


_discover()

__all__ = ["REGISTRY", "Family", "default", "families", "get", "register", "unregister"]
