"""CLI start-up time: `udl --help` and `udl train --help` must not import torch (target < 0.5 s).

Usage:  python benchmarks/cli_startup.py [--repeat N]
Runs each command N times in fresh processes and prints the median wall time, next to the
baseline of `python -c "import torch"` measured in the same run, and whether torch was imported.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import time

HELP_CHECK = (
    "import sys\nfrom typer.main import get_command\nfrom udlcli.cli.app import app\n"
    "try:\n    get_command(app).main({args!r}, standalone_mode=False)\nexcept SystemExit:\n    pass\n"
    "print('TORCH' if 'torch' in sys.modules else 'NO-TORCH', file=sys.stderr)\n"
)


def timed(cmd: list[str], repeat: int) -> tuple[float, str]:
    times, err = [], ""
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = subprocess.run(cmd, capture_output=True, text=True)
        times.append(time.perf_counter() - t0)
        err = out.stderr.strip().splitlines()[-1] if out.stderr.strip() else ""
    return statistics.median(times), err


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeat", type=int, default=7)
    a = p.parse_args()
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    )
    base, _ = timed([sys.executable, "-c", "import torch"], a.repeat)
    print(f"baseline `import torch`: {base:.3f} s")
    for args in (["--help"], ["train", "--help"]):
        wall, flag = timed([sys.executable, "-c", HELP_CHECK.format(args=args)], a.repeat)
        verdict = "ok" if wall < 0.5 and flag == "NO-TORCH" else "OVER TARGET"
        print(
            f"udl {' '.join(args):<14} {wall:.3f} s  ({wall / base:.2f}x of import torch; {flag.lower()})  target < 0.5 s: {verdict}"
        )


if __name__ == "__main__":
    main()
