"""`udl export RUN --format safetensors|onnx`: a trained model as files other programs load, with its config and a model card.

    safetensors   model.safetensors (the weights, no code), config.json (the spec, the image shape,
                  the kind), README.md (a model card: data, measured numbers, the command line)
    onnx          the same config.json and README.md, and one graph for each the family declares
                  (its model's graphs(), core/contracts.py's Exports): an autoencoder's encoder.onnx
                  (images -> codes) and decoder.onnx (codes -> images), a GAN's generator.onnx
                  (noise -> images), a classifier's classifier.onnx (images -> logits), ...

Every ONNX graph takes a batch of any size on every input, is checked against the torch model with
onnxruntime when that is installed, and reads and writes images in [0, 1] as the Python API does.
An export of either format loads back with udlcli.load(folder) (the safetensors weights; ONNX
folders carry them too). A run that kept an average of its weights (train.ema) exports the average.
"""

from __future__ import annotations

import json
import shutil
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch

from udlcli import __version__
from udlcli.core.contracts import Exports, Graph
from udlcli.core.loading import LoadedRun, cannot, load_run
from udlcli.errors import CheckpointError, SpecError
from udlcli.models.registry import a_kind, title

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
    model = load_run(run)  # a one-line CheckpointError for a folder without weights
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
        for name, graph in graphs.items():
            path = tmp / f"{name}.onnx"
            _onnx(graph, path)
            names.append(path)
            diff = _check(graph, path)
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


def _shape(model: LoadedRun) -> tuple[int, int, int]:
    return tuple(model.spec.data.image_shape)


def _weights(model: LoadedRun, target: Path) -> Path:
    from safetensors.torch import save_file

    state = {k: v.detach().cpu().contiguous() for k, v in model.model.state_dict().items()}
    path = target / "model.safetensors"
    save_file(state, str(path), metadata={"format": EXPORT_FORMAT, "kind": model.kind})
    return path


def _config(model: LoadedRun, target: Path, fmt: str) -> Path:
    spec = model.spec.model_dump(mode="json")
    config = {
        "format": EXPORT_FORMAT,
        "kind": model.kind,
        "shape": list(_shape(model)),
        "spec": spec,
        "exported_as": fmt,
        "udl": __version__,
        "source": str(model.run_dir),
    }
    path = target / "config.json"
    path.write_text(json.dumps(config, indent=2) + "\n")
    return path


def _card(model: LoadedRun, folder: Path, target: Path, fmt: str) -> Path:
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
    c, h, w = _shape(model)
    declared = model.model.graphs() if isinstance(model.model, Exports) else {}
    graphs = "; ".join(f"`{k}.onnx` ({', '.join(g.inputs)}): {g.doc}" for k, g in declared.items())
    name = title(model.kind)
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


def _graphs(model: LoadedRun) -> dict[str, Graph]:
    """The graphs the model declares, in eval mode on the CPU, or a one-line error."""
    net = model.model.cpu().eval()
    if not isinstance(net, Exports):
        raise SpecError(f"--format onnx: {cannot(model.kind, [Exports])}")
    torch.manual_seed(0)
    return net.graphs()


def _onnx(graph: Graph, path: Path) -> None:
    # The TorchScript exporter (dynamo=False) needs no onnxscript and leaves the batch size free;
    # torch marks it deprecated, which is not the user's concern here.
    names = list(graph.inputs)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            torch.onnx.export(
                graph.module.eval(),
                tuple(graph.inputs.values()),
                str(path),
                input_names=names,
                output_names=["output"],
                dynamic_axes={**{k: {0: "batch"} for k in names}, "output": {0: "batch"}},
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


def _check(graph: Graph, path: Path) -> float | None:
    """The largest difference between onnxruntime and torch on a batch of 5 (None: no onnxruntime)."""
    try:
        import onnxruntime as ort
    except ImportError:
        return None
    # Another batch size than the example's: the graph must not have fixed it.
    inputs = {k: torch.cat([v, v[:1], v])[:5] for k, v in graph.inputs.items()}
    first = next(iter(inputs))
    if inputs[first].is_floating_point():
        inputs[first] = torch.cat(
            [inputs[first][:2], inputs[first][2:3] * 0.5, inputs[first][3:] * 0.25]
        )
    with torch.no_grad():
        want = graph.module(*inputs.values()).numpy()
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = session.run(None, {k: v.numpy() for k, v in inputs.items()})[0]
    return float(abs(got - want).max())
