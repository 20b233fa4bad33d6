"""The one GPU check: every udl command for one short epoch on a device, the fast paths' loss, the AE's images/s.

Run it whenever a GPU is at hand (planned to take at most 8 minutes on one; never yet timed on
one). CI runs its CPU modes (tests/test_gpu_check.py), so it cannot rot between GPU runs:

    python benchmarks/gpu_check.py                                   # --device cuda, mnist-sample
    python benchmarks/gpu_check.py --dataset mnist --limit 20000      # MNIST from --data-dir / $UDL_DATA_DIR
    python benchmarks/gpu_check.py --device cpu --tiny                # every part at its smallest
    python benchmarks/gpu_check.py --dry-run                          # the command lines, checked, none run

1. commands: each command line of commands() through `python -m udlcli`, one short epoch on --device:
   train ae|vae|dae, denoise, finetune (frozen and --unfreeze), gan (mlp and dcgan), tune (4 trials,
   2 workers on the one device), embed, sample, evaluate, export (onnx, safetensors) and
   reproduce --profile quick with every step at its smallest; train ddpm and flow (conditional) in
   bf16, their samplers and evaluate; train simclr and byol and probe. Its exit code and wall time.
   (Diffusion's images/s with bf16 and --compile: benchmarks/diffusion_speed.py --device cuda.)
2. fast paths: `udl train ae` at batch 256 in float32, --precision bf16 and --compile, on the same
   data and seed: each one's test MSE within 5% of float32's.
3. images/s: the AE's training steps (udl's Trainer, 2 epochs of random 1x28x28 images: speed does
   not depend on what the pixels show; the second epoch timed, so compiling is left out) at batch
   256, 1,024 and 4,096 for fp32, bf16 and compile; FLOPs per image (forward + backward, counted by
   torch.utils.flop_counter) times images/s against the card's peak from PEAKS: how far from the
   compute ceiling udl's training runs.

4. anchor (only with --anchor; hours, not minutes): issue 28's GPU anchor, lightly's CIFAR-10
   benchmark setting: `udl train simclr` on CIFAR-10 with the ResNet-18 backbone (width 64), 200
   epochs at batch 512, then `udl probe`: its kNN accuracy (k = 200, cosine) against lightly's
   0.848 for SimCLR, and the wall time against lightly's 87 minutes on one RTX A6000. --tiny runs it
   for 1 epoch on the check's data, to test the script.

Writes OUT/gpu_check.json and OUT/gpu_check.md (the table it prints); exits 1 when a command failed
or a fast path missed its 5%. Add a model family: its command lines in commands().
"""

from __future__ import annotations

import argparse
import json
import math
import re
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from train_throughput import machine  # noqa: E402  (the benchmarks' one machine line)

REPO = Path(__file__).resolve().parents[1]
LOSS_BAR = 0.05
"""bf16 and compile: test MSE within 5% of float32's."""

# Dense peaks (no sparsity) in TFLOP/s from NVIDIA's datasheets: (float32 on CUDA cores, TF32 and
# bf16 on tensor cores). cuDNN runs float32 convolutions in TF32 by default, so a float32 run's
# ceiling is the TF32 peak; a bf16 run's is the bf16 peak. First match of the device name wins.
PEAKS = [
    (r"H200 NVL", 60.0, 417.5, 835.0),
    (r"H200", 67.0, 494.5, 989.5),
    (r"H100 PCIe", 51.0, 378.0, 756.0),
    (r"H100 NVL", 60.0, 417.5, 835.0),
    (r"H100", 67.0, 494.5, 989.5),
    (r"A100", 19.5, 156.0, 312.0),
    (r"L40S", 91.6, 183.0, 362.0),
    (r"L4\b", 30.3, 60.0, 121.0),
    (r"A10\b", 31.2, 62.5, 125.0),
    (r"RTX 4090", 82.6, 82.6, 165.2),
]

VARIANTS = {"fp32": [], "bf16": ["--precision", "bf16"], "compile": ["--compile"]}


