"""One adapter per command a study step can run: call its engine function, return the run folder, key numbers and figures."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from udlcli.config import dump_yaml, flatten
from udlcli.errors import Interrupted
from udlcli.tasks.reproduce.study import Step


@dataclass
class StepOutput:
    """What a finished step leaves for later steps and for the report (JSON-safe: it is the step's done-marker)."""

    run_dir: str
    numbers: dict[str, Any] = field(default_factory=dict)
    """The step's key numbers, as label -> value, for the report's tables."""
    figures: list[str] = field(default_factory=list)
    """Image files (PNG or GIF) in the order the report shows them."""

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class Context:
    """What every step shares: where steps write, the study's data section, and the command line's device/seed/data-dir."""

    root: Path
    data: dict
    outputs: dict[str, StepOutput]
    device: str | None = None
    seed: int | None = None
    data_dir: str | None = None
    track: str | None = None
    """--track for every step that trains (train.track), and where MLflow logs (train.mlflow_uri)."""
    mlflow_uri: str | None = None

    def run_of(self, step_name: str) -> Path:
        return Path(self.outputs[step_name].run_dir)

    def flags(self, step: Step) -> dict[str, Any]:
        """The study's data section < the step's spec < the command line's device, seed and data dir, as dotted flags."""
        out = flatten({"data": self.data}) | flatten(getattr(step.params, "spec", {}) or {})
        given = {
            "train.device": self.device,
            "train.seed": self.seed,
            "data.data_dir": self.data_dir,
            "train.track": self.track,
            "train.mlflow_uri": self.mlflow_uri,
        }
        return out | {k: v for k, v in given.items() if v is not None}

    def common(self) -> dict[str, Any]:
        """Keyword arguments of the commands that read a run rather than train one."""
        return dict(seed=self.seed or 0, device=self.device, data_dir=self.data_dir)


def _pngs(folder: Path) -> list[str]:
    return [str(p) for p in sorted(folder.glob("*.png"))]


# ---------------------------------------------------------------- adapters


def run_tune(step: Step, ctx: Context) -> StepOutput:
    from udlcli.tasks.tune import run as tune

    p = step.params
    # A search: section (ranges) is read from a YAML file by the tune engine, so it goes there; the rest are flags.
    flags = {
        k: v
        for k, v in ctx.flags(step).items()
        if not k.startswith("search.") and k != "train.seed"
    }  # the seed is TuneOptions'
    config_path = None
    if p.spec.get("search"):
        config_path = ctx.root / "tune" / f"{step.name}.search.yaml"
        config_path.parent.mkdir(parents=True, exist_ok=True)
        config_path.write_text(dump_yaml({"search": p.spec["search"]}))
    if p.from_:
        flags["finetune.ae"] = str(ctx.run_of(p.from_))
    opts = tune.TuneOptions(
        objective=step.what,
        study_name=step.name,
        trials=p.trials,
        max_epochs=p.max_epochs,
        pruner=p.pruner,
        n_jobs=p.n_jobs,
        seed=ctx.seed or 0,
        out=ctx.root,
        command=f"udl reproduce (step {step.name})",
    )
    r = tune.tune(opts, str(config_path) if config_path else None, flags, [])
    if r.interrupted:
        raise Interrupted(
            f"step {step.name} was interrupted; its study keeps {r.summary['finished']} finished trials"
        )
    s, best = r.summary, r.summary.get("best") or {}
    numbers = {
        "trials": f"{s['complete']} complete, {s['pruned']} pruned, {s['failed']} failed",
        "epochs trained": s["epochs_trained"],
        f"best {s['metric']}": best.get("value"),
    }
    numbers.update({f"best {k}": v for k, v in (r.top[0]["params"] if r.top else {}).items()})
    return StepOutput(str(r.study_dir), numbers, _pngs(r.study_dir / "figures"))


def run_train(step: Step, ctx: Context) -> StepOutput:
    from udlcli.core.spec import resolve_spec
    from udlcli.tasks import train

    p = step.params
    config = str(ctx.run_of(p.best_of) / "best.yaml") if getattr(p, "best_of", None) else None
    # A `gan` step is `train gan` (the command names the model).
    spec = resolve_spec(step.what or step.command, config, ctx.flags(step), None)
    r = train.train(
        spec,
        train.RunOptions(out=ctx.root, name=step.name, command=f"udl reproduce (step {step.name})"),
    )
    s = r.summary
    numbers = {
        k: getattr(spec.model, k) for k in ("channels", "latent_dim") if hasattr(spec.model, k)
    }
    if "arch" in s:
        numbers["arch"] = s["arch"]
    numbers |= {
        "optimizer": spec.train.optimizer,
        "lr": spec.train.lr,
        "weight decay": spec.train.weight_decay,
        "epochs": s["epochs"],
    }
    if "test_mse" in s:
        numbers["test MSE ([0,1] pixels)"] = s["test_mse"]
    numbers |= {
        f"test {k}": v
        for k, v in (s.get("test") or {}).items()
        if not ("test_mse" in s and k == "loss")
    }
    numbers |= {f"final {k}": v for k, v in (s.get("final") or {}).items()}
    if "failure_detected" in s:
        numbers["failure detected"] = s["failure_detected"]
    gif = r.run_dir / "samples" / "progress.gif"
    return StepOutput(
        str(r.run_dir),
        numbers,
        _pngs(r.run_dir / "figures") + ([str(gif)] if gif.is_file() else []),
    )


def run_embed(step: Step, ctx: Context) -> StepOutput:
    from udlcli.tasks.embed.run import embed

    p = step.params
    r = embed(
        ctx.run_of(p.from_),
        ctx.root,
        method=p.method,
        n=p.n,
        perplexity=p.perplexity,
        command=f"udl reproduce (step {step.name})",
        **ctx.common(),
    )
    m = r.info["metrics"]
    numbers = {
        "points": r.info["n"],
        "5-NN accuracy, latent": m["knn5_latent"],
        "5-NN accuracy, 2-D map": m["knn5_map"],
        "silhouette, latent": m["silhouette_latent"],
        "silhouette, 2-D map": m["silhouette_map"],
        "trustworthiness (k=10)": m["trustworthiness_k10"],
        "reduce time (s)": r.info["reduce_time_s"],
    }
    return StepOutput(
        str(r.run_dir / "embed"), numbers, [str(f) for f in r.files if f.suffix == ".png"]
    )


def run_sample(step: Step, ctx: Context) -> StepOutput:
    from udlcli.tasks.sample import sample

    p = step.params
    given = {
        k: v
        for k, v in dict(n=p.n, grid=p.grid, size=p.size, interpolate=p.interpolate).items()
        if v not in (None, False)
    }
    r = sample(
        step.what,
        run=ctx.run_of(p.from_),
        root=ctx.root,
        command=f"udl reproduce (step {step.name})",
        **ctx.common(),
        **given,
    )
    return StepOutput(
        str(r.run_dir / "samples"),
        dict(r.rows),
        [str(f) for f in r.files if f.suffix in (".png", ".gif")],
    )


def run_finetune(step: Step, ctx: Context) -> StepOutput:
    from udlcli.tasks import finetune

    p = step.params
    config = str(ctx.run_of(p.best_of) / "best.yaml") if p.best_of else None
    flags = ctx.flags(step) | {"finetune.ae": str(ctx.run_of(p.from_))}
    spec = finetune.resolve_finetune_spec(config, flags, [])
    r = finetune.finetune(
        spec,
        finetune.RunOptions(
            out=ctx.root, name=step.name, command=f"udl reproduce (step {step.name})"
        ),
    )
    s = r.summary
    numbers = {
        "encoder": s["encoder"],
        "hidden": spec.finetune.hidden,
        "dropout": spec.finetune.dropout,
        "epochs": s["epochs"],
        "test accuracy": s["test_accuracy"],
    }
    numbers |= {
        f"baseline: {k}": v
        for k, v in (s.get("baselines") or {}).items()
        if isinstance(v, (int, float))
    }
    return StepOutput(str(r.run_dir), numbers, _pngs(r.run_dir / "figures"))


def run_denoise(step: Step, ctx: Context) -> StepOutput:
    from udlcli.core.lifecycle import RunOptions
    from udlcli.tasks.denoise import run as denoise

    p = step.params
    like = ctx.run_of(p.like) if p.like else None
    spec = denoise.denoise_spec(None, ctx.flags(step), None, like, root=ctx.root)
    r = denoise.train_and_evaluate(
        spec,
        RunOptions(out=ctx.root, name=step.name, command=f"udl reproduce (step {step.name})"),
        compare=like,
    )
    numbers: dict[str, Any] = {}
    for kind, row in r.table["rows"].items():
        numbers[f"{kind}: denoised PSNR (dB)"] = row["dae"]["psnr"]
        if row.get("gain_db") is not None:
            numbers[f"{kind}: gain over noisy (dB)"] = row["gain_db"]
        if "ae" in row:
            numbers[f"{kind}: plain AE PSNR (dB)"] = row["ae"]["psnr"]
    return StepOutput(str(r.run_dir), numbers, _pngs(r.run_dir / "figures"))


def run_evaluate(step: Step, ctx: Context) -> StepOutput:
    from udlcli.core.runs import write_json
    from udlcli.tasks.evaluate.run import evaluate

    p = step.params
    c = ctx.common()
    rep = evaluate(
        [ctx.run_of(r) for r in p.runs],
        n=p.n,
        seed=c["seed"],
        device=c["device"] or "auto",
        data_dir=c["data_dir"],
        command=f"udl reproduce (step {step.name})",
    )
    # The rows keep the order of the runs given, so each is named by its step.
    labelled = [
        (rep.references[0].label, rep.references[0]),
        *((f"{r} ({row.kind})", row) for r, row in zip(p.runs, rep.rows)),
        (rep.references[1].label, rep.references[1]),
    ]
    numbers: dict[str, Any] = {}
    for label, row in labelled:
        m, b = row.metrics, row.metrics["balance"]
        numbers[f"{label}: FID (udl-LeNet)"] = m["fid"]
        numbers[f"{label}: precision / recall"] = f"{m['precision']:.3f} / {m['recall']:.3f}"
        numbers[f"{label}: class share min–max"] = f"{b['min_share']:.1%}–{b['max_share']:.1%}"
    out = ctx.root / "evaluate" / step.name
    out.mkdir(parents=True, exist_ok=True)
    write_json(
        out / "evaluation.json",
        {
            "rows": {r.label: r.metrics for r in [*rep.references, *rep.rows]},
            "steps": {name: row.metrics for name, row in zip(p.runs, rep.rows)},
            "featurenet": rep.featurenet,
        },
    )
    return StepOutput(str(out), numbers, [])


def run_probe(step: Step, ctx: Context) -> StepOutput:
    from udlcli.tasks.probe import probe

    p = step.params
    r = probe(
        ctx.run_of(p.from_),
        ctx.root,
        features=p.features,
        k=p.k,
        data_dir=ctx.data_dir,
        device=ctx.device,
        command=f"udl reproduce (step {step.name})",
    )
    n = r.numbers
    numbers = {
        "features": f"{n['features']} ({n['width']:,})",
        "linear probe accuracy": n["linear_probe"],
        f"{p.k}-NN accuracy (cosine)": n[f"knn{p.k}_cosine"],
        "train / test images": f"{n['train_images']:,} / {n['test_images']:,}",
    }
    return StepOutput(str(r.run_dir), numbers, [])


RUNNERS: dict[str, Callable[[Step, Context], StepOutput]] = {
    "tune": run_tune,
    "train": run_train,
    "embed": run_embed,
    "sample": run_sample,
    "finetune": run_finetune,
    "denoise": run_denoise,
    "gan": run_train,  # `udl gan` is `udl train gan`
    "evaluate": run_evaluate,
    "probe": run_probe,
}
