"""CPU speed of every family (issue #34): training and sampling images/s in fp32, channels-last, bf16 and compile.

The evidence for `--precision auto` (udlcli/core/fastpath.py): a family whose class says
`bf16_pays` (the ddpm/flow U-Net, the SimCLR/BYOL backbones) trains in bf16 on a CPU with AMX or
AVX512-BF16 units; the others train in float32. One run measures, for each family,

    fp32            float32, the model and its inputs contiguous (the baseline: every ratio is against it)
    channels-last   float32, the model and its inputs channels_last (what the Trainer does on a CPU)
    bf16            channels_last, autocast(bfloat16), as --precision bf16
    compile         channels_last, float32, the loss through torch.compile, as --compile; its compile
                    time is counted apart (compile_s) and in the total of all its steps (total_s)

Training: the trainer's own step (udlcli.core.steps.step_for: the loss under the precision, the
optimiser, gradient clipping; BYOL's after_step), on one batch of random pixels at the family's
default batch size (speed does not depend on what the pixels show). The GAN (`dcgan`: `udl train
gan --arch dcgan`) takes its own steps, which `udl train` runs in float32, eager: its bf16 is its
step under autocast and its compile its G and D through torch.compile, measuring what udl leaves
out. Sampling, for the families that generate: model.generate(n) as `udl sample` calls it, with
each family's default sampler (ddpm: DDIM, 50 steps; flow: Euler, 20 steps; the AE: a Gaussian
fitted to its codes first); bf16 under autocast(bfloat16); compile: the model's networks (its child
modules) through torch.compile (`udl sample` has no --compile: what it would gain).

The variants are interleaved (fp32, channels-last, bf16, compile, fp32, ...) after a warm-up of
each, so a drifting machine slows all alike; images/s is the median over the timed steps. Without
bf16 units bf16 is measured too, but over fewer steps (it is much slower there).

    python benchmarks/cpu_speed.py                          # every family, 20 steps, all threads
    python benchmarks/cpu_speed.py --threads 1 --families flow,simclr --markdown
    python benchmarks/cpu_speed.py --tiny --json out.json  # the smallest models, 2 steps (CI)

--tiny compiles through dynamo's `eager` backend (traced, not compiled to C++: inductor takes
minutes a shape on a 2-core CPU); --compile-backend inductor compiles anyway.
    python benchmarks/cpu_speed.py --parity                 # also bf16's loss against fp32's
    python benchmarks/cpu_speed.py --default-runs --dry-run # the default runs' commands, checked

--parity: 200 steps of the flow U-Net and SimCLR (their defaults) on real digits (mnist-sample),
fp32 and bf16 from the same seed; the mean loss of the last 20 steps of each, bf16 within
PARITY_TOL (5% relative) of fp32. --default-runs: `udl train flow` and `udl train simclr` with
their defaults in fp32 and in bf16, then `udl evaluate` (FID) and `udl probe` (linear and kNN):
about 2 to 4 hours on 2 cores. --markdown prints the table for docs/ (one table per CPU).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shlex
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from train_throughput import machine, random_images  # noqa: E402  (the benchmarks' shared helpers)

FAMILIES: dict[str, tuple[str, list[str]]] = {
    # name here -> (registry family, --set overrides): `udl train FAMILY --set ...` trains the same.
    "ae": ("ae", []),
    "vae": ("vae", []),
    "dcgan": ("gan", ["model.arch=dcgan"]),
    "ddpm": ("ddpm", []),
    "flow": ("flow", []),
    "simclr": ("simclr", []),
    "byol": ("byol", []),
}
TINY_EXTRA = {"dcgan": {"model.channels": 8}}
"""What the registry's tiny overlay leaves large: the GAN's overlay is the MLP's."""

SAMPLERS = {"ddpm": "DDIM, 50 steps", "flow": "Euler, 20 steps", "ae": "a Gaussian of its codes"}
"""The default sampler of the families whose generate() takes one (`udl sample`'s default)."""

