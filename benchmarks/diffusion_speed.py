"""Diffusion and flow speed: training images/s of `ddpm` and `flow`, and sampling images/s of every sampler and step count.

Usage:  python benchmarks/diffusion_speed.py                        # the default U-Net at 1x28x28, on the CPU
        python benchmarks/diffusion_speed.py --shape 3x32x32 --device cuda --precision bf16 --compile
        python benchmarks/diffusion_speed.py --quick                # fewer batches and samples (CI-sized)

Each family is built from its registry entry with its defaults (`udl train ddpm`'s U-Net), the
training step is the trainer's own (udlcli.core.trainer.Trainer on random uint8 images: speed does
not depend on what the pixels show; the second epoch timed, so a compile is left out), and
sampling is the model's generate() as `udl sample` calls it. The baselines, measured in the same
run: for training, the report's AE on the same images (udl train ae's defaults); for sampling,
DDPM's ancestral sampler over all T = 1,000 steps, the sampler the DDIM and flow step counts
replace. Prints the machine, a table, and ratios against both.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from train_throughput import machine, random_images  # noqa: E402  (the benchmarks' shared helpers)

SAMPLERS = [  # (family, sampler, steps); network calls per image = steps (x2 for heun)
    ("ddpm", "ancestral", None),
    ("ddpm", "ddim", 10),
    ("ddpm", "ddim", 20),
    ("ddpm", "ddim", 50),
    ("flow", "euler", 10),
    ("flow", "euler", 20),
    ("flow", "euler", 50),
    ("flow", "heun", 10),
    ("flow", "heun", 20),
]


def built(family: str, shape, x=None):
    """The family's default model (its registry entry's spec) for images of this shape."""
    from udlcli.core.spec import resolve_spec
    from udlcli.data import transform
    from udlcli.models import get

    spec = resolve_spec(family)
    spec.data.shape = list(shape)
    if x is not None:
        mean, std = transform.channel_stats(x)
        spec.data.mean, spec.data.std = list(map(float, mean)), list(map(float, std))
    return spec, get(family).build(spec.model, spec.data)


def train_images_per_s(
    family: str, shape, device, images: int, precision: str, compile_: bool
) -> float:
    """Images/s of the trainer's second epoch over `images` random images, at the family's defaults."""
    from udlcli import ui
    from udlcli.core.trainer import Trainer
    from udlcli.data import TensorImages, transform

    ui.set_quiet(True)
    x = transform.as_nchw(random_images(shape, images))
    train = TensorImages(
        x, torch.randint(0, 10, (len(x),), generator=torch.Generator().manual_seed(0))
    )
    torch.manual_seed(0)
    spec, model = built(family, shape, x)
    cfg = spec.train.model_copy(
        update={"epochs": 2, "precision": precision, "compile": compile_, "fid_n": 0}
    )
    trainer = Trainer(model, cfg, train, train.subset(torch.arange(64)), device)
    with contextlib.redirect_stdout(io.StringIO()):
        hist = trainer.fit()
    return hist[-1]["images_per_s"]


def sample_images_per_s(model, n: int, sampler: str, steps, device) -> float:
    model.eval()
    with torch.no_grad():
        model.generate(min(n, 4), torch.Generator().manual_seed(1), steps=steps, sampler=sampler)
        t0 = time.perf_counter()
        model.generate(n, torch.Generator().manual_seed(0), steps=steps, sampler=sampler)
        if device.type == "cuda":
            torch.cuda.synchronize()
    return n / (time.perf_counter() - t0)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--shape", default="1x28x28")
    p.add_argument("--device", default="cpu")
    p.add_argument("--precision", default="32", choices=["32", "bf16"])
    p.add_argument("--compile", action="store_true")
    p.add_argument("--images", type=int, default=2048, help="random images a training epoch sees")
    p.add_argument("--n", type=int, default=50, help="samples drawn per sampler")
    p.add_argument("--quick", action="store_true", help="256 images, 16 samples, 3 samplers")
    a = p.parse_args(argv)
    shape = tuple(int(s) for s in a.shape.split("x"))
    device = torch.device(a.device)
    images, n = (256, 16) if a.quick else (a.images, a.n)
    samplers = SAMPLERS[1:2] + SAMPLERS[4:5] + SAMPLERS[7:8] if a.quick else SAMPLERS
    torch.manual_seed(0)
    print(f"machine: {machine()}")
    print(f"device {device}, image {a.shape}, precision {a.precision}, compile {a.compile}")

    print(f"\ntraining, the second epoch over {images:,} random images, default batch:")
    train = {}
    for family in ("ae", "ddpm", "flow"):
        train[family] = train_images_per_s(family, shape, device, images, a.precision, a.compile)
        ratio = train[family] / train["ae"]
        print(f"  {family:5s} {train[family]:9.1f} img/s   {ratio:6.3f}x the AE's")

    print(f"\nsampling {n} images (untrained weights: speed does not depend on them):")
    models = {}
    for family in ("ddpm", "flow"):
        models[family] = built(family, shape)[1].to(device)
    base = None
    print(f"  {'family':6s} {'sampler':9s} {'steps':>5s} {'img/s':>9s}  vs ancestral")
    for family, sampler, steps in samplers:
        rate = sample_images_per_s(models[family], n, sampler, steps, device)
        if sampler == "ancestral":
            base = rate
        shown = steps if steps is not None else models[family].steps
        vs = f"{rate / base:8.1f}x" if base else "       -"
        print(f"  {family:6s} {sampler:9s} {shown:5d} {rate:9.2f}  {vs}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
