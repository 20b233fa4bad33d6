"""What a model can do, as runtime-checkable protocols: the trainer and the commands ask `isinstance`, never `hasattr`.

Images are float tensors in [0, 1] of shape (B, C, H, W) on the model's device (C, H, W = 1, 28, 28
for MNIST); labels are int64 (B,); codes are (B, d). Every dict of numbers a model returns holds
scalar tensors (batch means).

    Trainable      loss(x, y) -> {"loss": ..., other terms}     the trainer minimises "loss"
    HasParamGroups param_groups(train_config) -> [groups]        optimiser groups (an encoder's own lr)
    Adversarial    configure_optimizers(cfg) -> {name: opt}      a model that steps its own optimisers
                   train_step(x, y, optimizers) -> {numbers}     (the GAN): the trainer calls this instead
    Reconstructs   encode(x) -> z, decode(z) -> x, reconstruct(x) -> x
    SamplesPrior   sample_prior(n, generator) -> images          decoded draws z ~ N(0, I) (the VAE)
    Classifies     encode(x) -> features, classify(features) -> logits   a classifier over precomputed features
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import torch


@runtime_checkable
class Trainable(Protocol):
    """A model the trainer fits by minimising loss(x, y)["loss"]; the other keys are logged as train_<k> / val_<k>."""

    def loss(self, x: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]: ...


@runtime_checkable
class HasParamGroups(Protocol):
    """A Trainable that gives the optimiser its own parameter groups (e.g. a fine-tuned encoder at another lr)."""

    def param_groups(self, cfg: Any) -> list[dict]: ...


@runtime_checkable
class Adversarial(Protocol):
    """A model with several optimisers that takes its own steps (the GAN's D and G).

    train_step(x, y, optimizers) updates the weights and returns the step's numbers (detached);
    the trainer averages them per step over an epoch, checks them for NaN and logs them unprefixed.
    """

    def configure_optimizers(self, cfg: Any) -> dict[str, torch.optim.Optimizer]: ...

    def train_step(
        self, x: torch.Tensor, y: torch.Tensor, optimizers: dict[str, torch.optim.Optimizer]
    ) -> dict[str, torch.Tensor]: ...


@runtime_checkable
class Reconstructs(Protocol):
    """An autoencoder: images (B, C, H, W) -> codes (B, d) -> images; udl train adds reconstruction figures and test_mse."""

    def encode(self, x: torch.Tensor) -> torch.Tensor: ...

    def decode(self, z: torch.Tensor) -> torch.Tensor: ...

    def reconstruct(self, x: torch.Tensor) -> torch.Tensor: ...


@runtime_checkable
class SamplesPrior(Protocol):
    """A generative model with a prior: n images decoded from z ~ N(0, I), z drawn from `generator` on the CPU."""

    def sample_prior(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor: ...


@runtime_checkable
class Classifies(Protocol):
    """A classifier whose head can run on features computed once: forward(x) == classify(encode(x))."""

    def encode(self, x: torch.Tensor) -> torch.Tensor: ...

    def classify(self, features: torch.Tensor) -> torch.Tensor: ...