PARITY_TOL = 0.05
"""bf16's final training loss within 5% (relative) of float32's, the same seed and data."""
PARITY_FAMILIES = ("flow", "simclr")
DEFAULT_RUN_FAMILIES = ("flow", "simclr")


@dataclass(frozen=True)
class Variant:
    name: str
    channels_last: bool
    precision: str
    """'32' or 'bf16' (fastpath.DTYPES)."""
    compile: bool

    @property
    def layout(self) -> str:
        return "channels_last" if self.channels_last else "contiguous"


VARIANTS = (
    Variant("fp32", False, "32", False),
    Variant("channels-last", True, "32", False),
    Variant("bf16", True, "bf16", False),
    Variant("compile", True, "32", True),
)
BASELINE = "fp32"
INDUCTOR = "inductor"
"""torch.compile's default backend, the one --compile uses: C++ on a CPU, about 2 minutes for even
the tiny U-Net's training step on a busy 2-core CPU (cold cache). --tiny compiles through dynamo's
`eager` backend instead (traced, run by torch's own kernels: the variant's machinery in seconds)."""
TINY_BACKEND = "eager"


# ---------------------------------------------------------------- the machine


def cpu_model() -> str:
    """lscpu's "Model name", else /proc/cpuinfo's, else the platform's."""
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10).stdout
        for line in out.splitlines():
            if line.strip().startswith("Model name:"):
                return line.split(":", 1)[1].strip()
    except (OSError, subprocess.SubprocessError):
        pass
    line = machine().split(", ")[0]  # /proc/cpuinfo's model name, else platform.processor()
    return line or platform.machine()


def cpu_info() -> dict:
    from udlcli.core.fastpath import cpu_bf16_units

    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        text = ""
    flags = sorted(k for k in ("avx512_bf16", "amx_bf16", "amx_tile") if f" {k}" in text)
    caps = getattr(torch.backends.cpu, "get_cpu_capability", lambda: None)()
    return {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "threads": torch.get_num_threads(),
        "bf16_units": cpu_bf16_units(),
        "bf16_flags": flags,
        "torch_cpu_capability": caps,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "machine": machine(),
    }


# ---------------------------------------------------------------- models and steps


def resolved(name: str, tiny: bool, shape, batch: int | None):
    """The family's spec as `udl train` resolves it (its tiny overlay with --tiny), for random images of `shape`."""
    from udlcli.config import flatten
    from udlcli.core.spec import resolve_spec
    from udlcli.models import get

    family, sets = FAMILIES[name]
    flags = {**flatten(get(family).tiny), **TINY_EXTRA.get(name, {})} if tiny else {}
    if batch:
        flags["train.batch_size"] = batch
    spec = resolve_spec(family, flags=flags, sets=list(sets))
    spec.data.shape = list(shape)
    if spec.data.mean is None:  # the GAN's data defaults normalise to [-1, 1]; the others' stats
        spec.data.mean, spec.data.std = [0.5] * shape[0], [0.29] * shape[0]  # uniform pixels'
    return spec


def fresh(name: str, spec, seed: int, device) -> torch.nn.Module:
    from udlcli.models import get

    torch.manual_seed(seed)
    return get(FAMILIES[name][0]).build(spec.model, spec.data).to(device)


def layout(model: torch.nn.Module, x: torch.Tensor, v: Variant):
    if v.channels_last:
        model.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    return model, x


def compile_children(model: torch.nn.Module, backend: str) -> None:
    """Each of the model's networks (its child modules) through torch.compile, in place (weights untouched)."""
    for child in model.children():
        child.compile(backend=backend)


