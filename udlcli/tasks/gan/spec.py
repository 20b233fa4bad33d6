"""`udl gan`'s typed spec: the model, the report's GAN normalisation, the training knobs and the failure checks."""

from __future__ import annotations

from typing import Literal, Optional

from pydantic import Field

from udlcli import config
from udlcli.config import DataConfig, Strict
from udlcli.models.gan import GanModelConfig

TASK = "gan"
DEFAULT_EPOCHS = (
    60  # the first of 30, 40, 50, 60 that met the class-balance bar on full MNIST: docs/gan.md
)


class GanTrainConfig(Strict):
    epochs: int = Field(DEFAULT_EPOCHS, ge=1, le=100_000)
    batch_size: int = Field(128, ge=2, le=65_536)
    lr: float = Field(2e-4, gt=0.0, le=1.0)
    """Adam learning rate of G (and of D unless lr_d is set)."""
    lr_d: Optional[float] = Field(None, gt=0.0, le=1.0)
    """D's learning rate; None means the same as lr."""
    beta1: float = Field(0.5, ge=0.0, lt=1.0)
    beta2: float = Field(0.999, ge=0.0, lt=1.0)
    d_steps: int = Field(1, ge=1, le=20)
    """Discriminator updates per generator update (each on the same real batch, fresh noise)."""
    label_smoothing: float = Field(0.0, ge=0.0, lt=0.5)
    """One-sided: D's target for real images is 1 - label_smoothing (0 = off, the report's setting)."""
    n_fixed: int = Field(64, ge=2, le=1024)
    """Size of the fixed noise batch whose samples are saved every epoch (samples/, progress.gif)."""
    seed: int = 0
    device: Literal["auto", "cpu", "cuda", "mps"] = "auto"
    track: Literal["none", "tensorboard", "mlflow"] = "none"
    """Log the run to a tracker as well as its folder (core/tracking.py); an optional extra."""
    mlflow_uri: Optional[str] = None
    """With track: mlflow, where runs go; None: MLflow's default ($MLFLOW_TRACKING_URI, else ./mlruns)."""


class GanChecks(Strict):
    """Failure detection after every epoch (see udlcli/tasks/gan/outputs.py and docs/gan.md)."""

    patience: int = Field(3, ge=1, le=1000)
    """Epochs in a row a symptom must last before it is reported."""
    d_loss_floor: float = Field(0.05, gt=0.0)
    """D loss below this (with G loss climbing) means the discriminator has won."""
    collapse_ratio: float = Field(0.25, gt=0.0, lt=1.0)
    """Mode collapse when the fixed batch's mean pairwise distance is below this fraction of real images'."""


class GanDataConfig(DataConfig):
    """The data section with the report's GAN normalisation: 0.5 and 0.5 in every channel, pixels in [-1, 1] like G's Tanh."""

    mean: Optional[list[float]] = [0.5]
    std: Optional[list[float]] = [0.5]
    """One number for every channel (filled out per channel when the data is loaded)."""


class GanSpec(Strict):
    """A complete, validated description of a GAN run (spec.yaml; readable back with --config)."""

    model: GanModelConfig = GanModelConfig()
    data: GanDataConfig = GanDataConfig()
    train: GanTrainConfig = GanTrainConfig()
    checks: GanChecks = GanChecks()


def resolve_gan_spec(
    config_path: str | None = None,
    flags: dict[str, object] | None = None,
    sets: list[str] | None = None,
) -> GanSpec:
    """Defaults < YAML file < CLI flags < --set overrides, validated once (one-line SpecError on bad input)."""
    file_spec = config.load_yaml(config_path) if config_path else {}
    return config.layered(
        GanSpec,
        {},
        file_spec,
        flags,
        sets,
        source=f"GAN spec ({config_path})" if config_path else "GAN spec",
    )


def spec_dict(spec: GanSpec) -> dict:
    return spec.model_dump(mode="json")
