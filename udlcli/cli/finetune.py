"""`udl finetune [AE_RUN]`: parse options, call the finetune engine (train, resume or --predict), print the result."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer

from udlcli import ui
from udlcli.cli.common import (
    ColorOpt,
    DataDirOpt,
    DeviceOpt,
    DevicesOpt,
    FlagTable,
    ImageSizeOpt,
    MlflowUriOpt,
    NameOpt,
    OutOpt,
    PortOpt,
    QuietOpt,
    SeedOpt,
    TrackOpt,
    command_line,
    config_option,
    error,
    friendly_errors,
    launch_ranks,
    set_option,
    setup,
)

ConfigOpt = config_option("spec with finetune:/data:/train: sections")
SetOpt = set_option("finetune.hidden=512")

HEAD = "Head"
TRAIN = "Training"
FLAGS = FlagTable(
    ae="finetune.ae",
    hidden="finetune.hidden",
    dropout="finetune.dropout",
    features="finetune.features",
    unfreeze="finetune.unfreeze",
    encoder_lr="finetune.encoder_lr",
    shift="finetune.shift",
    init_head="finetune.init_head",
    baselines="finetune.baselines",
    epochs="train.epochs",
    batch_size="train.batch_size",
    lr="train.lr",
    weight_decay="train.weight_decay",
    optimizer="train.optimizer",
    device="train.device",
    track="train.track",
    mlflow_uri="train.mlflow_uri",
    seed="train.seed",
    dataset="data.dataset",
    image_size="data.image_size",
    color="data.color",
    limit="data.limit",
    data_dir="data.data_dir",
)


def finetune(
    targets: Annotated[
        Optional[list[str]],
        typer.Argument(
            help="The AE run (folder or checkpoint) whose encoder is used; default: the newest AE run. With --predict: more image files.",
            show_default=False,
            metavar="AE_RUN",
        ),
    ] = None,
    hidden: Annotated[
        Optional[int],
        typer.Option(
            help="Hidden units of the head (default: the report's 928).", rich_help_panel=HEAD
        ),
    ] = None,
    dropout: Annotated[
        Optional[float],
        typer.Option(
            help="Dropout p of the head, 0 <= p < 1 (default: the report's 0.104258).",
            rich_help_panel=HEAD,
        ),
    ] = None,
    features: Annotated[
        Optional[str],
        typer.Option(
            help="What the head sees: latent (the code, default) | hidden (the 64-unit layer) | conv (the conv trunk).",
            rich_help_panel=HEAD,
        ),
    ] = None,
    unfreeze: Annotated[
        Optional[bool],
        typer.Option(
            "--unfreeze/--freeze",
            help="Fine-tune the encoder too: 10 epochs, encoder at the head's lr, 2-pixel shifts (default: frozen).",
            show_default=False,
            rich_help_panel=HEAD,
        ),
    ] = None,
    encoder_lr: Annotated[
        Optional[float],
        typer.Option(
            help="Learning rate of the unfrozen encoder (default: the head's lr).",
            rich_help_panel=HEAD,
        ),
    ] = None,
    shift: Annotated[
        Optional[int],
        typer.Option(
            help="With --unfreeze: shift training images by up to N pixels, 0-4 (default 2 with --unfreeze).",
            rich_help_panel=HEAD,
        ),
    ] = None,
    init_head: Annotated[
        Optional[Path],
        typer.Option(
            help="Start the head from this classifier run's weights (e.g. a frozen run, before --unfreeze).",
            rich_help_panel=HEAD,
        ),
    ] = None,
    baselines: Annotated[
        Optional[bool],
        typer.Option(
            "--baselines/--no-baselines",
            help="Also fit a linear probe and 5-NN on the codes (default: on).",
            show_default=False,
            rich_help_panel=HEAD,
        ),
    ] = None,
    epochs: Annotated[
        Optional[int],
        typer.Option(
            help="Epochs (default 30 frozen, 10 with --unfreeze; with --resume: the new total).",
            rich_help_panel=TRAIN,
        ),
    ] = None,
    batch_size: Annotated[
        Optional[int], typer.Option(help="Batch size (default 128).", rich_help_panel=TRAIN)
    ] = None,
    lr: Annotated[
        Optional[float],
        typer.Option(
            help="Learning rate of the head (default: the report's 0.001839).",
            rich_help_panel=TRAIN,
        ),
    ] = None,
    weight_decay: Annotated[
        Optional[float],
        typer.Option(help="Weight decay (default: the report's 5.81e-5).", rich_help_panel=TRAIN),
    ] = None,
    optimizer: Annotated[
        Optional[str],
        typer.Option(help="adam | sgd | rmsprop (default adam).", rich_help_panel=TRAIN),
    ] = None,
    dataset: Annotated[
        Optional[str],
        typer.Option(help="Labelled dataset (default: the AE run's).", rich_help_panel="Data"),
    ] = None,
    image_size: ImageSizeOpt = None,
    color: ColorOpt = None,
    limit: Annotated[
        Optional[int],
        typer.Option(
            help="Use N training images, stratified (default: the AE run's).",
            rich_help_panel="Data",
        ),
    ] = None,
    config: ConfigOpt = None,
    set_: SetOpt = None,
    resume: Annotated[
        Optional[Path],
        typer.Option(help="Continue the classifier run in this folder from weights/last.pt."),
    ] = None,
    predict: Annotated[
        Optional[list[Path]],
        typer.Option(
            help="Classify these image files (PATHS...) with a trained classifier instead of training.",
            rich_help_panel="Predict",
        ),
    ] = None,
    run: Annotated[
        Optional[Path],
        typer.Option(
            help="With --predict: the classifier run to use (default: the newest).",
            rich_help_panel="Predict",
        ),
    ] = None,
    json_: Annotated[
        bool,
        typer.Option(
            "--json",
            help="With --predict: print JSON instead of a table.",
            rich_help_panel="Predict",
        ),
    ] = False,
    print_spec: Annotated[
        bool, typer.Option("--print-spec", help="Print the resolved spec as YAML and exit.")
    ] = False,
    out: OutOpt = Path("runs"),
    name: NameOpt = None,
    data_dir: DataDirOpt = None,
    device: DeviceOpt = None,
    devices: DevicesOpt = None,
    port: PortOpt = None,
    track: TrackOpt = None,
    mlflow_uri: MlflowUriOpt = None,
    seed: SeedOpt = None,
    quiet: QuietOpt = False,
) -> None:
    """Train the report's classifier on a trained AE's encoder, with linear-probe and 5-NN baselines; or classify images (--predict)."""
    given = dict(locals())
    setup(quiet or json_)
    if devices and predict:
        raise error("--devices trains on several ranks; --predict runs in one process", 2)
    if launch_ranks(devices, device, port, "finetune"):
        return
    with friendly_errors():
        from udlcli.errors import SpecError
        from udlcli.tasks import finetune as engine

        targets = targets or []
        if predict:
            from udlcli.tasks.finetune import predict as engine_predict

            _print_predictions(engine_predict([*predict, *targets], run, out), json_)
            return
        if run is not None or json_:
            raise SpecError(
                "--run and --json go with --predict; to train on an AE run, give the run folder as the argument"
            )
        if len(targets) > 1:
            raise SpecError(
                f"expected one AE run, got {len(targets)} arguments; to classify image files use --predict FILES"
            )
        given["ae"] = targets[0] if targets else None
        opts = engine.RunOptions(out=out, name=name, command=command_line())
        if resume is not None:
            FLAGS.refuse_on_resume(given, config=config, set=set_)
            result = engine.resume(resume, epochs=epochs, device=device, opts=opts)
        else:
            flags = FLAGS.flags(given)
            spec = engine.resolve_finetune_spec(str(config) if config else None, flags, set_ or [])
            if print_spec:
                from udlcli.config import dump_yaml

                ui.plain(dump_yaml(spec.model_dump(mode="json")))
                return
            result = engine.finetune(spec, opts)
    _report(result)


def _report(result) -> None:
    from rich.table import Table

    s = result.summary
    t = Table(title=f"{result.run_dir}: test scores per class", title_justify="left")
    for col in ("class", "precision", "recall", "F1", "images"):
        t.add_column(col, justify="left" if col == "class" else "right")
    for c, m in s["per_class"].items():
        t.add_row(
            c, f"{m['precision']:.4f}", f"{m['recall']:.4f}", f"{m['f1']:.4f}", f"{m['support']:,}"
        )
    ui.print_table(t)
    t = Table(show_header=False, title_justify="left")
    t.add_row(
        f"[bold]classifier ({s['encoder']} encoder, {s.get('features', 'latent')} features)[/]",
        f"[bold]{s['test_accuracy']:.2%}[/] test accuracy",
    )
    base = s.get("baselines") or {}
    what = f"the AE's {base.get('features', 'latent')} features"
    if "linear_probe" in base:
        t.add_row(f"linear probe (logistic regression on {what})", f"{base['linear_probe']:.2%}")
    for k, v in base.items():
        if k.startswith("knn"):
            t.add_row(f"{k[3:]}-nearest neighbours on {what}", f"{v:.2%}")
    t.add_row("AE run", s["ae_run"])
    t.add_row("epochs", f"{s['epochs']} (best {s['best_epoch']})")
    t.add_row("trainable parameters", f"{s['trainable_params']:,} of {s['params']:,}")
    t.add_row(
        "dataset",
        f"{s['dataset']['name']} ({s['dataset']['train_size']:,} train / {s['dataset']['test_size']:,} test)",
    )
    t.add_row("time", f"{s['wall_time_s']:.1f} s ({s['images_per_s']:,.0f} img/s) on {s['device']}")
    t.add_row("figures", str(result.run_dir / "figures"))
    ui.print_table(t)


def _print_predictions(pred, as_json: bool) -> None:
    if as_json:
        print(
            json.dumps(
                {"run": str(pred.run_dir), "notes": pred.notes, "predictions": pred.rows}, indent=2
            )
        )
        return
    from rich.table import Table

    for note in pred.notes:
        ui.info(f"note: {note}")
    t = Table(title=f"predictions of {pred.run_dir}", title_justify="left")
    for col in ("file", "class", "probability", "prepared"):
        t.add_column(col, justify="right" if col == "probability" else "left", overflow="fold")
    for r in pred.rows:
        done = [f"resized from {r['size'][0]}x{r['size'][1]}"] if r["resized"] else []
        done += ["inverted"] if r["inverted"] else []
        t.add_row(r["file"], r["label"], f"{r['probability']:.1%}", ", ".join(done))
    ui.print_table(t)