@dataclass
class Check:
    device: str
    dataset: str
    limit: int | None
    out: Path
    data_dir: str | None
    tiny: bool
    batches: tuple[int, ...]
    images: int
    """Random images a throughput fit trains on (2 epochs)."""

    @property
    def runs(self) -> Path:
        return self.out / "runs"

    @property
    def data_dir_flags(self) -> list[str]:
        return ["--data-dir", self.data_dir] if self.data_dir else []

    @property
    def data_flags(self) -> list[str]:
        """The training data of every command that trains."""
        limit = ["--limit", str(self.limit)] if self.limit else []
        return ["--dataset", self.dataset, *limit, *self.data_dir_flags]


def commands(c: Check) -> list[tuple[str, list[str]]]:
    """Every command, one short epoch each, in an order where each finds the runs it reads."""
    data = c.data_flags
    fit = ["--epochs", "1", "--device", c.device, "-q", "--out", str(c.runs)]
    read = ["--device", c.device, "-q"]
    ae, vae, gan = (
        str(c.runs / task / name) for task, name in (("ae", "ae"), ("vae", "vae"), ("gan", "mlp"))
    )
    ddpm, flow, simclr = (str(c.runs / k / k) for k in ("ddpm", "flow", "simclr"))
    n = "200" if c.tiny else "2000"
    bf16 = ["--precision", "bf16"]
    # SimCLR/BYOL drop a short last batch, and a tiny check has 200 images.
    ssl = ["--batch-size", "64"] if c.tiny else []
    exports = c.runs / "exports"
    return [
        ("train ae", ["train", "ae", *data, *fit, "--name", "ae"]),
        ("train vae", ["train", "vae", *data, *fit, "--name", "vae"]),
        ("train dae", ["train", "dae", *data, *fit, "--name", "dae"]),
        ("denoise", ["denoise", *data, *fit, "--name", "denoise"]),
        ("finetune", ["finetune", ae, *fit, "--name", "frozen"]),
        ("finetune --unfreeze", ["finetune", ae, "--unfreeze", *fit, "--name", "unfrozen"]),
        ("gan", ["gan", *data, *fit, "--name", "mlp"]),
        ("gan --arch dcgan", ["gan", "--arch", "dcgan", *data, *fit, "--name", "dcgan"]),
        ("tune ae, 4 trials, 2 workers", ["tune", "ae", "--trials", "4", "--n-jobs", "2", "--max-epochs", "1", *data, *fit[2:], "--name", "study"]),
        ("embed", ["embed", ae, "--method", "pca", "--n", n, *read]),
        ("sample ae", ["sample", "ae", ae, "--n", "16", *read]),
        ("sample vae", ["sample", "vae", vae, "--n", "16", *read]),
        ("sample gan", ["sample", "gan", gan, "--n", "16", *read]),
        ("evaluate", ["evaluate", ae, vae, gan, "--n", n, *read]),
        ("export onnx", ["export", ae, "--format", "onnx", "--out", str(exports / "onnx"), "-q"]),
        ("export safetensors", ["export", gan, "--format", "safetensors", "--out", str(exports / "st"), "-q"]),
        ("train ddpm --precision bf16", ["train", "ddpm", *data, *fit, *bf16, "--name", "ddpm"]),
        ("train flow --conditional --precision bf16", ["train", "flow", "--conditional", *data, *fit, *bf16, "--name", "flow"]),
        ("sample ddpm", ["sample", "ddpm", ddpm, "--n", "16", "--steps", "20", *read]),
        ("sample flow --class 3 --guidance 2", ["sample", "flow", flow, "--n", "16", "--class", "3", "--guidance", "2", *read]),
        ("evaluate ddpm flow", ["evaluate", ddpm, flow, "--n", n, "--steps", "20", *read]),
        ("train simclr", ["train", "simclr", *data, *fit, *ssl, "--name", "simclr"]),
        ("train byol", ["train", "byol", *data, *fit, *ssl, "--name", "byol"]),
        ("probe simclr", ["probe", simclr, *read]),
        ("reproduce --profile quick", ["reproduce", str(c.out / "study.yaml"), "--profile", "quick", *c.data_dir_flags, *fit[2:]]),
    ]  # fmt: skip


ANCHOR = {
    "knn": 0.848,
    "minutes": 87.0,
    "source": "lightly's CIFAR-10 benchmark, SimCLR, 200 epochs, batch 512, RTX A6000",
}