def train_step(
    name: str, spec, v: Variant, x, y, seed: int, device, backend: str = INDUCTOR
) -> Callable[[], float]:
    """One training step of the variant as `udl train` takes it: the trainer's own step (step_for)."""
    from udlcli.core import fastpath
    from udlcli.core.contracts import Adversarial, Steps
    from udlcli.core.steps import step_for
    from udlcli.rows import Rows

    model, x = layout(fresh(name, spec, seed, device), x, v)
    trainers = v.compile and backend == INDUCTOR  # --compile's own torch.compile(model.loss)
    cfg = spec.train.model_copy(update={"precision": v.precision, "compile": trainers})
    step = step_for(model, cfg, device, 1)
    own = isinstance(model, Adversarial)  # OwnStep: float32, eager in udl; measured as it would be
    if own and v.compile:
        compile_children(model, backend)
    elif v.compile and not trainers:  # the same loss function through another backend
        step.loss_fn = torch.compile(model.loss, backend=backend)
    cast = fastpath.autocast(device, v.precision) if own else contextlib.nullcontext()
    after = isinstance(model, Steps)
    rows = Rows()
    model.train()

    def one() -> float:
        with cast:
            out = step(x, y, rows)
        if after:
            model.after_step(0.5)
        return float(next(iter(out.values())).detach())  # read: the step has finished

    return one


def sample_call(
    name: str, spec, v: Variant, n: int, seed: int, device, backend: str = INDUCTOR
) -> Callable[[], object]:
    """One model.generate(n) of the variant (the family's default sampler), under no_grad."""
    from udlcli.core import fastpath
    from udlcli.core.contracts import FitsSampler

    model = fresh(name, spec, seed, device).eval()
    if v.channels_last:
        model.to(memory_format=torch.channels_last)
    if isinstance(model, FitsSampler):  # the AE draws codes from a Gaussian fitted to its codes
        x = torch.rand(256, *spec.data.shape, generator=torch.Generator().manual_seed(seed))
        with torch.no_grad():
            model.fit_sampler(model.encode(x.to(device)).float().cpu().numpy(), seed=seed)
    if v.compile:
        compile_children(model, backend)

    def one():
        with torch.no_grad(), fastpath.autocast(device, v.precision):
            return model.generate(n, torch.Generator().manual_seed(seed))

    return one


# ---------------------------------------------------------------- timing


@dataclass
class Timed:
    """One variant's calls: warm-up first, then the timed ones interleaved with the other variants'."""

    variant: Variant
    call: Callable | None
    images: int
    """Images one call handles (the batch, or the samples drawn)."""
    steps: int
    warmup_s: list[float] = field(default_factory=list)
    times: list[float] = field(default_factory=list)
    error: str = ""

    def run(self, into: list[float]) -> None:
        if self.call is None:
            return
        # A variant this machine cannot run (a compile that fails): noted, the others go on.
        try:
            t0 = time.perf_counter()
            self.call()
            into.append(time.perf_counter() - t0)
        except Exception as e:
            self.error = f"{type(e).__name__}: {(str(e).strip().splitlines() or [''])[0][:200]}"
            self.call = None

    def result(self) -> dict:
        if not self.times:
            return {
                "layout": self.variant.layout,
                "precision": self.variant.precision,
                "images_per_s": None,
                "error": self.error or "not run",
            }
        med = statistics.median(self.times)
        total = sum(self.warmup_s) + sum(self.times)
        calls = len(self.warmup_s) + len(self.times)
        r = {
            "layout": self.variant.layout,
            "precision": self.variant.precision,
            "images_per_s": self.images / med,
            "steps": len(self.times),
            "warmup_steps": len(self.warmup_s),
            "median_s": med,
            "first_s": self.warmup_s[0] if self.warmup_s else None,
            # Every call, warm-up (and so compiling) included: what a run of `calls` steps waits.
            "total_s": total,
            "total_steps": calls,
            "total_images_per_s": self.images * calls / total,
        }
        if self.variant.compile:  # the warm-up's time over that of as many steady steps
            r["compile_s"] = max(sum(self.warmup_s) - len(self.warmup_s) * med, 0.0)
        return r


def interleaved(timed: list[Timed], warmup: int) -> dict[str, dict]:
    """Warm each up, then rounds of one call of each (A B C D A B C D ...); each its median images/s."""
    for t in timed:
        for _ in range(warmup):
            t.run(t.warmup_s)
    for i in range(max(t.steps for t in timed)):  # rounds: one call of each variant
        for t in timed:
            if i < t.steps:
                t.run(t.times)
    out = {t.variant.name: t.result() for t in timed}
    base = out[BASELINE]["images_per_s"]
    for r in out.values():
        ips = r["images_per_s"]
        r["vs_fp32"] = ips / base if ips is not None and base else None
    return out


