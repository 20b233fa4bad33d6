"""The registry of model families: one `Family` entry says everything the commands need to know of a family.

A family module (udlcli/models/<name>.py) ends with `register(Family(...))`; udlcli/models/__init__.py
imports every module of the package (and plug-ins of other packages, through the entry-point group
`udlcli.families`), so a new family is one new file. Nothing else in udl names a family: the
commands read the entry (names, config, defaults, the command that trains it) and ask the model what
it can do (the protocols of udlcli/core/contracts.py, checked on the entry's model class).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from torch import nn

from udlcli.errors import SpecError


@dataclass(frozen=True)
class Family:
    name: str
    """The name on the command line (`udl train NAME`), in `model.name`, and a checkpoint's `kind`."""
    config: type
    """Its model section: a udlcli.config.Strict subclass whose `name` is Literal[name], defaults beside the fields."""
    build: Callable[[Any, Any], nn.Module]
    """build(model_config, data_config) -> the model, with fresh weights from torch's current seed."""
    model: type
    """The class build() returns: what the family can do is read from it (issubclass of the protocols)."""
    title: str = ""
    """How messages write it ('AE', 'VAE', 'classifier'); default: the name in capitals."""
    task: str = ""
    """Run folders go under runs/<task>/ (default: the name)."""
    description: str = ""
    """One line: what the family is (printed when a run starts, and in refusals)."""
    command: str = "train"
    """The udl command that makes and resumes its runs: train, denoise or finetune."""
    train_defaults: dict = field(default_factory=dict)
    """Overrides of the train section's defaults that suit this family."""
    data_defaults: dict = field(default_factory=dict)
    """Overrides of the data section's defaults (the GAN's normalisation to [-1, 1])."""
    train_config: type | None = None
    """The train section's class: a TrainConfig subclass with the family's own knobs (None: TrainConfig)."""
    sections: dict[str, type] = field(default_factory=dict)
    """Further spec sections beside model/data/train (the GAN's failure `checks:`), name -> Strict class."""
    callbacks: Callable[[Any], list] | None = None
    """callbacks(ctx) -> trainer callbacks of its own (figures, logs, checks); ctx is a core.lifecycle.FitContext."""
    search: type | None = None
    """`udl tune NAME`'s search space (a udlcli.config.Search subclass); None: the family is not tuned."""
    key_metric: tuple[str, str, str] | None = None
    """(summary key, label, 'min' or 'max'): the number `udl runs` shows for its runs (None: the usual ones)."""
    default: bool = False
    """The family `udl train` trains when neither the command nor a spec names one (the report's AE)."""
    upgrade: Callable[[dict], dict] | None = None
    """upgrade(payload) -> payload: a checkpoint written by an earlier version in today's layout."""
    tiny: dict = field(default_factory=dict)
    """A spec overlay that builds its smallest real model, for quick checks and the conformance suite."""
    check: Callable[[Any], list[str]] | None = None
    """check(spec) -> warnings, run when a spec is resolved, before anything loads or is written:
    raises SpecError for a spec it cannot train (SimCLR's batch without negatives), and returns one
    line for each setting it would ignore (p_uncond without --conditional)."""
    exempt: dict[str, str] = field(default_factory=dict)
    """Conformance checks it cannot meet, each with the reason (tests/test_families.py reads this)."""

    def __post_init__(self) -> None:
        # The defaults that follow from the name (a frozen dataclass sets them this way).
        object.__setattr__(self, "title", self.title or self.name.upper())
        object.__setattr__(self, "task", self.task or self.name)

    def can(self, *protocols: type) -> bool:
        """True when its models have every one of these capabilities."""
        return all(issubclass(self.model, p) for p in protocols)

    def makes(self) -> str:
        """The command line that makes a run of it: 'udl train ae', 'udl denoise'."""
        return (
            f"udl {self.command} {self.name}" if self.command == "train" else f"udl {self.command}"
        )

    def resumes(self) -> str:
        """The command line that continues one of its runs (the run folder follows)."""
        return f"udl {self.command} --resume"


REGISTRY: dict[str, Family] = {}


def register(family: Family) -> Family:
    REGISTRY[family.name] = family
    return family


def unregister(name: str) -> None:
    """Remove a family (a plug-in's test registers a toy family and takes it away again)."""
    REGISTRY.pop(name, None)


def get(name: str) -> Family:
    try:
        return REGISTRY[name]
    except KeyError:
        raise SpecError(
            f"unknown model {name!r}; choose one of: {', '.join(sorted(REGISTRY))}"
        ) from None


def default() -> Family:
    """The family a spec without model.name is of."""
    return next((f for f in REGISTRY.values() if f.default), next(iter(REGISTRY.values())))


def families(*protocols: type, command: str | None = None) -> list[Family]:
    """The registered families that have every one of these capabilities (and are made by `command`)."""
    return [
        f
        for f in REGISTRY.values()
        if f.can(*protocols) and (command is None or f.command == command)
    ]


def title(kind: str | None) -> str:
    """How a run kind is written in messages: the family's title, else the kind itself ('unknown' for none)."""
    return REGISTRY[kind].title if kind in REGISTRY else (kind or "unknown")


def a_kind(kind: str | None) -> str:
    """'an AE', 'a VAE', 'a classifier', 'an unknown' ... for 'X is <a_kind> run'."""
    name = title(kind)
    # An initialism is read letter by letter: "an" before A, E, F, H, I, L, M, N, O, R, S, X.
    vowel = name[0] in "AEFHILMNORSX" if name.isupper() else name[0].lower() in "aeiou"
    return f"{'an' if vowel else 'a'} {name}"
