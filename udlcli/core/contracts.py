"""What a model can do, as runtime-checkable protocols: the trainer and the commands ask these, never a family's name.

Images are float tensors in [0, 1] of shape (B, C, H, W) on the model's device (C, H, W = 1, 28, 28
for MNIST); labels are int64 (B,); codes and features are (B, d). Every dict of numbers a model
returns holds scalar tensors (batch means). `rows` is a udlcli.rows.Rows: the model draws its
per-image noise through it, so several ranks draw what one process would.

    Trainable      loss(x, y, rows) -> {"loss": ..., other terms}      the trainer minimises "loss"
    HasParamGroups param_groups(train_config) -> [groups]             optimiser groups (an encoder's own lr)
    Adversarial    configure_optimizers(cfg) -> {name: opt}            a model that steps its own optimisers
                   train_step(x, y, optimizers, rows) -> {numbers}     (the GAN): the trainer calls this instead
    Steps          after_step(progress)                                 what follows each optimiser step (a target network)
    Reconstructs   encode(x) -> z, decode(z) -> x, reconstruct(x) -> x
    Encodes        feature_layers() -> {name: width}, feature_extractor(layer) -> module: images -> (B, width)
    Generates      generate(n, generator, **options) -> images         new images, seeded
    Iterative      trajectory(generator, frames, **options) -> frames  one sample from noise to image
    FitsSampler    fit_sampler(codes, **options)                        a generator fitted to training codes first (the AE)
    SamplesPrior   sample_prior(n, generator) -> images                decoded draws z ~ N(0, I) (the VAE)
    Classifies     encode(x) -> features, classify(features) -> logits  a classifier over precomputed features
    Exports        graphs() -> {name: Graph}                            what `udl export --format onnx` writes

The protocols hold methods only, so `issubclass(model_class, Protocol)` answers for a family
before any model is built (registry.Family.can).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import torch

from udlcli.errors import SpecError


@runtime_checkable
class Trainable(Protocol):
    """A model the trainer fits by minimising loss(x, y, rows)["loss"]; the other keys are logged as train_<k> / val_<k>."""

    def loss(
        self, x: torch.Tensor, y: torch.Tensor, rows: Any = ...
    ) -> dict[str, torch.Tensor]: ...


@runtime_checkable
class HasParamGroups(Protocol):
    """A Trainable that gives the optimiser its own parameter groups (e.g. a fine-tuned encoder at another lr)."""

    def param_groups(self, cfg: Any) -> list[dict]: ...


@runtime_checkable
class Adversarial(Protocol):
    """A model with several optimisers that takes its own steps (the GAN's D and G).

    train_step(x, y, optimizers, rows) updates the weights and returns the step's numbers (detached);
    the trainer averages them per step over an epoch, checks them for NaN and logs them unprefixed.
    """

    def configure_optimizers(self, cfg: Any) -> dict[str, torch.optim.Optimizer]: ...

    def train_step(
        self,
        x: torch.Tensor,
        y: torch.Tensor,
        optimizers: dict[str, torch.optim.Optimizer],
        rows: Any = ...,
    ) -> dict[str, torch.Tensor]: ...


@runtime_checkable
class Steps(Protocol):
    """A model with state the optimiser does not train (BYOL's target network): after_step(progress)
    runs after every optimiser step, progress the share of the run's steps done (0 to 1)."""

    def after_step(self, progress: float) -> None: ...


@runtime_checkable
class Reconstructs(Protocol):
    """An autoencoder: images (B, C, H, W) -> codes (B, d) -> images; udl train adds reconstruction figures and test_mse."""

    def encode(self, x: torch.Tensor) -> torch.Tensor: ...

    def decode(self, z: torch.Tensor) -> torch.Tensor: ...

    def reconstruct(self, x: torch.Tensor) -> torch.Tensor: ...


@runtime_checkable
class Encodes(Protocol):
    """A model whose layers map images to features: what `udl embed` maps and `udl finetune` puts a head on.

    feature_layers() names the layers it offers with their widths, the first being the default (an
    AE's code); feature_extractor(layer) is a module sharing the model's weights, images (B, C, H, W)
    in [0, 1] -> features (B, width).
    """

    def feature_layers(self) -> dict[str, int]: ...

    def feature_extractor(self, layer: str | None = None) -> torch.nn.Module: ...


@runtime_checkable
class Generates(Protocol):
    """A model that makes new images: generate(n, generator, **options) -> (n, C, H, W) in [0, 1] on its device.

    Noise comes from `generator` (a seeded CPU generator gives the same images on any device). The
    options a family takes (an AE's mixture components, a diffusion model's steps) are keyword
    arguments of generate; `udl sample` passes only those the user gave and refuses the rest.
    """

    def generate(
        self, n: int, generator: torch.Generator | None = None, **options
    ) -> torch.Tensor: ...


@runtime_checkable
class Iterative(Protocol):
    """A generator that steps from noise to image (diffusion, flow): trajectory() shows one sample's way, frame by frame."""

    def trajectory(
        self, generator: torch.Generator | None = None, frames: int = 8, **options
    ) -> torch.Tensor: ...


@runtime_checkable
class FitsSampler(Protocol):
    """A generator that is fitted to the training images' codes before it draws (the AE's Gaussian)."""

    def fit_sampler(self, codes: torch.Tensor, **options) -> dict: ...


@runtime_checkable
class SamplesPrior(Protocol):
    """A generative model with a N(0, I) prior: n images decoded from z drawn from `generator` on the CPU."""

    def sample_prior(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor: ...


@runtime_checkable
class Classifies(Protocol):
    """A classifier whose head can run on features computed once: forward(x) == classify(encode(x))."""

    def encode(self, x: torch.Tensor) -> torch.Tensor: ...

    def classify(self, features: torch.Tensor) -> torch.Tensor: ...


@runtime_checkable
class Exports(Protocol):
    """A model that names its ONNX graphs: graphs() -> {name: Graph}."""

    def graphs(self) -> dict[str, Graph]: ...


def layer_of(layers: dict[str, int], layer: str | None, what: str) -> str:
    """The layer asked for, or the first (the default); a name the model does not have is a ValueError."""
    if layer is None:
        return next(iter(layers))
    if layer not in layers:
        raise SpecError(f"--features {layer}: {what} has no such layer; it has {', '.join(layers)}")
    return layer


@dataclass
class Graph:
    """One exported graph: a module and example inputs, named; batch sizes stay free in the file."""

    module: torch.nn.Module
    inputs: dict[str, torch.Tensor]
    """input name -> an example tensor (B, ...) with B >= 2; every input's first dimension is the batch."""
    doc: str = ""
    """One line for the model card: what goes in and what comes out."""

    @classmethod
    def of(cls, model: torch.nn.Module, method: str, doc: str = "", clamp: bool = False, **inputs):
        """A graph of one method of a model (its forward is that method), e.g. Graph.of(ae, "encode", images=x)."""
        return cls(Method(model, method, clamp), inputs, doc)


class Method(torch.nn.Module):
    """One method of a model as a module's forward, so torch.onnx traces that method alone."""

    def __init__(self, model: torch.nn.Module, method: str, clamp: bool = False):
        super().__init__()
        self.model, self.method, self.clamp = model, method, clamp

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        out = getattr(self.model, self.method)(*inputs)
        return out.clamp(0, 1) if self.clamp else out


ABILITIES: dict[type, tuple[str, tuple[str, ...]]] = {
    Trainable: ("be trained on a loss", ("loss",)),
    Steps: ("update itself after each step", ("after_step",)),
    Reconstructs: ("reconstruct images", ("encode", "decode", "reconstruct")),
    Encodes: ("encode images into features", ("feature_layers", "feature_extractor")),
    Generates: ("generate images", ("generate",)),
    Iterative: ("show a sample's way from noise", ("trajectory",)),
    FitsSampler: ("fit a sampler to its codes", ("fit_sampler",)),
    SamplesPrior: ("decode samples of a prior", ("sample_prior",)),
    Classifies: ("classify images", ("encode", "classify")),
    Exports: ("export ONNX graphs", ("graphs",)),
}
"""What each capability lets a command do, and the methods that give it: the words of a refusal."""