def timed_variants(
    make: Callable[[Variant], Callable], images: int, steps: dict, warmup: int, no_compile: str
) -> dict[str, dict]:
    """Every variant's calls (make(variant) sets one up), timed interleaved."""
    timed = []
    for v in VARIANTS:
        if v.compile and no_compile:  # torch.compile does not work here: said, not measured
            timed.append(Timed(v, None, images, 0, error=no_compile))
        else:
            timed.append(Timed(v, make(v), images, steps[v.name]))
    return interleaved(timed, warmup)


def measure(name: str, o: Options, device) -> dict:
    """One family: its training step's and (when it generates) its sampling's images/s, every variant."""
    from udlcli.core.contracts import Adversarial, Generates
    from udlcli.data import transform

    spec = resolved(name, o.tiny, o.shape, o.batch)
    batch = spec.train.batch_size
    x = transform.as_nchw(random_images(o.shape, batch, seed=o.seed)).float().div_(255).to(device)
    y = torch.randint(0, 10, (batch,), generator=torch.Generator().manual_seed(o.seed)).to(device)
    probe = fresh(name, spec, o.seed, device)
    steps = {v.name: o.steps for v in VARIANTS}
    notes = []
    if o.bf16_units is None:
        steps["bf16"] = max(1, min(o.steps, o.bf16_cap))
        notes.append(f"no bf16 units: bf16 timed over {steps['bf16']} steps, not {o.steps}")
    if isinstance(probe, Adversarial):
        notes.append(
            "takes its own steps, which udl trains float32 and eager: bf16 is its step under "
            "autocast and compile its G and D compiled, what udl leaves out"
        )
    out = {
        "family": FAMILIES[name][0],
        "set": FAMILIES[name][1],
        "batch": batch,
        "parameters": sum(p.numel() for p in probe.parameters()),
        "bf16_pays": bool(getattr(type(probe), "bf16_pays", False)),
        "notes": notes,
    }
    out["train"] = timed_variants(
        lambda v: train_step(name, spec, v, x, y, o.seed, device, o.backend),
        batch,
        steps,
        o.warmup,
        o.compile_error,
    )
    out["sample"] = None
    if isinstance(probe, Generates) and o.sample_n:
        rounds = {k: min(n, o.sample_rounds) for k, n in steps.items()}
        out["sample"] = timed_variants(
            lambda v: sample_call(name, spec, v, o.sample_n, o.seed, device, o.backend),
            o.sample_n,
            rounds,
            1,
            o.compile_error,
        )
        out["sampler"] = SAMPLERS.get(name, "prior draws, decoded (generate()'s only way)")
        out["sample_n"] = o.sample_n
    return out


@dataclass
class Options:
    families: list[str]
    steps: int
    warmup: int
    batch: int | None
    shape: tuple[int, ...]
    sample_n: int
    sample_rounds: int
    bf16_cap: int
    seed: int
    tiny: bool
    backend: str = "inductor"
    bf16_units: str | None = None
    compile_error: str = ""


def compile_works(device) -> str:
    """'' when torch.compile runs here, else why not (fastpath's own one-line check)."""
    from udlcli.config import TrainConfig
    from udlcli.core import fastpath
    from udlcli.errors import SpecError

    try:
        fastpath.check(TrainConfig(precision="32", compile=True), device)
        return ""
    except SpecError as e:
        return str(e)


# ---------------------------------------------------------------- quality parity


