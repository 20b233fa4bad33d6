"""`udl sample gan` and generate_gan(): images from a trained GAN's generator, seeded, as a grid or one PNG each."""

from __future__ import annotations

from pathlib import Path

import torch

from udlcli import plots
from udlcli.config import validate
from udlcli.core import runs
from udlcli.core.checkpoint import load_checkpoint
from udlcli.core.device import resolve_device
from udlcli.errors import CheckpointError, SpecError, a_kind, shorten
from udlcli.models.gan import build_generator
from udlcli.tasks.gan import outputs as gan_outputs
from udlcli.tasks.gan.run import upgrade
from udlcli.tasks.gan.spec import TASK, GanSpec
from udlcli.tasks.sample.common import SampleResult

MAX_SAMPLES = 100_000  # one PNG each with --individual; a grid shows at most MAX_GRID
MAX_GRID = 1024


def load_generator(
    run: str | Path | None, root: str | Path = "runs"
) -> tuple[torch.nn.Module, GanSpec, Path, Path]:
    """(generator in eval mode on the CPU, spec, run folder, checkpoint) of a GAN run, or a one-line CheckpointError."""
    run_dir, ck = runs.resolve_checkpoint(run, root, TASK, prefer="last")
    payload = load_checkpoint(ck)
    kind = payload.get("kind")
    if kind != TASK:
        raise CheckpointError(
            f"{run_dir} is {a_kind(kind)} run, not a GAN; train one with udl gan, or sample this run with udl sample {kind or 'KIND'}"
        )
    payload = upgrade(payload)  # a checkpoint of the GAN's earlier loop holds G under its own key
    if "model" not in payload or "spec" not in payload:
        raise CheckpointError(
            f"{ck} holds no generator weights or spec; it was not written by udl gan"
        )
    spec = validate(GanSpec, payload["spec"], source=f"spec stored in {ck}")
    g = build_generator(spec.model, spec.data.image_shape)
    try:
        g.load_state_dict(
            {k[len("G.") :]: v for k, v in payload["model"].items() if k.startswith("G.")}
        )
    except RuntimeError as e:
        raise CheckpointError(
            f"{ck}: weights do not fit a {spec.model.arch} generator of this spec ({shorten(str(e))})"
        ) from None
    return g.eval(), spec, run_dir, ck


@torch.no_grad()
def draw(
    g: torch.nn.Module, spec: GanSpec, n: int, seed: int, device: torch.device, batch: int = 2048
) -> torch.Tensor:
    """n images (n, C, H, W) float32 in [0, 1] on the CPU; the noise comes from a seeded CPU generator, so any device gives the same z."""
    z = torch.randn(n, spec.model.noise_dim, generator=torch.Generator().manual_seed(seed))
    g.to(device)
    parts = [g(z[i : i + batch].to(device)).float().cpu() for i in range(0, n, batch)]
    x = torch.cat(parts)
    per = lambda v: torch.tensor(v or [0.5], dtype=x.dtype).view(1, -1, 1, 1)  # noqa: E731  (per channel)
    return (x * per(spec.data.std) + per(spec.data.mean)).clamp(0, 1)


def generate_gan(run: Path, n: int, seed: int = 0, device: str = "cpu") -> torch.Tensor:
    """n generator samples (n, C, H, W) float32 in [0, 1] on the CPU, seeded: the uniform generator for `udl evaluate`."""
    g, spec, _, _ = load_generator(run)
    return draw(g, spec, n, seed, resolve_device(device))


def sample_gan(
    run: str | Path | None = None,
    root: str | Path = "runs",
    n: int = 64,
    seed: int = 0,
    individual: bool = False,
    to: str | Path | None = None,
    data_dir: str | Path | None = None,
    device: str | None = None,
    command: str = "",
) -> SampleResult:
    """Write RUN/samples/gan_samples_seedS.png (a grid), or with individual=True one PNG per sample into `to`."""
    limit = MAX_SAMPLES if individual else MAX_GRID
    if not 1 <= n <= limit:
        raise SpecError(
            f"--n {n}: draw between 1 and {limit} samples{'' if individual else ' for a grid (use --individual for more)'}"
        )
    if to is not None and not individual:
        raise SpecError(
            "--to DIR is where --individual writes one PNG per sample; add --individual, or drop --to for a grid"
        )
    g, spec, run_dir, ck = load_generator(run, root)
    images = draw(g, spec, n, seed, resolve_device(device or "auto"))
    meta = {"command": command, "checkpoint": str(ck), "seed": seed, "n": n}
    rows = {"generator": f"{spec.model.arch} GAN, {ck.name}", "samples": f"{n} (seed {seed})"}
    if individual:
        folder = Path(to) if to is not None else run_dir / "samples" / f"gan_individual_seed{seed}"
        files = gan_outputs.save_individual(images, folder)
        runs.write_json(folder / "samples.json", meta)
        rows["folder"] = f"{folder} ({len(files)} PNGs, {images.shape[-2]}x{images.shape[-1]})"
        return SampleResult(run_dir, [folder / "samples.json"], rows)
    png = plots.image_grid(
        images,
        run_dir / "samples" / f"gan_samples_seed{seed}.png",
        title=f"{n} samples of the GAN generator (seed {seed})",
    )
    js = runs.write_json(png.with_suffix(".json"), meta)
    return SampleResult(run_dir, [png, js], rows)
