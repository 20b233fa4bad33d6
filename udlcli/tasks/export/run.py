"""`udl export RUN --format safetensors|onnx`: a trained model as files other programs load, with its config and a model card.

    safetensors   model.safetensors (the weights, no code), config.json (the spec, the image shape,
                  the kind), README.md (a model card: data, measured numbers, the command line)
    onnx          the same config.json and README.md, and one graph per part: an AE, VAE or DAE's
                  encoder.onnx (images -> codes) and decoder.onnx (codes -> images), a GAN's
                  generator.onnx (noise -> images), a classifier's classifier.onnx (images -> logits)

Every ONNX graph takes a batch of any size, is checked against the torch model with onnxruntime
when that is installed, and reads and writes images in [0, 1] as the Python API does. An export of
either format loads back with udlcli.load(folder) (the safetensors weights; ONNX folders carry them too).
"""

from __future__ import annotations

import json
import shutil
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch
from torch import nn

from udlcli import __version__
from udlcli.api import Model, load
from udlcli.errors import KIND_NAMES, CheckpointError, SpecError, a_kind

EXPORT_FORMAT = "udl-export/1"
Format = Literal["safetensors", "onnx"]


@dataclass
class ExportResult:
    out: Path
    files: list[Path]
    checked: dict[str, float]
    """ONNX graph -> the largest |onnxruntime - torch| on a test batch (empty when onnxruntime is missing)."""