def parity(o: Options, device, steps: int, last: int, dataset: str, data_dir) -> dict:
    """A short training of each PARITY_FAMILIES family in fp32 and in bf16, the same seed and batches."""
    from udlcli import ui
    from udlcli.data import load_dataset, transform

    ui.set_quiet(True)
    with contextlib.redirect_stdout(sys.stderr):
        ds = load_dataset(dataset, data_dir, download=False)
    rows = {}
    for name in PARITY_FAMILIES:
        spec = resolved(name, o.tiny, tuple(ds.train.x.shape[1:]), o.batch)
        mean, std = transform.channel_stats(ds.train.x)  # as `udl train` computes them
        spec.data.mean, spec.data.std = list(map(float, mean)), list(map(float, std))
        spec.data.dataset = dataset
        losses = {
            p: train_losses(name, spec, ds.train, p, steps, o.seed, device) for p in ("32", "bf16")
        }
        fp32 = statistics.fmean(losses["32"][-last:])
        bf16 = statistics.fmean(losses["bf16"][-last:])
        rel = bf16 / fp32 - 1
        rows[name] = {
            "batch": spec.train.batch_size,
            "fp32_loss": fp32,
            "bf16_loss": bf16,
            "fp32_first_loss": statistics.fmean(losses["32"][:last]),
            "bf16_first_loss": statistics.fmean(losses["bf16"][:last]),
            "relative": rel,
            "within": abs(rel) <= PARITY_TOL,
        }
        print(
            f"  {name:7s} loss, mean of the last {last} of {steps} steps: fp32 {fp32:.4f}, "
            f"bf16 {bf16:.4f} ({rel:+.2%}; within {PARITY_TOL:.0%}: "
            f"{'yes' if rows[name]['within'] else 'NO'})",
            flush=True,
        )
    return {
        "dataset": dataset,
        "steps": steps,
        "last": last,
        "tolerance": PARITY_TOL,
        "families": rows,
    }


def train_losses(
    name: str, spec, train, precision: str, steps: int, seed: int, device
) -> list[float]:
    """`steps` training steps as the trainer takes them (its step, schedule and after_step) on real digits."""
    from udlcli.core.contracts import Steps
    from udlcli.core.optim import Schedule
    from udlcli.core.steps import step_for
    from udlcli.rows import Rows

    model = fresh(name, spec, seed, device)
    model.to(memory_format=torch.channels_last)  # as the Trainer has it on a CPU
    cfg = spec.train.model_copy(update={"precision": precision, "compile": False})
    step, after = step_for(model, cfg, device, 1), isinstance(model, Steps)
    schedule = Schedule(step.optimizers, cfg)
    shuffle = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)  # the noise and views each step draws: the same for both precisions
    model.train()
    losses: list[float] = []
    while len(losses) < steps:
        for x, y in train.batches(cfg.batch_size, shuffle):
            if len(x) < cfg.batch_size or len(losses) >= steps:
                continue  # drop_last, as SimCLR trains
            schedule.apply(len(losses), steps)
            losses.append(float(step(x.to(device), y.to(device), Rows())["loss"].detach()))
            if after:
                model.after_step(len(losses) / steps)
    return losses


# ---------------------------------------------------------------- default runs


def default_run_commands(out: Path, data_dir: str | None) -> list[tuple[str, list[str]]]:
    """`udl train flow|simclr` with their defaults, fp32 and bf16 on the CPU, then FID and the probes."""
    data = ["--data-dir", data_dir] if data_dir else []
    cmds = []
    for name in DEFAULT_RUN_FAMILIES:
        for label, precision in (("fp32", "32"), ("bf16", "bf16")):
            cmds.append(
                (
                    f"train {name} --precision {precision}",
                    ["train", name, "--precision", precision, "--device", "cpu", *data, "-q"]
                    + ["--out", str(out), "--name", label],
                )
            )
    flow = [str(out / "flow" / label) for label in ("fp32", "bf16")]
    cmds.append(("evaluate flow", ["evaluate", *flow, "--device", "cpu", *data, "-q"]))
    for label in ("fp32", "bf16"):
        run = str(out / "simclr" / label)
        cmds.append((f"probe simclr {label}", ["probe", run, "--device", "cpu", *data, "-q"]))
    return cmds


