"""Training throughput: udl's epoch against the textbook pipeline, on the same model and optimiser.

The textbook pipeline is how the report and pytorch/examples train: torchvision.datasets.MNIST
with per-sample ToTensor() + Normalize, a DataLoader (batch 256, shuffle), the same conv AE and
Adam. udl holds MNIST as one uint8 tensor and slices batches on the device (udlcli.data) and
trains through udlcli.core.trainer.Trainer.

Usage:  python benchmarks/train_throughput.py [--data-dir DIR] [--batches N]
Prints images/s for both, their ratio (target >= 1.6x on a 2-core CPU), and the compute-only
ceiling (forward + backward + step on a batch already in memory), for both memory layouts.
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
    from udlcli.config import TrainConfig
    from udlcli.core.trainer import Trainer
    from udlcli.data import load_dataset
    from udlcli.models.ae import ConvAE

    ui.set_quiet(True)
    ds = load_dataset("mnist", data_dir)
    train, val = ds.split(0.2, 0)
    train = train.subset(torch.arange(min(len(train), max_batches * batch_size)))
    torch.manual_seed(0)
    trainer = Trainer(
        ConvAE(),
        TrainConfig(epochs=1, batch_size=batch_size),
        train,
        val.subset(torch.arange(256)),
        torch.device("cpu"),
    )
    with contextlib.redirect_stdout(io.StringIO()):
        hist = trainer.fit()
    return hist[-1]["images_per_s"]


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
    a = p.parse_args()
    print(f"machine: {machine()}")
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