def export(
    run: str | Path, fmt: str = "safetensors", out: str | Path | None = None
) -> ExportResult:
    """Export a run folder (or checkpoint) to `out` (default RUN/export/<format>/); refuses to overwrite."""
    if fmt not in ("safetensors", "onnx"):
        raise SpecError(f"--format {fmt!r}: choose safetensors or onnx")
    model = load(run)  # a one-line CheckpointError for a folder without weights
    target = Path(out) if out else model.run_dir / "export" / fmt
    if target.exists() and any(target.iterdir()):
        raise CheckpointError(f"{target} already holds files; give another --out or remove it")
    if fmt == "onnx":
        try:
            import onnx  # noqa: F401  (torch.onnx writes its graphs with it)
        except ImportError:
            raise SpecError(
                "--format onnx needs the onnx package: pip install 'udlcli[onnx]' (onnxruntime comes with it, for the check)"
            ) from None
    graphs = _graphs(model) if fmt == "onnx" else {}
    # Everything is written to a temporary folder beside the target and renamed at the end, so a
    # graph that fails to export leaves nothing behind.
    tmp = target.with_name(target.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        names = [_weights(model, tmp), _config(model, tmp, fmt), _card(model, tmp, target, fmt)]
        checked: dict[str, float] = {}
        for name, (module, example) in graphs.items():
            path = tmp / f"{name}.onnx"
            _onnx(module, example, path)
            names.append(path)
            diff = _check(module, example, path)
            if diff is not None:
                checked[name] = diff
        if target.exists():
            target.rmdir()  # empty (checked above)
        tmp.rename(target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return ExportResult(target, [target / f.name for f in names], checked)


# ---------------------------------------------------------------- the files


def _weights(model: Model, target: Path) -> Path:
    from safetensors.torch import save_file

    state = {k: v.detach().cpu().contiguous() for k, v in model.module.state_dict().items()}
    path = target / "model.safetensors"
    save_file(state, str(path), metadata={"format": EXPORT_FORMAT, "kind": model.kind})
    return path


def _config(model: Model, target: Path, fmt: str) -> Path:
    spec = model.spec.model_dump(mode="json")
    config = {
        "format": EXPORT_FORMAT,
        "kind": model.kind,
        "shape": list(model.shape),
        "spec": spec,
        "exported_as": fmt,
        "udl": __version__,
        "source": str(model.run_dir),
    }
    path = target / "config.json"
    path.write_text(json.dumps(config, indent=2) + "\n")
    return path


def _card(model: Model, folder: Path, target: Path, fmt: str) -> Path:
    """README.md: what the model is, what it was trained on, what was measured, how to load it."""
    summary = _read(model.run_dir / "summary.json")
    meta = (_yaml(model.run_dir / "spec.yaml") or {}).get("meta") or {}
    data = summary.get("dataset") or meta.get("dataset") or {}
    numbers = {
        k: v
        for k, v in summary.items()
        if isinstance(v, (int, float)) and not isinstance(v, bool) and k not in ("params",)
    }
    numbers.update({f"test {k}": v for k, v in (summary.get("test") or {}).items()})
    rows = "\n".join(f"| {k} | {v:.6g} |" for k, v in numbers.items())
    c, h, w = model.shape
    graphs = {
        "gan": "`generator.onnx`: noise (B, d) -> images (B, C, H, W) in [0, 1]",
        "classifier": "`classifier.onnx`: images -> logits (B, classes)",
        "lenet": "`classifier.onnx`: images -> logits (B, classes)",
    }.get(
        model.kind,
        "`encoder.onnx`: images -> codes (B, d); `decoder.onnx`: codes -> images in [0, 1]",
    )
    name = KIND_NAMES.get(model.kind, model.kind)
    article = a_kind(model.kind)
    text = f"""# {name} trained with udl

{article[0].upper() + article[1:]} model for {c}x{h}x{w} images, exported from `{model.run_dir}` by udl {__version__}.

## Data

{data.get("name", "?")}: {data.get("train_size", "?")} training images, {data.get("test_size", "?")} test images
(source: {data.get("source", "?")}).

## Measured (summary.json of the run)

| metric | value |
|---|---|
{rows or "| (no summary: the run did not finish) | |"}

## How it was made

```
{meta.get("command") or "(command not recorded)"}
```

The full spec is in `config.json` (`spec`), the weights in `model.safetensors`.

## Loading

```python
import udlcli
model = udlcli.load("{target}")
```
{"" if fmt != "onnx" else chr(10) + "ONNX graphs, batch size free, images in [0, 1]: " + graphs + "." + chr(10)}"""
    path = folder / "README.md"
    path.write_text(text)
    return path


def _read(path: Path) -> dict:
    try:
        return json.loads(path.read_text()) if path.is_file() else {}
    except (json.JSONDecodeError, UnicodeDecodeError):
        return {}


def _yaml(path: Path) -> dict | None:
    import yaml

    try:
        return yaml.safe_load(path.read_text()) if path.is_file() else None
    except yaml.YAMLError:
        return None


# ---------------------------------------------------------------- ONNX


class _Call(nn.Module):
    """One method of a model as a module's forward, so torch.onnx traces that method alone."""

    def __init__(self, model: nn.Module, method: str, clamp: bool = False):
        super().__init__()
        self.model, self.method, self.clamp = model, method, clamp

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = getattr(self.model, self.method)(x)
        return out.clamp(0, 1) if self.clamp else out


class _Pixels(nn.Module):
    """A GAN generator whose output is images in [0, 1] (its own is normalised, [-1, 1] by default)."""

    def __init__(self, g: nn.Module, mean: list[float], std: list[float]):
        super().__init__()
        self.g = g
        self.register_buffer("mean", torch.tensor(mean).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std).view(1, -1, 1, 1))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return (self.g(z) * self.std + self.mean).clamp(0, 1)


def _graphs(model: Model) -> dict[str, tuple[nn.Module, torch.Tensor]]:
    """name -> (module, example input) for every graph of the model, or a one-line error."""
    net = model.module.cpu().eval()
    torch.manual_seed(0)
    images = torch.rand(2, *model.shape)
    if model.kind == "gan":
        d = model.spec.data
        pixels = _Pixels(net, d.mean or [0.5], d.std or [0.5])
        return {"generator": (pixels, torch.randn(2, model.spec.model.noise_dim))}
    if model.kind in ("classifier", "lenet"):
        return {"classifier": (_Call(net, "forward"), images)}
    if all(hasattr(net, m) for m in ("encode", "decode")):
        with torch.no_grad():
            z = net.encode(images)
        return {
            "encoder": (_Call(net, "encode"), images),
            "decoder": (_Call(net, "decode", True), z),
        }
    raise SpecError(f"--format onnx: a {model.kind} model has no graph udl can export")


def _onnx(module: nn.Module, example: torch.Tensor, path: Path) -> None:
    # The TorchScript exporter (dynamo=False) needs no onnxscript and leaves the batch size free;
    # torch marks it deprecated, which is not the user's concern here.
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            torch.onnx.export(
                module.eval(),
                (example,),
                str(path),
                input_names=["input"],
                output_names=["output"],
                dynamic_axes={"input": {0: "batch"}, "output": {0: "batch"}},
                dynamo=False,
            )
    except (
        Exception
    ) as e:  # the exporter raises many types; each means this graph cannot be exported
        path.unlink(missing_ok=True)
        first = (str(e).strip().splitlines() or [e.__class__.__name__])[0]
        raise SpecError(
            f"--format onnx: torch.onnx could not export {path.stem} ({first[:160]})"
        ) from None


def _check(module: nn.Module, example: torch.Tensor, path: Path) -> float | None:
    """The largest difference between onnxruntime and torch on a batch of 5 (None: no onnxruntime)."""
    try:
        import onnxruntime as ort
    except ImportError:
        return None
    x = torch.cat([example, example[:1] * 0.5, example * 0.25])[:5]
    with torch.no_grad():
        want = module(x).numpy()
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = session.run(None, {"input": x.numpy()})[0]
    return float(abs(got - want).max())
