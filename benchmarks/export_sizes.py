"""The size of each `udl export` format for the report's AE (channels 12, latent 7, 28x28), and its ONNX check.

Trains the report's AE for one epoch on 2,000 MNIST images (sizes depend on the architecture, not
on training), exports it as safetensors and as ONNX, and prints every file's size and the largest
onnxruntime-vs-torch difference of each graph.

Usage:  python benchmarks/export_sizes.py
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from train_throughput import machine  # noqa: E402


def main() -> None:
    from udlcli.tasks.export import export

    print(f"machine: {machine()}\n")
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "udlcli", "train", "ae", "--epochs", "1", "--limit", "2000"]
        subprocess.run([*cmd, "--out", tmp, "--quiet"], check=True, capture_output=True)
        run = Path(tmp) / "ae" / "ae"
        ckpt = run / "weights" / "best.pt"
        print(
            f"{'checkpoint (weights/best.pt, with optimiser state)':<52} {ckpt.stat().st_size / 1024:8.1f} KiB"
        )
        for fmt in ("safetensors", "onnx"):
            result = export(run, fmt)
            for f in result.files:
                check = result.checked.get(f.stem)
                note = f"   max |onnxruntime - torch| {check:.1e}" if check is not None else ""
                print(f"{fmt + ': ' + f.name:<52} {f.stat().st_size / 1024:8.1f} KiB{note}")


if __name__ == "__main__":
    main()
