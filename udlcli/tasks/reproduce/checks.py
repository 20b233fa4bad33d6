"""`udl reproduce`'s checks before anything runs: each step's own spec fields, validated by its command's resolver."""

from __future__ import annotations

from collections.abc import Callable

from udlcli.tasks.reproduce.steps import Context
from udlcli.tasks.reproduce.study import Step


def _check_tune(step: Step, ctx: Context) -> None:
    from udlcli.config import validate
    from udlcli.core.spec import resolve_spec
    from udlcli.tasks.finetune import resolve_finetune_spec
    from udlcli.tasks.tune.space import FinetuneObjective, objectives

    flags = {k: v for k, v in ctx.flags(step).items() if not k.startswith("search.")}
    if step.what == FinetuneObjective.name:
        resolve_finetune_spec(None, flags, [])
    else:
        resolve_spec(step.what, None, flags, None)
    validate(
        objectives()[step.what].search_cls,
        step.params.spec.get("search") or {},
        source="search: section",
    )


def _check_train(step: Step, ctx: Context) -> None:
    from udlcli.core.spec import resolve_spec

    resolve_spec(step.what, None, ctx.flags(step), None)


def _check_finetune(step: Step, ctx: Context) -> None:
    from udlcli.tasks.finetune import resolve_finetune_spec

    resolve_finetune_spec(None, ctx.flags(step), [])


def _check_denoise(step: Step, ctx: Context) -> None:
    from udlcli.tasks.denoise.run import denoise_spec

    denoise_spec(None, ctx.flags(step), None, None)


def _check_gan(step: Step, ctx: Context) -> None:
    from udlcli.core.spec import resolve_spec

    resolve_spec(step.command, None, ctx.flags(step), None)  # `gan` is `train gan`


CHECKS: dict[str, Callable[[Step, Context], None]] = {
    "tune": _check_tune,
    "train": _check_train,
    "finetune": _check_finetune,
    "denoise": _check_denoise,
    "gan": _check_gan,
}
"""Validate a step's own spec fields (the references' files are layered in only when it runs)."""
