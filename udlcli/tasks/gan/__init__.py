"""`udl gan`: the report's GAN on the shared trainer: its spec, the run and its outputs."""

from udlcli.tasks.gan.run import resume_gan, train_gan, upgrade
from udlcli.tasks.gan.spec import (
    DEFAULT_EPOCHS,
    TASK,
    GanChecks,
    GanDataConfig,
    GanSpec,
    GanTrainConfig,
    resolve_gan_spec,
    spec_dict,
)

__all__ = [
    "DEFAULT_EPOCHS",
    "TASK",
    "GanChecks",
    "GanDataConfig",
    "GanSpec",
    "GanTrainConfig",
    "resolve_gan_spec",
    "resume_gan",
    "spec_dict",
    "train_gan",
    "upgrade",
]