def default_runs(out: Path, data_dir: str | None, dry_run: bool) -> dict:
    import gpu_check  # its parse and run helpers: one way of checking a udl command line

    rows = []
    for label, args in default_run_commands(out, data_dir):
        line = "udl " + shlex.join(args)
        if dry_run:
            why = gpu_check.parses(args)
            row = {"command": label, "line": line, "exit": 2 if why else None, "error": why}
        else:
            row = {"command": label, "line": line} | gpu_check.udl(args, timeout=12 * 3600)
        status = "parsed, not run" if row["exit"] is None else f"exit {row['exit']} {row['error']}"
        print(f"  {line}\n      {status}", flush=True)
        rows.append(row)
    numbers: dict = {}
    for label in ("fp32", "bf16"):
        ev, pr = out / "flow" / label / "evaluation.json", out / "simclr" / label / "probe.json"
        ev = json.loads(ev.read_text()) if ev.is_file() else {}
        pr = json.loads(pr.read_text()) if pr.is_file() else {}
        numbers[label] = {
            "flow_fid": ev.get("fid"),
            "simclr_linear_probe": pr.get("linear_probe"),
            "simclr_knn200_cosine": pr.get("knn200_cosine"),
        }
    if not dry_run:
        for label, n in numbers.items():
            print(
                f"  {label}: flow FID {_f(n['flow_fid'], '.2f')}; simclr linear probe "
                f"{_f(n['simclr_linear_probe'], '.4f')}, kNN {_f(n['simclr_knn200_cosine'], '.4f')}"
            )
    return {"out": str(out), "dry_run": dry_run, "commands": rows, "numbers": numbers}


# ---------------------------------------------------------------- report


def _f(v, fmt: str, none: str = "-") -> str:
    return none if v is None else format(v, fmt)


def _x(v) -> str:
    return "-" if v is None else f"{v:.2f}x"


def rows_of(result: dict):
    """(family, variant, train row, sample row or None) for every measured variant."""
    for name, fam in result["families"].items():
        for v in VARIANTS:
            s = fam["sample"][v.name] if fam["sample"] else None
            yield name, v, fam["train"][v.name], s


def failures(result: dict) -> list[str]:
    out = []
    for name, v, t, s in rows_of(result):
        for what, r in (("training", t), ("sampling", s)):
            if r is not None and r.get("error"):
                out.append(f"{name} {v.name} {what}: {r['error']}")
    return out


def text_table(result: dict) -> str:
    head = (
        f"{'family':7s} {'variant':13s} {'layout':13s} {'batch':>5s} {'train img/s':>11s} "
        f"{'vs fp32':>7s} {'total s':>8s} {'compile s':>9s} {'sample img/s':>12s} {'vs fp32':>7s}"
    )
    lines = [head, "-" * len(head)]
    for name, v, t, s in rows_of(result):
        fam = result["families"][name]
        lines.append(
            f"{name:7s} {v.name:13s} {t['layout']:13s} {fam['batch']:5d} "
            f"{_f(t['images_per_s'], ',.1f'):>11s} {_x(t['vs_fp32']):>7s} "
            f"{_f(t.get('total_s'), '.2f'):>8s} {_f(t.get('compile_s'), '.2f', ''):>9s} "
            f"{_f(s and s['images_per_s'], ',.2f'):>12s} {_x(s and s['vs_fp32']):>7s}"
        )
    return "\n".join(lines + [f"  failed: {f}" for f in failures(result)])


