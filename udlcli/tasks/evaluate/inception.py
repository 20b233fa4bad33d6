"""`udl evaluate --inception-weights FILE`: FID and IS on the standard InceptionV3, comparable with papers, from a file the user has.

The network is torch-fidelity's FeatureExtractorInceptionV3 (the TF-compatible port papers' FIDs
use: bilinear resize to 299 like TensorFlow 1, the 2,048 pool features, the 1,008-way logits). Its
weights come only from the file given, torch-fidelity's `weights-inception-2015-12-05-6726825d.pth`
or pytorch-fid's `pt_inception-2015-12-05-6726825d.pth`: nothing is downloaded. The file is read
with torch.load(weights_only=True) (or as safetensors), so it runs no code; torch-fidelity then gets
a copy holding tensors alone. Grey images are repeated to three channels. The test split's
statistics are cached in the user cache, keyed by the file's SHA-256, the dataset and the shape.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import torch

from udlcli import metrics
from udlcli.data.cache import default_cache_dir
from udlcli.data.fetch import digest
from udlcli.errors import CheckpointError, SpecError, shorten

FEATURES = ("2048", "logits_unbiased")
BATCH = 64


class Inception:
    """The InceptionV3 feature extractor: images (N, C, H, W) in [0, 1] -> pool features (N, 2048), class probabilities (N, 1008)."""

    def __init__(self, path: str | Path, device: torch.device):
        self.path, self.device = Path(path), device
        self.net = _build(self.path).to(device)  # a missing or wrong file: one line, first
        self.sha256 = digest(self.path, "sha256")

    @torch.no_grad()
    def embed(self, x: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
        feats, probs = [], []
        for i in range(0, len(x), BATCH):
            b = (x[i : i + BATCH].clamp(0, 1) * 255).round().to(torch.uint8)
            if b.shape[1] == 1:
                b = b.expand(-1, 3, -1, -1)
            f, logits = self.net(b.to(self.device))
            feats.append(f.double().cpu())
            probs.append(torch.softmax(logits.double(), 1).cpu())
        return torch.cat(feats).numpy(), torch.cat(probs).numpy()

    def reference(self, data) -> np.ndarray:
        """The test split's features, cached (an InceptionV3 pass over 10,000 images takes minutes on a CPU)."""
        key = f"{data.name}-{'x'.join(map(str, data.shape))}-{len(data.test)}-{self.sha256[:16]}"
        cache = default_cache_dir() / "inception" / f"{key}.npy"
        if cache.is_file():
            return np.load(cache, allow_pickle=False)
        feats, _ = self.embed(data.test.images())
        cache.parent.mkdir(parents=True, exist_ok=True)
        np.save(cache, feats)
        return feats

    def metrics(self, real: np.ndarray, x: torch.Tensor) -> dict:
        feats, probs = self.embed(x)
        return {
            "fid": metrics.fid(feats, real),
            "inception_score": metrics.inception_score(probs),
            "n": len(feats),
        }

    def info(self) -> dict:
        return {
            "network": "InceptionV3 (torch-fidelity's TF-compatible port; pool features, 2,048)",
            "weights": str(self.path),
            "sha256": self.sha256,
            "comparable": "with papers' FID and IS at the same n and reference set",
        }


def _state(path: Path) -> dict:
    """The file's tensors, read without running any code; a one-line error for anything else."""
    if not path.is_file():
        raise SpecError(f"--inception-weights {path}: no such file")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path))
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # corrupt, truncated, or holding code: all unreadable for us
        raise CheckpointError(
            f"--inception-weights {path} is not a readable weights file ({shorten(str(e) or e.__class__.__name__)})"
        ) from None
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"--inception-weights {path} holds no state dict of tensors")
    return state


def _build(path: Path) -> torch.nn.Module:
    try:
        from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3
    except ImportError:
        raise SpecError(
            "--inception-weights needs torch-fidelity: pip install 'udlcli[fid]'"
        ) from None
    state = _state(path)
    with tempfile.TemporaryDirectory(prefix="udl-inception-") as tmp:
        clean = Path(tmp) / "weights.pt"
        torch.save(dict(state), clean)  # tensors alone: what torch-fidelity's own torch.load reads
        try:
            return FeatureExtractorInceptionV3("inception-v3-compat", list(FEATURES), str(clean))
        except RuntimeError as e:  # the keys or shapes of another network
            raise CheckpointError(
                f"--inception-weights {path} does not fit InceptionV3 ({shorten(str(e))}); give torch-fidelity's "
                "weights-inception-2015-12-05-6726825d.pth or pytorch-fid's pt_inception-2015-12-05-6726825d.pth"
            ) from None
