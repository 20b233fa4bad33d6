"""The Python API: `udlcli.load(run)` for a trained model, and the engine functions the CLI calls (`udlcli.train`, ...).

    import udlcli
    model = udlcli.load("runs/vae/vae")      # a run folder, one of its checkpoints, or the newest run
    z = model.encode(images)                 # images (B, C, H, W) in [0, 1] -> codes (B, d)
    x_hat = model.reconstruct(images)        # (B, C, H, W) in [0, 1]
    samples = model.sample(64, seed=0)       # (64, C, H, W) in [0, 1], drawn as `udl sample` draws

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
from udlcli.core.loading import load_run
from udlcli.errors import DataError, SpecError

KINDS = ("ae", "vae", "dae", "gan", "classifier", "lenet")


@dataclass
class Model:
    """A trained udl model in eval mode on `device` (the CPU unless load() is told otherwise)."""

    module: torch.nn.Module
    """The torch module: the whole model, or a GAN's generator."""
    kind: str
    spec: Any
    """The run's validated spec (RunSpec, or GanSpec for a GAN)."""
    run_dir: Path
    """The run folder, or the export folder it was loaded from."""
    device: torch.device

    @property
    def shape(self) -> tuple[int, int, int]:
        """(C, H, W) of the images the model takes and makes."""
        return tuple(self.spec.data.image_shape)

    @torch.no_grad()
    def encode(self, images) -> torch.Tensor:
        """Images -> latent codes (B, d) (an AE's bottleneck, a VAE's posterior mean, a classifier's features)."""
        return self._need("encode")(self._images(images)).cpu()

    @torch.no_grad()
    def decode(self, z) -> torch.Tensor:
        """Latent codes (B, d) -> images (B, C, H, W) in [0, 1]."""
        z = torch.as_tensor(np.asarray(z, dtype=np.float32)).to(self.device)
        return self._need("decode")(z).clamp(0, 1).cpu()

    @torch.no_grad()
    def reconstruct(self, images) -> torch.Tensor:
        """Images -> the model's reconstructions (a DAE's: denoised), (B, C, H, W) in [0, 1]."""
        return self._need("reconstruct")(self._images(images)).clamp(0, 1).cpu()

    @torch.no_grad()
    def classify(self, images) -> torch.Tensor:
        """A classifier's class indices (B,)."""
        if self.kind not in ("classifier", "lenet"):
            raise SpecError(f"a {self.kind} model has no classify(); load a finetune or LeNet run")
        return self.module(self._images(images)).argmax(1).cpu()

    def sample(
        self, n: int = 64, seed: int = 0, data_dir: str | Path | None = None
    ) -> torch.Tensor:
        """n new images (n, C, H, W) in [0, 1], seeded, as `udl sample` draws them: a VAE's prior, a
        GAN's generator, or for an AE a Gaussian fitted to its training codes (it loads the run's data)."""
        if self.kind == "vae":
            from udlcli.tasks.sample.vae import prior_samples

            return prior_samples(self.module, n, seed, self.device)
        if self.kind == "gan":
            from udlcli.tasks.sample.gan import draw

            return draw(self.module, self.spec, n, seed, self.device)
        if self.kind == "ae":
            from udlcli.core.latent import decode, encode
            from udlcli.data import load_configured
            from udlcli.tasks.sample.ae import LatentDensity

            data = load_configured(self.spec.data, str(data_dir) if data_dir else None)
            codes = encode(self.module, data.train, self.device)
            return decode(self.module, LatentDensity(codes, 1, seed).draw(n), self.device)
        raise SpecError(f"a {self.kind} model does not sample; load an AE, VAE or GAN run")

    # ---------------------------------------------------------------- helpers

    def _need(self, method: str):
        fn = getattr(self.module, method, None)
        if fn is None:
            raise SpecError(f"a {self.kind} model has no {method}()")
        return fn

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
    from udlcli.core import runs
    from udlcli.core.checkpoint import load_checkpoint

    if path is not None:
        run_dir, ck = runs.resolve_checkpoint(path, root, ("ae",), prefer="best")
        if load_checkpoint(ck).get("kind") == "gan":
            from udlcli.tasks.sample.gan import load_generator

            g, spec, run_dir, _ = load_generator(path, root)
            return g, "gan", spec, run_dir
    run = load_run(path, root, kinds=KINDS)
    return run.model, run.kind, run.spec, run.run_dir


def _from_export(folder: Path):
    """config.json + model.safetensors, as udl export writes them; nothing is unpickled."""
    import json

    from safetensors.torch import load_file

    from udlcli.config import validate
    from udlcli.errors import CheckpointError

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
    if kind == "gan":
        from udlcli.models.gan import build_generator
        from udlcli.tasks.gan.spec import GanSpec

        spec = validate(GanSpec, config["spec"], source=str(folder / "config.json"))
        module = build_generator(spec.model, spec.data.image_shape)
    elif kind in KINDS:
        from udlcli.core.spec import RunSpec
        from udlcli.models import get

        spec = validate(RunSpec, config["spec"], source=str(folder / "config.json"))
        module = get(kind).build(spec.model, spec.data)
    else:
        raise CheckpointError(f"{folder}: config.json names kind {kind!r}, which udl does not know")
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
    """`udl gan`: the report's GAN, or a DCGAN (spec: a dict, YAML path or GanSpec; None: the defaults)."""
    from udlcli.core.lifecycle import RunOptions
    from udlcli.tasks.gan import run as engine
    from udlcli.tasks.gan.spec import GanSpec, resolve_gan_spec

    if not isinstance(spec, GanSpec):
        spec = resolve_gan_spec(*_file_and_flags(spec or {}))
    return engine.train_gan(spec, RunOptions(**options))


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
