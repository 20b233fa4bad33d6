"""`udl gan`: the report's GAN command, kept as an alias of `udl train gan` (the same options and engine)."""

from __future__ import annotations

from udlcli.cli.train import alias

gan = alias(
    "gan",
    "Train the report's GAN (udl train gan) and write runs/gan/<name>/ "
    "(samples/progress.gif, figures/losses.png, summary.json).",
)
