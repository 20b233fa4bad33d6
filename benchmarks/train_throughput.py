"""Training throughput: udl's epoch against the textbook pipeline, on the same model and optimiser.

The textbook pipeline is how the report and pytorch/examples train: torchvision.datasets.MNIST
with per-sample ToTensor() + Normalize, a DataLoader (batch 256, shuffle), the same conv AE and
Adam. udl holds MNIST as one uint8 tensor and slices batches on the device (udlcli.data) and
trains through udlcli.core.trainer.Trainer.

Usage:  python benchmarks/train_throughput.py [--data-dir DIR] [--batches N]
        python benchmarks/train_throughput.py --shape 3x32x32      # CIFAR-10-sized random bytes
Prints images/s for both, their ratio (target >= 1.6x on a 2-core CPU), and the compute-only
ceiling (forward + backward + step on a batch already in memory), for both memory layouts.

With --shape other than 1x28x28 both pipelines read the same random uint8 images (speed does not
depend on what the pixels show): the textbook one as torchvision's CIFAR10 class does, an
(N, H, W, C) array turned into a PIL image per sample, then ToTensor and a per-channel Normalize.
It also measures the peak memory of holding a CIFAR-10-sized split (50,000 images) as udl does.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import platform
import shutil
import tempfile
import time
from pathlib import Path

import torch


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} cores, torch {torch.__version__} ({torch.get_num_threads()} threads), Python {platform.python_version()}"


MNIST = (1, 28, 28)


class ArrayImages(torch.utils.data.Dataset):
    """torchvision's CIFAR10.__getitem__: an (N, H, W, C) uint8 array, one PIL image per sample, then the transform."""

    def __init__(self, x, transform):
        self.x, self.transform = x, transform

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i):
        from PIL import Image

        return self.transform(Image.fromarray(self.x[i])), 0


def random_images(shape, n: int, seed: int = 0):
    """n random uint8 images (N, H, W, C), the layout of CIFAR's arrays after torchvision's transpose."""
    import numpy as np

    c, h, w = shape
    return np.random.default_rng(seed).integers(0, 256, (n, h, w, c), dtype=np.uint8)


def textbook_random(shape, batch_size: int, max_batches: int) -> float:
    """images/s of one pass of the DataLoader pipeline over random images of shape (C, H, W)."""
    from torchvision import transforms

    from udlcli.models.ae import ConvAE

    c = shape[0]
    x = random_images(shape, batch_size * max_batches)
    tf = transforms.Compose([transforms.ToTensor(), transforms.Normalize((0.5,) * c, (0.25,) * c)])
    loader = torch.utils.data.DataLoader(ArrayImages(x, tf), batch_size=batch_size, shuffle=True)
    torch.manual_seed(0)
    model = ConvAE(12, 7, mean=[0.0] * c, std=[1.0] * c, shape=shape)  # inputs arrive normalised
    opt = torch.optim.Adam(model.parameters(), lr=2.218e-3, weight_decay=1.01e-5)
    model.train()
    seen, t0 = 0, time.perf_counter()
    for xb, _ in loader:
        loss = torch.nn.functional.mse_loss(model.decode(model.encode(xb)), xb * 0.25 + 0.5)
        opt.zero_grad()
        loss.backward()
        opt.step()
        seen += len(xb)
    return seen / (time.perf_counter() - t0)


def udl_random(shape, batch_size: int, max_batches: int) -> float:
    from udlcli import ui
    from udlcli.data import TensorImages, transform
    from udlcli.models.ae import ConvAE

    ui.set_quiet(True)
    x = transform.as_nchw(random_images(shape, batch_size * max_batches))
    train = TensorImages(x, torch.zeros(len(x), dtype=torch.long))
    mean, std = transform.channel_stats(x)
    torch.manual_seed(0)
    return one_epoch(ConvAE(12, 7, mean=mean, std=std, shape=shape), train, train, batch_size)


def one_epoch(model, train, val, batch_size: int) -> float:
    """images/s of one epoch of udl's Trainer on the CPU (validation on 256 images)."""
    from udlcli.config import TrainConfig
    from udlcli.core.trainer import Trainer

    trainer = Trainer(
        model,
        TrainConfig(epochs=1, batch_size=batch_size),
        train,
        val.subset(torch.arange(256)),
        torch.device("cpu"),
    )
    with contextlib.redirect_stdout(io.StringIO()):
        hist = trainer.fit()
    return hist[-1]["images_per_s"]


MEMORY_PROBE = """
import resource, sys, numpy as np, torch
from udlcli.data import TensorImages, transform
n, c, h, w = map(int, sys.argv[1:5])
rss = lambda: int(open('/proc/self/statm').read().split()[1]) * 4096
base = rss()
x = np.random.default_rng(0).integers(0, 256, (n, h, w, c), dtype=np.uint8)  # as a reader returns it
split = TensorImages(transform.as_nchw(x), torch.zeros(n, dtype=torch.long))
del x
stats = transform.channel_stats(split.x)
for xb, _ in split.batches(256, torch.Generator().manual_seed(0)):
    pass
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
print(base, rss(), peak)
"""