def anchor_commands(c: Check) -> list[tuple[str, list[str]]]:
    """The anchor's two command lines: train SimCLR as lightly did, then probe its frozen backbone."""
    if c.tiny:  # the script's own test: one small epoch on the check's data
        budget = [*c.data_flags, "--epochs", "1", "--batch-size", "64", "--set", "model.width=8"]
    else:
        # lightly trains on all 50,000 images and measures on the test split: keep 1% for udl's
        # per-epoch kNN monitor rather than its default 20%.
        budget = [
            "--dataset",
            "cifar10",
            *c.data_dir_flags,
            "--epochs",
            "200",
            "--batch-size",
            "512",
        ]
        budget += ["--set", "model.width=64", "--set", "data.val_fraction=0.01"]
    run = anchor_run(c)
    return [
        ("train simclr, ResNet-18", ["train", "simclr", "--set", "model.backbone=resnet", *budget, "--device", c.device, "-q", "--out", str(c.out / "anchor"), "--name", "anchor"]),
        ("probe", ["probe", str(run), "--device", c.device, "-q"]),
    ]  # fmt: skip


def anchor_run(c: Check) -> Path:
    return c.out / "anchor" / "simclr" / "anchor"


def run_anchor(c: Check, run: bool) -> dict:
    """Train and probe; the kNN accuracy and the wall time (the whole `udl train`, start-up and test included) beside lightly's."""
    rows = []
    for label, args in anchor_commands(c):
        row = {"command": label, "line": "udl " + shlex.join(args)}
        row |= udl(args, timeout=6 * 3600) if run else execute(args, False)
        print(f"  {label:32s} {_status(row)}", flush=True)
        rows.append(row)
    probe = anchor_run(c) / "probe.json"
    knn = json.loads(probe.read_text())["knn200_cosine"] if run and probe.is_file() else None
    minutes = rows[0]["seconds"] / 60 if rows[0]["seconds"] is not None else None
    return {
        "commands": rows,
        "knn": knn,
        "minutes": minutes,
        "anchor": ANCHOR,
        "reached": None if knn is None else knn >= ANCHOR["knn"],
    }


def smallest_study(c: Check) -> Path:
    """examples/report.yaml on the check's data, its quick profile with every step at its smallest."""
    import yaml

    d = yaml.safe_load((REPO / "examples" / "report.yaml").read_text())
    d["data"] = {"dataset": c.dataset}
    quick = d["profiles"]["quick"]
    limit = {"data": {"limit": min(c.limit or 1000, 1000)}}
    for name, step in d["steps"].items():
        p = quick.setdefault(name, {})
        kind = step["run"].split()[0]
        if kind == "tune":
            p.update(trials=2, max_epochs=1)
        if kind in ("train", "finetune", "denoise", "gan") or name == "tune_ae":
            p["spec"] = merged(p.get("spec", {}), {**limit, "train": {"epochs": 1}})
        if kind in ("embed", "evaluate"):
            p["n"] = 200
    path = c.out / "study.yaml"
    path.write_text(yaml.safe_dump(d, sort_keys=False))
    return path


def merged(base: dict, over: dict) -> dict:
    out = dict(base)
    for k, v in over.items():
        out[k] = merged(out.get(k, {}), v) if isinstance(v, dict) else v
    return out


# ---------------------------------------------------------------- running


def udl(args: list[str], timeout: float) -> dict:
    """One `python -m udlcli ...`: its exit code, wall seconds and last error line."""
    t0 = time.perf_counter()
    try:
        p = subprocess.run(
            [sys.executable, "-m", "udlcli", *args], capture_output=True, text=True, timeout=timeout
        )
        rc, err = p.returncode, (p.stderr.strip().splitlines() or [""])[-1]
    except subprocess.TimeoutExpired:
        rc, err = 124, f"killed after {timeout:.0f} s"
    return {"exit": rc, "seconds": round(time.perf_counter() - t0, 1), "error": err if rc else ""}