def markdown(result: dict) -> str:
    m, st = result["machine"], result["settings"]
    units = m["bf16_units"] or "no bf16 units"
    lines = [
        f"### {m['cpu']} ({units}), {m['threads']} thread{'s' * (m['threads'] != 1)}",
        "",
        f"{m['cores']} cores, torch {m['torch']} (CPU capability {m['torch_cpu_capability']}), "
        f"{result['date'][:10]}; {st['steps']} timed steps after {st['warmup']} warm-up, median; "
        f"images {'x'.join(map(str, st['shape']))}{', tiny models' if st['tiny'] else ''}. "
        f"Sampling: {st['sample_n']} images a call, {st['sample_rounds']} calls. compile: "
        f"torch.compile, backend {st['compile_backend']}. total s: every training step of the "
        "variant, warm-up and compiling included.",
        "",
        "| family | variant | layout | batch | train img/s | vs fp32 | total s (steps) | compile s "
        "| sample img/s | vs fp32 |",
        "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name, v, t, s in rows_of(result):
        fam = result["families"][name]
        total = f"{t['total_s']:.1f} ({t['total_steps']})" if t.get("total_s") is not None else ""
        lines.append(
            f"| {name} | {v.name} | {t['layout']} | {fam['batch']} | "
            f"{_f(t['images_per_s'], ',.0f', 'failed')} | {_x(t['vs_fp32'])} | {total} | "
            f"{_f(t.get('compile_s'), '.1f', '')} | "
            f"{_f(s and s['images_per_s'], ',.1f', 'failed' if s else '')} | "
            f"{_x(s['vs_fp32']) if s else ''} |"
        )
    notes = [f"{n}: {f['sampler']}" for n, f in result["families"].items() if f.get("sampler")]
    notes += [f"{n}: {note}" for n, f in result["families"].items() for note in f["notes"]]
    notes += [f"failed: {f}" for f in failures(result)]
    lines += [""] + [f"- {n}" for n in notes]
    p = result.get("parity")
    if p:
        lines += [
            "",
            f"Parity: {p['steps']} steps on {p['dataset']}, mean loss of the last {p['last']}, "
            f"bf16 within {p['tolerance']:.0%} of fp32:",
            "",
            "| family | batch | fp32 loss | bf16 loss | bf16 vs fp32 | within |",
            "| --- | ---: | ---: | ---: | ---: | --- |",
        ]
        for name, r in p["families"].items():
            lines.append(
                f"| {name} | {r['batch']} | {r['fp32_loss']:.4f} | {r['bf16_loss']:.4f} | "
                f"{r['relative']:+.2%} | {'yes' if r['within'] else '**no**'} |"
            )
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument(
        "--families", default=",".join(FAMILIES), help=f"a subset of {','.join(FAMILIES)}"
    )
    p.add_argument("--steps", type=int, default=None, help="timed steps a variant (20; tiny 2)")
    p.add_argument("--warmup", type=int, default=None, help="warm-up steps a variant (2; tiny 1)")
    p.add_argument(
        "--batch", type=int, default=None, help="every family's batch (default: its own)"
    )
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    p.add_argument("--shape", default="1x28x28", help="CxHxW of the random images (MNIST's)")
    p.add_argument("--sample-n", type=int, default=None, help="images a sampling call (64; tiny 4)")
    p.add_argument(
        "--sample-rounds", type=int, default=None, help="timed sampling calls (5; tiny 2)"
    )
    p.add_argument("--bf16-cap", type=int, default=5, help="bf16's timed steps without bf16 units")
    p.add_argument(
        "--compile-backend",
        default=None,
        help=f"torch.compile's backend for the compile variant (default {INDUCTOR}, --compile's; "
        f"with --tiny {TINY_BACKEND}: traced, not compiled to C++)",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--tiny", action="store_true", help="the smallest models, 2 steps (the CI test)")
    p.add_argument("--no-speed", action="store_true", help="skip the speed table (with --parity)")
    p.add_argument(
        "--parity", action="store_true", help=f"bf16's loss against fp32's ({PARITY_TOL:.0%})"
    )
    p.add_argument("--parity-steps", type=int, default=None, help="200 (tiny 12)")
    p.add_argument(
        "--parity-dataset", default="mnist-sample", help="default mnist-sample (offline)"
    )
    p.add_argument(
        "--default-runs",
        action="store_true",
        help="train flow and simclr with their defaults in fp32 and bf16, then evaluate and probe (hours)",
    )
    p.add_argument("--dry-run", action="store_true", help="with --default-runs: parse, run nothing")
    p.add_argument("--out", type=Path, default=Path("cpu_speed_runs"), help="--default-runs' runs")
    p.add_argument("--data-dir", default=None, help="datasets (default $UDL_DATA_DIR)")
    p.add_argument("--json", type=Path, default=None, help="write the results here")
    p.add_argument("--markdown", action="store_true", help="print the table as markdown (docs/)")
    a = p.parse_args(argv)
    names = [n.strip() for n in a.families.split(",") if n.strip()]
    unknown = [n for n in names if n not in FAMILIES]
    if unknown:
        p.error(f"--families: unknown {', '.join(unknown)}; choose from {', '.join(FAMILIES)}")
    if a.threads:
        torch.set_num_threads(a.threads)
    from udlcli import ui

    ui.set_quiet(True)
    device = torch.device("cpu")
    o = Options(
        families=names,
        steps=a.steps or (2 if a.tiny else 20),
        warmup=a.warmup if a.warmup is not None else (1 if a.tiny else 2),
        batch=a.batch or (16 if a.tiny else None),
        shape=tuple(int(s) for s in a.shape.lower().split("x")),
        sample_n=a.sample_n if a.sample_n is not None else (4 if a.tiny else 64),
        sample_rounds=a.sample_rounds or (2 if a.tiny else 5),
        bf16_cap=a.bf16_cap,
        seed=a.seed,
        tiny=a.tiny,
        backend=a.compile_backend or (TINY_BACKEND if a.tiny else INDUCTOR),
    )
    info = cpu_info()
    o.bf16_units = info["bf16_units"]
    print(
        f"CPU: {info['cpu']}; bf16 units: {info['bf16_units'] or 'none'} (flags: "
        f"{', '.join(info['bf16_flags']) or 'none'}; torch's CPU capability {info['torch_cpu_capability']})"
    )
    print(
        f"{info['cores']} cores, {info['threads']} torch threads, torch {info['torch']}, "
        f"Python {info['python']}"
    )
    t0 = time.perf_counter()
    result: dict = {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": info,
        "settings": {
            "steps": o.steps,
            "warmup": o.warmup,
            "batch": o.batch,
            "shape": list(o.shape),
            "sample_n": o.sample_n,
            "sample_rounds": o.sample_rounds,
            "bf16_cap": o.bf16_cap,
            "tiny": o.tiny,
            "seed": o.seed,
            "compile_backend": o.backend,
            "variants": {
                v.name: {"layout": v.layout, "precision": v.precision, "compile": v.compile}
                for v in VARIANTS
            },
        },
        "families": {},
        "parity": None,
        "default_runs": None,
    }
    if not a.no_speed:
        o.compile_error = compile_works(device) if o.backend == INDUCTOR else ""
        if o.compile_error:
            print(f"compile: not measured: {o.compile_error}")
        print(
            f"\n{o.steps} timed steps a variant after {o.warmup} warm-up, interleaved; random "
            f"{a.shape} images; sampling {o.sample_n} images a call, {o.sample_rounds} calls; "
            f"compile: torch.compile backend {o.backend}"
        )
        for name in names:
            t1 = time.perf_counter()
            result["families"][name] = measure(name, o, device)
            print(f"  {name}: {time.perf_counter() - t1:.1f} s", flush=True)
        print()
        print(text_table(result))
        for name, fam in result["families"].items():
            for note in fam["notes"] + (
                [f"sampling: {fam['sampler']}"] if "sampler" in fam else []
            ):
                print(f"  {name}: {note}")
    if a.parity:
        steps = a.parity_steps or (12 if a.tiny else 200)
        last = max(1, min(20, steps // 4))
        print(f"\nparity: {steps} steps on {a.parity_dataset}, fp32 and bf16, the same seed:")
        data_dir = a.data_dir or os.environ.get("UDL_DATA_DIR")
        result["parity"] = parity(o, device, steps, last, a.parity_dataset, data_dir)
    if a.default_runs:
        print(
            "\ndefault runs (flow: 6 epochs of MNIST, FID of 10,000 samples; simclr: 20 epochs, "
            "probe): about 2 to 4 hours on 2 cores"
            + (": the command lines, parsed, none run" if a.dry_run else "")
        )
        result["default_runs"] = default_runs(a.out.resolve(), a.data_dir, a.dry_run)
    result["seconds"] = round(time.perf_counter() - t0, 1)
    if a.markdown and result["families"]:
        print("\n" + markdown(result))
    if a.json:
        a.json.write_text(json.dumps(result, indent=2) + "\n")
    print(f"\nTotal {result['seconds']:.0f} s.")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
