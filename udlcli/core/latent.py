"""Latent-space helpers shared by `udl embed`, `udl sample` and `udl evaluate`: a run's dataset, batched features, codes and decoding."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from udlcli.config import MNIST_SHAPE
from udlcli.core.loading import LoadedRun
from udlcli.data import ImageDataset, TensorImages, load_configured


def run_dataset(loaded: LoadedRun, data_dir: str | Path | None = None) -> ImageDataset:
    """The dataset the run was trained on (its spec's name and limit), read from --data-dir when given."""
    d = loaded.spec.data
    return load_configured(d, str(data_dir) if data_dir else None)


@torch.no_grad()
def encode(
    model: torch.nn.Module, split: TensorImages, device: torch.device, batch_size: int = 2048
) -> np.ndarray:
    """Codes of every image of a split: float32 (N, d) on the CPU. A VAE's encode() gives its means μ."""
    model.eval()
    out = [model.encode(x.to(device)).float().cpu() for x, _ in split.batches(batch_size)]
    return (
        torch.cat(out).numpy()
        if out
        else np.zeros((0, getattr(model, "latent_dim", 0)), np.float32)
    )


@torch.no_grad()
def features_of(
    model: torch.nn.Module,
    split: TensorImages,
    device: torch.device,
    layer: str | None = None,
    batch_size: int = 2048,
) -> np.ndarray:
    """Features of every image of a split from an Encodes model's layer (None: its default): float32 (N, width) on the CPU."""
    model.eval()
    net = model.feature_extractor(layer).to(device)
    out = [net(x.to(device)).float().cpu() for x, _ in split.batches(batch_size)]
    width = model.feature_layers()[layer or next(iter(model.feature_layers()))]
    return torch.cat(out).numpy() if out else np.zeros((0, width), np.float32)


@torch.no_grad()
def decode(
    model: torch.nn.Module,
    z: np.ndarray | torch.Tensor,
    device: torch.device,
    batch_size: int = 2048,
) -> torch.Tensor:
    """Images (N, 1, 28, 28) float32 in [0, 1] on the CPU from codes (N, d)."""
    model.eval()
    z = torch.as_tensor(np.asarray(z, dtype=np.float32))
    out = [
        model.decode(z[i : i + batch_size].to(device)).clamp(0, 1).float().cpu()
        for i in range(0, len(z), batch_size)
    ]
    return torch.cat(out) if out else torch.zeros(0, *getattr(model, "shape", MNIST_SHAPE))


def class_index(token: str, classes: list[str]) -> int:
    """A class given by name (case-insensitive) or by label number -> its label; -1 when there is none."""
    t = token.strip()
    for i, c in enumerate(classes):
        if c.lower() == t.lower():
            return i
    if t.lstrip("-").isdigit() and 0 <= int(t) < len(classes):
        return int(t)
    return -1