def parses(args: list[str]) -> str:
    """'' when udl's CLI takes every option of the command line (nothing runs), else why not."""
    from typer.main import get_command

    from udlcli.cli.app import app

    cmd, words = get_command(app), list(args)
    while hasattr(cmd, "list_commands") and words and cmd.get_command(None, words[0]):
        cmd = cmd.get_command(None, words.pop(0))
    try:
        cmd.make_context(cmd.name, words, resilient_parsing=False)
        return ""
    except Exception as e:  # click's own errors: no such option, a bad value
        return " ".join(str(getattr(e, "message", e)).split())


def execute(args: list[str], run: bool) -> dict:
    """Run one command line, or only check that udl's CLI takes it (exit None: parsed, not run)."""
    if run:
        return udl(args, timeout=600)
    why = parses(args)
    return {"exit": 2 if why else None, "seconds": None, "error": why}


def run_commands(c: Check, run: bool) -> list[dict]:
    smallest_study(c)
    rows = []
    for label, args in commands(c):
        row = {"command": label, "line": "udl " + shlex.join(args)} | execute(args, run)
        print(f"  {label:32s} {_status(row)}", flush=True)
        rows.append(row)
    return rows


def fast_paths(c: Check, run: list[str]) -> list[dict]:
    """`udl train ae` at batch 256 with each variant on the same data and seed; test MSE against float32's.
    The variants in `run` train; the others are parsed only."""
    epochs = "1" if c.tiny else "3"
    rows = []
    for v in VARIANTS:
        args = [
            "train",
            "ae",
            *c.data_flags,
            "--batch-size",
            "256",
            "--epochs",
            epochs,
            *VARIANTS[v],
        ]
        args += ["--device", c.device, "-q", "--out", str(c.out / "fastpath"), "--name", v]
        row = {"variant": v, "line": "udl " + shlex.join(args)} | execute(args, v in run)
        summary = c.out / "fastpath" / "ae" / v / "summary.json"
        row["test_mse"] = json.loads(summary.read_text())["test_mse"] if row["exit"] == 0 else None
        print(f"  {v:32s} {_status(row)}", flush=True)
        rows.append(row)
    base = rows[0]["test_mse"]  # fp32's
    for r in rows:
        r["vs_fp32"] = r["test_mse"] / base - 1 if base and r["test_mse"] is not None else None
        r["within_bar"] = None if r["vs_fp32"] is None else abs(r["vs_fp32"]) <= LOSS_BAR
    return rows


def flops_per_image(device) -> float:
    """Training FLOPs of one image through the default AE: its loss forward and backward."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from udlcli.models.ae import ConvAE

    model, x = ConvAE(), torch.rand(64, 1, 28, 28)
    with FlopCounterMode(display=False) as counter:
        model.loss(x, torch.zeros(64, dtype=torch.long))["loss"].backward()
    return counter.get_total_flops() / 64


def images_per_s(c: Check, variant: str, batch: int) -> float:
    """The second of two epochs of udl's Trainer on random images: the AE's training throughput."""
    import contextlib
    import io

    import torch

    from udlcli import ui
    from udlcli.config import TrainConfig
    from udlcli.core.trainer import Trainer
    from udlcli.data import TensorImages
    from udlcli.models.ae import ConvAE

    ui.set_quiet(True)
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (c.images, 1, 28, 28), dtype=torch.uint8, generator=g)
    y = torch.zeros(c.images, dtype=torch.long)
    dev = torch.device(c.device)
    train, val = TensorImages(x, y).to(dev), TensorImages(x[:256], y[:256]).to(dev)
    cfg = TrainConfig(
        epochs=2,
        batch_size=batch,
        device=c.device,
        precision="bf16" if variant == "bf16" else "32",
        compile=variant == "compile",
    )
    torch.manual_seed(0)
    trainer = Trainer(ConvAE(), cfg, train, val, dev)
    with contextlib.redirect_stdout(io.StringIO()):
        history = trainer.fit()
    return history[-1]["images_per_s"]


def peak_of(name: str) -> dict | None:
    for pattern, fp32, tf32, bf16 in PEAKS:
        if re.search(pattern, name):
            return {"fp32": fp32, "tf32": tf32, "bf16": bf16}
    return None


def throughput(c: Check, run: list[str]) -> dict:
    """images/s of the variants in `run` at each batch size, against the card's ceiling."""
    import torch

    if c.device.startswith("cuda"):
        name = torch.cuda.get_device_name() if torch.cuda.is_available() else "no GPU here"
    else:
        name = c.device
    peak, flops = peak_of(name), flops_per_image(c.device)
    rows = []
    for v in VARIANTS:
        for b in c.batches:
            ips = images_per_s(c, v, b) if v in run else None
            # A float32 (or compiled float32) run is bounded by TF32 (cuDNN's default for convolutions).
            tflops = None if peak is None else peak["bf16" if v == "bf16" else "tf32"]
            ceiling = tflops * 1e12 / flops if tflops else None
            rows.append(
                {
                    "variant": v,
                    "batch": b,
                    "images_per_s": ips,
                    "achieved_tflops": None if ips is None else ips * flops / 1e12,
                    "ceiling_images_per_s": ceiling,
                    "of_ceiling": None if ips is None or ceiling is None else ips / ceiling,
                }
            )
            if ips is not None:
                print(f"  {v:8s} batch {b:5d}: {ips:12,.0f} images/s", flush=True)
    return {"device_name": name, "peak_tflops": peak, "flops_per_image": flops, "rows": rows}


