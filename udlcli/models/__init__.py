"""Model families; importing this package registers every family in the registry."""

from udlcli.models import (
    ae,  # noqa: F401  (registers "ae")
    classifier,  # noqa: F401  (registers "classifier", task finetune)
    dae,  # noqa: F401  (registers "dae"; after ae, whose training defaults it reuses)
    lenet,  # noqa: F401  (registers "lenet", udl evaluate's feature network)
    vae,  # noqa: F401  (registers "vae")
)
from udlcli.models.registry import REGISTRY, ModelEntry, get, register

__all__ = ["REGISTRY", "ModelEntry", "get", "register"]
