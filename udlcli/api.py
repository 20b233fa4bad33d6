"""The Python API: `udlcli.load(run)` for a trained model, and the engine functions the CLI calls (`udlcli.train`, ...).

    import udlcli
    model = udlcli.load("runs/vae/vae")      # a run folder, one of its checkpoints, or the newest run
    z = model.encode(images)                 # images (B, C, H, W) in [0, 1] -> codes (B, d)
    x_hat = model.reconstruct(images)        # (B, C, H, W) in [0, 1]
    samples = model.sample(64, seed=0)       # (64, C, H, W) in [0, 1], drawn as `udl sample` draws
                                             # (each works when the model can: a one-line error otherwise)

    result = udlcli.train({"model": {"name": "ae"}, "train": {"epochs": 2}})   # or a YAML path

Images may be float tensors in [0, 1], uint8 tensors or NumPy arrays, (B, C, H, W) or (B, H, W);
they must have the run's shape (a one-line error says which). Loading reads checkpoints with
`torch.load(weights_only=True)`: nothing from disk runs as code.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from udlcli.config import flatten
from udlcli.core import contracts
from udlcli.core.loading import cannot, load_run
from udlcli.errors import DataError, SpecError


@dataclass
class Model:
    """A trained udl model in eval mode on `device` (the CPU unless load() is told otherwise)."""

    module: torch.nn.Module
    """The torch module (a GAN's holds G and D)."""
    kind: str
    """Its family's name (udlcli.models.REGISTRY)."""
    spec: Any
    """The run's validated spec (its family's RunSpec class)."""
    run_dir: Path
    """The run folder, or the export folder it was loaded from."""
    device: torch.device

    @property
    def shape(self) -> tuple[int, int, int]:
        """(C, H, W) of the images the model takes and makes."""
        return tuple(self.spec.data.image_shape)

    @torch.no_grad()
    def encode(self, images, layer: str | None = None) -> torch.Tensor:
        """Images -> features (B, d): a layer of an encoder (None: its default, an AE's code, a VAE's
        posterior mean, a self-supervised backbone's output), or a classifier's features."""
        x = self._images(images)
        if isinstance(self.module, contracts.Encodes):
            return self.module.feature_extractor(layer)(x).cpu()
        return self._need(contracts.Classifies).encode(x).cpu()

    @torch.no_grad()
    def decode(self, z) -> torch.Tensor:
        """Latent codes (B, d) -> images (B, C, H, W) in [0, 1]."""
        z = torch.as_tensor(np.asarray(z, dtype=np.float32)).to(self.device)
        return self._need(contracts.Reconstructs).decode(z).clamp(0, 1).cpu()

    @torch.no_grad()
    def reconstruct(self, images) -> torch.Tensor:
        """Images -> the model's reconstructions (a DAE's: denoised), (B, C, H, W) in [0, 1]."""
        return (
            self._need(contracts.Reconstructs).reconstruct(self._images(images)).clamp(0, 1).cpu()
        )

    @torch.no_grad()
    def classify(self, images) -> torch.Tensor:
        """A classifier's class indices (B,)."""
        m = self._need(contracts.Classifies)
        return m.classify(m.encode(self._images(images))).argmax(1).cpu()

    def sample(
        self, n: int = 64, seed: int = 0, data_dir: str | Path | None = None, **options
    ) -> torch.Tensor:
        """n new images (n, C, H, W) in [0, 1], seeded, as `udl sample` draws them (a model fitted to
        its training codes first, like the AE's Gaussian, loads the run's data for that)."""
        from udlcli.core import generate
        from udlcli.core.loading import LoadedRun

        self._need(contracts.Generates)
        fit_opts, gen_opts = generate.split_options(self.module, options, "udlcli.Model.sample")
        if isinstance(self.module, contracts.FitsSampler):
            loaded = LoadedRun(self.module, self.spec, self.run_dir, self.run_dir, {}, self.kind)
            generate.fit(loaded, self.device, seed, data_dir, **fit_opts)
        return generate.draw(self.module, n, seed, self.device, **gen_opts)

    # ---------------------------------------------------------------- helpers

    def _need(self, capability: type):
        if not isinstance(self.module, capability):
            raise SpecError(cannot(self.kind, [capability]))
        return self.module

    def _images(self, images: Any) -> torch.Tensor:
        x = images if isinstance(images, torch.Tensor) else torch.as_tensor(np.asarray(images))
        x = x.float() / 255.0 if x.dtype == torch.uint8 else x.float()
        if x.ndim == 3 and self.shape[0] == 1:
            x = x.unsqueeze(1)
        if x.ndim != 4 or tuple(x.shape[1:]) != self.shape:
            want = ", ".join(map(str, self.shape))
            raise DataError(
                f"images of shape {tuple(x.shape)}: this {self.kind} run takes (B, {want}) images in [0, 1]"
            )
        return x.to(self.device)


def load(path: str | Path | None = None, device: str = "cpu", root: str | Path = "runs") -> Model:
    """A trained model from a run folder, a checkpoint, an export folder (udl export), or the newest
    run under root (path None)."""
    from udlcli.core.device import resolve_device

    dev = resolve_device(device)
    p = Path(path) if path is not None else None
    if p is not None and (p / "config.json").is_file():
        module, kind, spec, where = _from_export(p)
    else:
        module, kind, spec, where = _from_run(p, root)
    return Model(module.to(dev).eval(), kind, spec, where, dev)


def _from_run(path: Path | None, root):
    run = load_run(path, root)
    return run.model, run.kind, run.spec, run.run_dir


def _from_export(folder: Path):
    """config.json + model.safetensors, as udl export writes them; nothing is unpickled."""
    import json

    from safetensors.torch import load_file

    from udlcli.core.spec import parse_spec
    from udlcli.errors import CheckpointError
    from udlcli.models import REGISTRY

    try:
        config = json.loads((folder / "config.json").read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise CheckpointError(f"{folder / 'config.json'} is not valid JSON ({e})") from None
    if not isinstance(config, dict) or config.get("format") != "udl-export/1":
        raise CheckpointError(
            f"{folder} is not a udl export (its config.json has no udl-export/1 format)"
        )
    weights = folder / "model.safetensors"
    if not weights.is_file():
        raise CheckpointError(f"{folder}: no model.safetensors; export it again with udl export")
    kind = config.get("kind")
    if kind not in REGISTRY:
        raise CheckpointError(f"{folder}: config.json names kind {kind!r}, which udl does not know")
    spec = parse_spec(config["spec"], source=str(folder / "config.json"))
    module = REGISTRY[kind].build(spec.model, spec.data)
    try:
        module.load_state_dict(load_file(str(weights)))
    except Exception as e:  # a corrupt file or weights of another spec
        first = (str(e).strip().splitlines() or [e.__class__.__name__])[0]
        raise CheckpointError(
            f"{weights}: cannot be loaded into a {kind} of this spec ({first[:160]})"
        ) from None
    return module, kind, spec, folder


def train(spec, **options):
    """`udl train`: spec is a RunSpec, a dict with model/data/train sections, or a YAML path.

    options are RunOptions' fields (out, name). Returns the TrainResult (run_dir, summary, history).
    """
    from udlcli.core.lifecycle import RunOptions
    from udlcli.tasks.train import train as engine

    return engine(_run_spec(spec), RunOptions(**options))


def denoise(spec, compare: str | Path | None = None, **options):
    """`udl denoise`: train a DAE (spec: a dict, YAML path or RunSpec, model.name dae) and measure it
    in PSNR/SSIM; returns the evaluation (its train_summary holds the training numbers)."""
    from udlcli.core.lifecycle import RunOptions
    from udlcli.tasks.denoise import run as engine

    if isinstance(spec, dict):
        spec = engine.denoise_spec(None, flatten(spec), None, None)
    elif isinstance(spec, (str, Path)):
        spec = engine.denoise_spec(str(spec), {}, None, None)
    return engine.train_and_evaluate(spec, RunOptions(**options), compare)


def finetune(spec, **options):
    """`udl finetune`: a classifier on a trained AE's encoder (spec: a dict with finetune.ae, or a YAML path)."""
    from udlcli.core.lifecycle import RunOptions
    from udlcli.tasks import finetune as engine

    if not isinstance(spec, engine.FinetuneSpec):
        spec = engine.resolve_finetune_spec(*_file_and_flags(spec))
    return engine.finetune(spec, RunOptions(**options))


def gan(spec=None, **options):
    """`udl gan` (`udl train gan`): the report's GAN, or a DCGAN (spec: a dict, YAML path or RunSpec; None: the defaults)."""
    from udlcli.core.lifecycle import RunOptions
    from udlcli.core.spec import RunSpec, resolve_spec
    from udlcli.tasks.train import train as engine

    if not isinstance(spec, RunSpec):
        path, flags = _file_and_flags(spec or {})
        spec = resolve_spec("gan", path, flags, None)
    return engine(spec, RunOptions(**options))


def _file_and_flags(spec) -> tuple[str | None, dict]:
    if isinstance(spec, (str, Path)):
        return str(spec), {}
    if isinstance(spec, dict):
        return None, flatten(spec)
    raise SpecError(f"give a spec as a dict or a YAML path, not {type(spec).__name__}")


def _run_spec(spec):
    from udlcli.core.spec import RunSpec, resolve_spec

    if isinstance(spec, RunSpec):
        return spec
    if isinstance(spec, (str, Path)):
        return resolve_spec(None, str(spec), {}, None)
    if isinstance(spec, dict):
        return resolve_spec((spec.get("model") or {}).get("name"), None, flatten(spec), None)
    raise SpecError(
        f"udlcli.train: give a RunSpec, a dict or a YAML path, not {type(spec).__name__}"
    )