# ---------------------------------------------------------------- report


def _status(row: dict) -> str:
    if row.get("exit") is None:
        return "parsed, not run"
    if row["exit"] == 0:
        return f"ok, {row['seconds']:.1f} s"
    return f"FAILED (exit {row['exit']}): {row['error']}"


def _num(v, fmt: str) -> str:
    return "" if v is None or (isinstance(v, float) and math.isnan(v)) else format(v, fmt)


def table(result: dict) -> str:
    t, lines = result["throughput"], []
    lines += [
        f"# udl GPU check: {t['device_name']}, {result['date']}",
        "",
        f"{result['machine']}; --device {result['device']}, data {result['data']}; mode {result['mode']}.",
        "",
        "| command | result | command line |",
        "| --- | --- | --- |",
    ]
    lines += [f"| {r['command']} | {_status(r)} | `{r['line']}` |" for r in result["commands"]]
    lines += [
        "",
        f"`udl train ae` at batch 256: --precision bf16 and --compile against float32 (bar: within {LOSS_BAR:.0%})",
        "",
        "| variant | result | test MSE | vs float32 | within the bar |",
        "| --- | --- | --- | --- | --- |",
    ]
    for r in result["fastpath"]:
        ok = {True: "yes", False: "**no**", None: ""}[r["within_bar"]]
        lines.append(
            f"| {r['variant']} | {_status(r)} | {_num(r['test_mse'], '.5f')} | "
            f"{_num(r['vs_fp32'], '+.1%')} | {ok} |"
        )
    peak = t["peak_tflops"]
    lines += [
        "",
        f"The AE's training throughput: {t['flops_per_image'] / 1e6:.2f} MFLOP an image (forward and backward); "
        + (
            f"peak {peak['tf32']:g} TFLOP/s TF32 and {peak['bf16']:g} bf16 (dense), so the ceiling is "
            f"{peak['tf32'] * 1e12 / t['flops_per_image']:,.0f} images/s in fp32 (TF32) and "
            f"{peak['bf16'] * 1e12 / t['flops_per_image']:,.0f} in bf16."
            if peak
            else f"{t['device_name']}: unknown card (no peak in PEAKS), so no ceiling."
        ),
        "",
        "| variant | batch | images/s | TFLOP/s | of the ceiling |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for r in t["rows"]:
        lines.append(
            f"| {r['variant']} | {r['batch']:,} | {_num(r['images_per_s'], ',.0f')} | "
            f"{_num(r['achieved_tflops'], '.3f')} | {_num(r['of_ceiling'], '.3%')} |"
        )
    a = result["anchor"]
    lines += [
        "",
        f"Anchor ({a['anchor']['source']}: kNN {a['anchor']['knn']}, {a['anchor']['minutes']:g} min):",
        "",
    ]
    lines += [f"- {r['command']}: {_status(r)}; `{r['line']}`" for r in a["commands"]]
    if a["knn"] is not None:
        verdict = "reached" if a["reached"] else "**not reached**"
        lines.append(f"- kNN (k = 200, cosine) {a['knn']:.3f} in {a['minutes']:.1f} min: {verdict}")
    return "\n".join(lines) + "\n"


PARTS = ("commands", "fastpath", "throughput")
"""What a check runs by default; the long anchor part runs with --anchor (or --only anchor)."""


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--device", default="cuda", help="cuda (default), cuda:N, cpu or mps")
    ap.add_argument("--dataset", default="mnist-sample", help="default mnist-sample: works offline")
    ap.add_argument("--limit", type=int, default=None, help="training images of each command")
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--out", type=Path, default=Path("gpu_check"), help="default gpu_check/")
    ap.add_argument("--tiny", action="store_true", help="every part at its smallest (the CPU, CI)")
    ap.add_argument(
        "--only",
        default=",".join(PARTS),
        help="the parts that run: commands,fastpath,throughput[,anchor] (the others' command lines are parsed)",
    )
    ap.add_argument("--dry-run", action="store_true", help="run nothing: parse every command line")
    ap.add_argument(
        "--anchor",
        action="store_true",
        help="also issue 28's anchor: SimCLR, ResNet-18, CIFAR-10, 200 epochs at batch 512 (hours)",
    )
    a = ap.parse_args(argv)
    parts = set() if a.dry_run else set(a.only.split(",")) | ({"anchor"} if a.anchor else set())
    if parts - {*PARTS, "anchor"}:
        ap.error(f"--only takes {', '.join(PARTS)}, anchor")
    import torch

    if a.device.startswith("cuda") and not torch.cuda.is_available() and parts:
        print(
            f"error: --device {a.device}: no CUDA GPU on this machine; "
            "python benchmarks/gpu_check.py --device cpu --tiny checks the script itself",
            file=sys.stderr,
        )
        return 2
    if a.out.exists() and any(a.out.iterdir()):
        print(f"error: {a.out} is not empty: give a new --out", file=sys.stderr)
        return 2
    a.out.mkdir(parents=True, exist_ok=True)
    c = Check(
        device=a.device,
        dataset=a.dataset,
        limit=a.limit or (200 if a.tiny else None),
        out=a.out.resolve(),
        data_dir=a.data_dir,
        tiny=a.tiny,
        batches=(32, 128) if a.tiny else (256, 1024, 4096),
        images=256 if a.tiny else 65_536,
    )
    # torch.compile on a CPU compiles C++ for every batch size (about 40 s a shape on 2 cores): a
    # tiny CPU check parses its command line and leaves the run to a GPU.
    notes, variants = [], list(VARIANTS)
    if a.tiny and a.device == "cpu":
        variants.remove("compile")
        notes.append("--compile parsed, not run: a CPU compiles each shape for about 40 s")
    t0 = time.perf_counter()
    print(f"udl GPU check on {a.device}: {machine()}", flush=True)
    print("commands:", flush=True)
    cmds = run_commands(c, "commands" in parts)
    print("fast paths:", flush=True)
    fast = fast_paths(c, variants if "fastpath" in parts else [])
    print("images/s:", flush=True)
    speed = throughput(c, variants if "throughput" in parts else [])
    print("anchor:", flush=True)
    anchor = run_anchor(c, "anchor" in parts)
    result = {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": machine(),
        "device": a.device,
        "data": a.dataset + (f", limit {c.limit}" if c.limit else ""),
        "mode": ("tiny " if a.tiny else "")
        + ("+".join(p for p in (*PARTS, "anchor") if p in parts) or "dry-run"),
        "commands": cmds,
        "fastpath": fast,
        "throughput": speed,
        "anchor": anchor,
        "notes": notes,
        "seconds": round(time.perf_counter() - t0, 1),
    }
    (c.out / "gpu_check.json").write_text(json.dumps(result, indent=2) + "\n")
    text = table(result) + "".join(f"\n{n}\n" for n in notes)
    text += f"\nTotal {result['seconds']:.0f} s.\n"
    (c.out / "gpu_check.md").write_text(text)
    print("\n" + text)
    failed = [r for r in cmds + fast if r["exit"] not in (0, None)]
    failed += [r for r in anchor["commands"] if r["exit"] not in (0, None)]
    missed = [r for r in fast if r["within_bar"] is False]
    return 1 if failed or missed else 0


if __name__ == "__main__":
    sys.exit(main())
