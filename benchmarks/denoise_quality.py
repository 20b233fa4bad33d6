"""Issue 6's quality bar: `udl denoise` PSNR gains on full MNIST, and the DAE against the plain AE on clean inputs.

    python benchmarks/denoise_quality.py --compare AE_RUN [--out /tmp/dq] [--epochs 20]
    python benchmarks/denoise_quality.py --compare AE_RUN --run runs/denoise/dae    (evaluate a DAE already trained)

Runs the exact command a user would type, `udl denoise --compare AE_RUN` (the report's DAE with the
default noise mix and 20 epochs; or `udl denoise --eval RUN --compare AE_RUN`), then prints, from the
run's summary.json, the table the command prints and the bars measured against the baselines of the
same run: the denoised PSNR is >= 8 dB above the noisy input's for gaussian and >= 10 dB for
salt-and-pepper, and on clean inputs the DAE's PSNR is within 1 dB of the plain AE's.
The AE run should be the report's best AE (n=12, latent 7) trained on full MNIST (`udl train ae`).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

GAIN_BARS = {"gaussian": 8.0, "saltpepper": 10.0}
CLEAN_BAR = 1.0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--compare", required=True, help="the plain AE run (udl train ae on full MNIST)"
    )
    ap.add_argument("--run", help="evaluate this DAE run instead of training one")
    ap.add_argument("--out", default="/tmp/denoise_quality")
    ap.add_argument("--epochs", type=int, default=20)
    a = ap.parse_args()
    print(
        f"machine: {platform.platform()}, {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs; python {platform.python_version()}"
    )
    udl = [sys.executable, "-m", "udlcli", "denoise", "--compare", a.compare, "-q"]
    if a.run:
        cmd, run = [*udl, "--eval", a.run], Path(a.run)
    else:
        cmd, run = [*udl, "--epochs", str(a.epochs), "--out", a.out, "--name", "dae"], None
    print("$", " ".join(cmd), flush=True)
    t0 = time.perf_counter()
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    wall = time.perf_counter() - t0
    print(out)
    if run is None:  # the run folder the command just wrote: the newest under OUT/denoise/
        run = max((Path(a.out) / "denoise").iterdir(), key=lambda p: p.stat().st_mtime)
    s = json.loads((run / "summary.json").read_text())
    rows = s["denoise"]["rows"]
    done = (
        sum(1 for _ in open(run / "metrics.csv")) - 1
    )  # epochs so far, also while the run is still training
    print(f"DAE run {run}: {done} epochs (best checkpoint used); command wall time {wall:.0f} s")
    for kind, bar in GAIN_BARS.items():
        gain = rows[kind]["gain_db"]
        print(
            f"{kind:<11} noisy {rows[kind]['noisy']['psnr']:6.2f} dB -> denoised {rows[kind]['dae']['psnr']:6.2f} dB: "
            f"gain {gain:+6.2f} dB, bar >= {bar:g} dB: {'ok' if gain >= bar else 'MISSED'} ({gain / bar:.2f}x the bar)"
        )
    dae, ae = rows["none"]["dae"]["psnr"], rows["none"]["ae"]["psnr"]
    print(
        f"clean      DAE {dae:6.2f} dB vs plain AE {ae:6.2f} dB: difference {dae - ae:+.2f} dB, bar within {CLEAN_BAR:g} dB: "
        f"{'ok' if abs(dae - ae) <= CLEAN_BAR else 'MISSED'}"
    )


if __name__ == "__main__":
    main()
