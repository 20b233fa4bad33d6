"""What a study leaves in runs/tune/<study>/: trials.csv, best.yaml, summary.json and figures/ (history, intermediate, parallel, importance)."""

from __future__ import annotations

import csv
import warnings
from datetime import datetime, timezone
from pathlib import Path

from udlcli import plots, ui
from udlcli.config import dump_yaml
from udlcli.core import runs

"""The command that trains a study's best.yaml as it is."""


def write_all(
    study, study_dir: Path, obj, plan, storage: str, wall_s: float, command: str
) -> tuple[dict, list[dict]]:
    """Write every output from the storage's trials (all workers' trials, not only this process's)."""
    from udlcli.tasks.tune.storage import counts

    trials = study.get_trials(deepcopy=False)
    names = list(obj.search_cls.model_fields)
    write_trials_csv(trials, names, study_dir / "trials.csv")
    complete = sorted(
        (t for t in trials if t.state.name == "COMPLETE"),
        key=lambda t: t.value,
        reverse=obj.direction == "maximize",  # best first
    )
    best = complete[0] if complete else None
    if best is not None:
        head = (
            f"# best trial {best.number} of study {plan.study}: {obj.metric} {best.value:.6g}\n"
            f"# train it with: {obj.retrain} {study_dir / 'best.yaml'}\n"
        )
        (study_dir / "best.yaml").write_text(head + dump_yaml(best.user_attrs["spec"]))
    figures(study, trials, study_dir / "figures", obj.metric, names)
    c = counts(study)
    summary = {
        "study": plan.study,
        "objective": obj.name,
        "metric": obj.metric,
        "direction": obj.direction,
        "storage": storage,
        "trials_asked": plan.trials,
        "complete": c["complete"],
        "pruned": c["pruned"],
        "failed": c["failed"],
        "surplus": c["surplus"],
        "running": c["running"],
        "finished": c["finished"],
        "epochs_trained": sum(len(t.intermediate_values) for t in trials),
        "best": None
        if best is None
        else {
            "trial": best.number,
            "value": best.value,
            "params": best.params,
            "epochs": len(best.intermediate_values),
            "spec": str(study_dir / "best.yaml"),
        },
        "pruner": plan.pruner,
        "max_epochs": plan.max_epochs,
        "seed": plan.seed,
        "data": obj.data_key(),
        "wall_time_s": round(wall_s, 2),
        "command": command,
        "written": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    runs.write_json(study_dir / "summary.json", summary)
    top = [
        {
            "trial": t.number,
            "value": t.value,
            "epochs": len(t.intermediate_values),
            "params": t.params,
        }
        for t in complete[:10]
    ]
    return summary, top


def write_trials_csv(trials, names: list[str], path: Path) -> Path:
    cols = ["number", "state", "value", "epochs", "duration_s", *names, "note", "worker"]
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(cols)
        for t in trials:
            dur = (
                (t.datetime_complete - t.datetime_start).total_seconds()
                if t.datetime_complete and t.datetime_start
                else ""
            )
            w.writerow(
                [
                    t.number,
                    t.state.name,
                    "" if t.value is None else t.value,
                    len(t.intermediate_values),
                    dur if dur == "" else round(dur, 2),
                    *[t.params.get(n, "") for n in names],
                    t.user_attrs.get("udl_note", ""),
                    t.user_attrs.get("udl_worker", ""),
                ]
            )
    return path


def figures(study, trials, folder: Path, metric: str, names: list[str]) -> None:
    """The report's Fig. 8/13 (intermediate values) and 9/14 (parallel coordinates), plus history and importances."""
    import optuna.visualization.matplotlib as ov

    intermediate(trials, folder / "intermediate.png", metric)
    varied = [
        n for n in names if len({t.params.get(n) for t in trials if t.state.name == "COMPLETE"}) > 1
    ]
    drawings = {
        "history.png": lambda: ov.plot_optimization_history(study),
        "parallel.png": lambda: ov.plot_parallel_coordinate(study, params=varied or None),
        "importance.png": lambda: ov.plot_param_importances(study, params=varied or None),
    }
    for name, draw in drawings.items():
        try:
            # optuna switches matplotlib to its own style globally; rc_context puts ours back afterwards
            with warnings.catch_warnings(), plots.plt.rc_context():
                warnings.simplefilter(
                    "ignore"
                )  # optuna's matplotlib backend is marked experimental
                ax = draw()
                fig = (ax.flat[0] if hasattr(ax, "flat") else ax).figure
                width = (
                    1.7 * (len(varied or names) + 2) if name == "parallel.png" else 8
                )  # room between the axes' labels
                fig.set_size_inches(
                    max(fig.get_size_inches()[0], width), max(fig.get_size_inches()[1], 5)
                )
                tidy_figure(fig, metric)
                plots.save_figure(fig, folder / name)
        except Exception as e:  # e.g. importances need two complete trials with different values
            plots.plt.close("all")
            ui.info(
                f"figures/{name} not drawn yet: {str(e).splitlines()[0] if str(e) else type(e).__name__}"
            )


def tidy_figure(fig, metric: str) -> None:
    """Say what the objective is ("validation MSE", not optuna's "Objective Value") and unclutter log axes."""
    import matplotlib.ticker as mticker

    for text in fig.findobj(lambda a: hasattr(a, "get_text") and hasattr(a, "set_text")):
        if "Objective Value" in text.get_text():
            text.set_text(text.get_text().replace("Objective Value", metric))
    for ax in fig.axes:
        for get, put, ticks in (
            (ax.get_xticklabels, ax.set_xticklabels, ax.get_xticks),
            (ax.get_yticklabels, ax.set_yticklabels, ax.get_yticks),
        ):
            labels = [t.get_text() for t in get()]
            if any(
                "Objective Value" in lab for lab in labels
            ):  # tick labels are redrawn from their formatter: set them anew
                ax.set_xticks(ticks()) if put == ax.set_xticklabels else ax.set_yticks(ticks())
                put(
                    [lab.replace("Objective Value", metric) for lab in labels],
                    rotation=get()[0].get_rotation(),
                    ha=get()[0].get_ha(),
                )
        for axis, scale in ((ax.yaxis, ax.get_yscale()), (ax.xaxis, ax.get_xscale())):
            if (
                scale == "log"
            ):  # only the decades are labelled: minor labels (2e-4, 3e-4, ...) overlapped
                axis.set_minor_formatter(mticker.NullFormatter())
        legend = ax.get_legend()
        if legend is not None:
            for t in legend.get_texts():
                t.set_text(t.get_text().replace("Objective Value", metric))


def intermediate(trials, path: Path, metric: str) -> Path:
    """Each trial's validation loss per epoch: complete trials solid, pruned ones dashed and ending in an x."""
    plt = plots.plt
    fig, ax = plt.subplots(figsize=(8, 5))
    styles = {
        "COMPLETE": ("tab:blue", "-", None),
        "PRUNED": ("tab:red", "--", "x"),
        "FAIL": ("0.6", ":", None),
    }
    seen = set()
    for t in trials:
        if not t.intermediate_values or t.state.name not in styles:
            continue
        color, ls, marker = styles[t.state.name]
        steps = sorted(t.intermediate_values)
        vals = [t.intermediate_values[s] for s in steps]
        label = None if t.state.name in seen else t.state.name.lower()
        seen.add(t.state.name)
        ax.plot(steps, vals, ls=ls, color=color, lw=1, alpha=0.8, label=label)
        if marker:
            ax.plot(steps[-1:], vals[-1:], marker=marker, color=color, ms=6)
    ax.set_xlabel("epoch")
    ax.set_ylabel(metric)
    ax.set_yscale("log")
    ax.xaxis.set_major_locator(plots.matplotlib.ticker.MaxNLocator(integer=True))
    ax.set_title("Intermediate values of every trial (pruned trials stop early)")
    if seen:
        ax.legend()
    return plots.save_figure(fig, path)