def memory(shape, n: int) -> tuple[int, int, int]:
    """(bytes of the uint8 split, resident bytes it adds once loaded, peak bytes added while loading) in a fresh process."""
    import subprocess
    import sys

    out = subprocess.run(
        [sys.executable, "-c", MEMORY_PROBE, str(n), *map(str, shape)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    base, after, peak = map(int, out)
    c, h, w = shape
    return n * c * h * w, after - base, peak - base


def textbook(data_dir: Path, batch_size: int, max_batches: int) -> float:
    """images/s of one pass of the DataLoader pipeline (torchvision reads the unpacked IDX files)."""
    import torchvision
    from torchvision import transforms

    from udlcli.models.ae import ConvAE

    tmp = Path(tempfile.mkdtemp())
    try:
        # torchvision 0.29 needs the unpacked files; copy the gz files so the shared folder stays untouched.
        (tmp / "MNIST" / "raw").mkdir(parents=True)
        for f in (data_dir / "MNIST" / "raw").glob("*.gz"):
            shutil.copy(f, tmp / "MNIST" / "raw" / f.name)
        tf = transforms.Compose([transforms.ToTensor(), transforms.Normalize((0.1307,), (0.3081,))])
        with contextlib.redirect_stdout(io.StringIO()):
            ds = torchvision.datasets.MNIST(str(tmp), train=True, download=True, transform=tf)
        loader = torch.utils.data.DataLoader(ds, batch_size=batch_size, shuffle=True)
        torch.manual_seed(0)
        model = ConvAE()
        model.encoder.normalize.std.fill_(
            1.0
        )  # inputs arrive normalised already: skip the built-in step
        model.encoder.normalize.mean.fill_(0.0)
        opt = torch.optim.Adam(model.parameters(), lr=2.218e-3, weight_decay=1.01e-5)
        model.train()
        seen, t0 = 0, time.perf_counter()
        for i, (x, _) in enumerate(loader):
            target = x * 0.3081 + 0.1307  # the report's loss is on un-normalised pixels
            loss = torch.nn.functional.mse_loss(model.decode(model.encode(x)), target)
            opt.zero_grad()
            loss.backward()
            opt.step()
            seen += len(x)
            if i + 1 >= max_batches:
                break
        return seen / (time.perf_counter() - t0)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def udl(data_dir: Path, batch_size: int, max_batches: int) -> float:
    from udlcli import ui
    from udlcli.data import load_dataset
    from udlcli.models.ae import ConvAE

    ui.set_quiet(True)
    ds = load_dataset("mnist", data_dir)
    train, val = ds.split(0.2, 0)
    train = train.subset(torch.arange(min(len(train), max_batches * batch_size)))
    torch.manual_seed(0)
    return one_epoch(ConvAE(), train, val, batch_size)


def ceiling(batch_size: int, steps: int, channels_last: bool) -> float:
    from udlcli.models.ae import ConvAE

    torch.manual_seed(0)
    model = ConvAE()
    x = torch.rand(batch_size, 1, 28, 28)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    opt = torch.optim.Adam(model.parameters(), lr=2.218e-3)
    for i in range(steps + 3):
        if i == 3:
            t0 = time.perf_counter()
        loss = model.loss(x, None)["loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()
    return steps * batch_size / (time.perf_counter() - t0)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default_dir = os.environ.get("UDL_DATA_DIR") or str(
        Path(__file__).resolve().parents[2] / "shared" / "data"
    )
    p.add_argument("--data-dir", type=Path, default=Path(default_dir))
    p.add_argument(
        "--batch-size", type=int, default=256, help="both pipelines (the textbook uses 256)"
    )
    p.add_argument(
        "--batches",
        type=int,
        default=188,
        help="batches timed per pipeline (188 = one epoch of the 48k train split)",
    )
    p.add_argument(
        "--shape",
        default="1x28x28",
        help="CxHxW; other than 1x28x28: random uint8 images of that shape (e.g. 3x32x32)",
    )
    p.add_argument(
        "--memory-n",
        type=int,
        default=50_000,
        help="images in the memory probe (CIFAR-10's 50,000)",
    )
    a = p.parse_args()
    shape = tuple(int(v) for v in a.shape.lower().split("x"))
    print(f"machine: {machine()}")
    if shape != MNIST:
        print(
            f"data: random uint8 images {a.shape}; batch {a.batch_size}; {a.batches} batches per pipeline; same model (conv AE n=12, latent 7) and Adam"
        )
        tb = textbook_random(shape, a.batch_size, a.batches)
        ud = udl_random(shape, a.batch_size, a.batches)
        print(f"textbook (DataLoader + PIL + ToTensor + Normalize): {tb:10,.0f} images/s")
        print(f"udl (uint8 tensor, on-device batches)             : {ud:10,.0f} images/s")
        print(
            f"ratio udl / textbook                              : {ud / tb:10.2f}x   (target >= 1.6x)"
        )
        size, held, peak = memory(shape, a.memory_n)
        mb = lambda b: f"{b / 2**20:,.0f} MiB"  # noqa: E731
        print(
            f"memory, {a.memory_n:,} x {a.shape} uint8: {mb(size)} of pixels; resident once loaded +{mb(held)}, "
            f"peak while loading +{mb(peak)} (a float32 copy would be {mb(4 * size)})"
        )
        return
    print(
        f"data: {a.data_dir}; batch {a.batch_size}; {a.batches} batches per pipeline; same model (conv AE n=12, latent 7) and Adam"
    )
    tb = textbook(a.data_dir, a.batch_size, a.batches)
    ud = udl(a.data_dir, a.batch_size, a.batches)
    c_default = ceiling(a.batch_size, 30, channels_last=False)
    c_cl = ceiling(a.batch_size, 30, channels_last=True)
    print(f"textbook (DataLoader + ToTensor + Normalize): {tb:10,.0f} images/s")
    print(f"udl (uint8 tensor, on-device batches)       : {ud:10,.0f} images/s")
    print(f"ratio udl / textbook                        : {ud / tb:10.2f}x   (target >= 1.6x)")
    print(f"compute-only ceiling, contiguous weights    : {c_default:10,.0f} images/s")
    print(
        f"compute-only ceiling, channels_last weights : {c_cl:10,.0f} images/s   (udl trains with these on CPU)"
    )
    print(f"udl / its ceiling                           : {ud / c_cl:10.2f}")


if __name__ == "__main__":
    main()
