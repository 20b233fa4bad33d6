"""`udl tune` through the CLI: outputs, resuming to --trials, best.yaml as a --config, fine-tune studies and one-line errors."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import yaml

from udlcli.cli.app import app

TINY = ["--dataset", "mnist-sample", "--limit", "200", "--max-epochs", "2", "-q"]


def _search(tmp_path: Path, **ranges) -> str:
    """A tune spec whose search: section keeps the trials tiny (channels 4, small latents)."""
    path = tmp_path / f"search{len(list(tmp_path.glob('search*.yaml')))}.yaml"
    path.write_text(
        yaml.safe_dump({"search": {"channels": [4, 4], "latent_dim": [2, 3], **ranges}})
    )
    return str(path)


def _rows(study: Path) -> list[dict]:
    with (study / "trials.csv").open() as f:
        return list(csv.DictReader(f))


def _one_error(result) -> str:
    out = result.output.strip()
    assert "Traceback" not in out
    lines = [line for line in out.splitlines() if line.strip()]
    assert lines and lines[-1].startswith("error:"), out
    return lines[-1]


def test_tune_ae_outputs_resume_and_best_yaml_trains(runner, runs, tmp_path):
    spec = _search(tmp_path)
    r = runner.invoke(app, ["tune", "ae", "--trials", "3", "-c", spec, "--out", str(runs), *TINY])
    assert r.exit_code == 0, r.output
    study = runs / "tune" / "ae-study"
    for f in (
        "study.db",
        "trials.csv",
        "best.yaml",
        "summary.json",
        "figures/history.png",
        "figures/intermediate.png",
        "figures/parallel.png",
        "figures/importance.png",
    ):
        assert (study / f).is_file() and (study / f).stat().st_size > 0, f
    first = _rows(study)
    assert [row["state"] for row in first] == [
        "COMPLETE"
    ] * 3  # fewer than 5 trials: the median pruner only watches
    assert all(
        row["channels"] == "4" and row["optimizer"] in ("adam", "sgd", "rmsprop") for row in first
    )
    s = json.loads((study / "summary.json").read_text())
    assert (
        s["finished"] == 3
        and s["epochs_trained"] == 6
        and s["best"]["value"] == min(float(row["value"]) for row in first)
    )

    # A larger --trials continues the study: the 3 finished trials are kept, 2 are added (the pruner may change).
    r = runner.invoke(
        app,
        [
            "tune",
            "ae",
            "--trials",
            "5",
            "--pruner",
            "hyperband",
            "-c",
            spec,
            "--out",
            str(runs),
            *TINY,
        ],
    )
    assert r.exit_code == 0, r.output
    rows = _rows(study)
    assert len(rows) == 5 and rows[:3] == first
    assert sum(row["state"] in ("COMPLETE", "PRUNED") for row in rows) == 5

    # best.yaml is a complete run spec that udl train takes as it is, with the best trial's values.
    best = yaml.safe_load((study / "best.yaml").read_text())
    r = runner.invoke(
        app,
        ["train", "--config", str(study / "best.yaml"), "--out", str(runs), "--epochs", "1", "-q"],
    )
    assert r.exit_code == 0, r.output
    trained = yaml.safe_load((runs / "ae" / "ae" / "spec.yaml").read_text())
    assert trained["model"] == best["model"] and trained["train"]["lr"] == best["train"]["lr"]

    # The same study name with another search space is refused, and the study is untouched.
    r = runner.invoke(
        app,
        [
            "tune",
            "ae",
            "--trials",
            "6",
            "-c",
            _search(tmp_path, channels=[4, 8]),
            "--out",
            str(runs),
            *TINY,
        ],
    )
    assert r.exit_code != 0 and "search space" in _one_error(r)
    assert _rows(study) == rows


def test_bad_input_is_one_line_and_writes_nothing(runner, runs, tmp_path):
    spec = _search(tmp_path)
    cases = [
        (["--trials", "0"], "--trials 0"),
        (["--trials", "2", "--storage", "redis-ish://host/x"], "unknown URL scheme"),
        (["--trials", "2", "--storage", "postgresql://nobody@127.0.0.1:1/nodb"], "cannot open it"),
        (["--trials", "2", "--pruner", "sometimes"], "sometimes"),
    ]
    for extra, words in cases:
        r = runner.invoke(app, ["tune", "ae", "-c", spec, "--out", str(runs), *TINY, *extra])
        assert r.exit_code != 0, (extra, r.output)
        assert words in r.output, (extra, r.output)
        if (
            extra[-1] != "sometimes"
        ):  # typer's own usage error for a bad choice is a box, not our line
            _one_error(r)
    assert not runs.exists()


def test_tune_finetune_on_an_ae_run_and_refuse_other_runs(runner, runs, tmp_path):
    r = runner.invoke(
        app,
        [
            "train",
            "ae",
            "--dataset",
            "mnist-sample",
            "--limit",
            "200",
            "--channels",
            "4",
            "--latent-dim",
            "3",
            "--epochs",
            "1",
            "--out",
            str(runs),
            "-q",
        ],
    )
    assert r.exit_code == 0, r.output
    spec = tmp_path / "ft.yaml"
    # features is searched too: each trial encodes the splits with its own feature layer
    spec.write_text(
        yaml.safe_dump({"search": {"hidden": [16, 64], "features": ["latent", "conv"]}})
    )
    r = runner.invoke(
        app,
        [
            "tune",
            "finetune",
            "--from",
            str(runs / "ae" / "ae"),
            "--trials",
            "4",
            "--max-epochs",
            "1",
            "-c",
            str(spec),
            "--out",
            str(runs),
            "-q",
        ],
    )
    assert r.exit_code == 0, r.output
    study = runs / "tune" / "finetune-study"
    rows = _rows(study)
    assert len(rows) == 4 and all(16 <= int(row["hidden"]) <= 64 for row in rows)
    assert {row["features"] for row in rows} == {"latent", "conv"}  # seed 0 draws both
    s = json.loads((study / "summary.json").read_text())
    best = yaml.safe_load((study / "best.yaml").read_text())
    assert best["finetune"]["features"] == s["best"]["params"]["features"]
    assert s["metric"] == "validation cross-entropy" and 0 < s["best"]["value"] < 10
    # best.yaml is a udl finetune spec on that AE run
    r = runner.invoke(
        app,
        [
            "finetune",
            "--config",
            str(study / "best.yaml"),
            "--no-baselines",
            "--out",
            str(runs),
            "-q",
        ],
    )
    assert r.exit_code == 0, r.output
    # a --from run that is not an AE run (here the classifier just trained) is one line, and no study is made
    r = runner.invoke(
        app,
        [
            "tune",
            "finetune",
            "--from",
            str(runs / "finetune" / "finetune"),
            "--trials",
            "2",
            "--study-name",
            "wrong",
            "--out",
            str(runs),
            "-q",
        ],
    )
    assert r.exit_code != 0 and "cannot encode images" in _one_error(r)
    assert not (runs / "tune" / "wrong").exists()


def test_the_same_seed_gives_the_same_trials_and_values(runner, runs, tmp_path):
    spec = _search(tmp_path)
    common = [
        "--trials",
        "3",
        "--max-epochs",
        "1",
        "-c",
        spec,
        "--out",
        str(runs),
        "--dataset",
        "mnist-sample",
        "--limit",
        "200",
        "-q",
    ]
    for name, seed in (("a", "7"), ("b", "7"), ("c", "8")):
        r = runner.invoke(app, ["tune", "ae", "--study-name", name, "--seed", seed, *common])
        assert r.exit_code == 0, r.output
    strip = lambda rows: [
        {
            k: v
            for k, v in row.items()
            if k not in ("datetime_start", "datetime_complete", "duration_s", "seconds")
        }
        for row in rows
    ]  # noqa: E731
    a, b, c = (strip(_rows(runs / "tune" / n)) for n in "abc")
    assert a == b  # same seed on CPU: the same sampled parameters and the same validation losses
    assert [row["lr"] for row in a] != [row["lr"] for row in c]  # another seed samples other trials


def test_tune_figures_name_the_metric_and_label_only_decades(tmp_path):
    """optuna's plots of a real (tiny) study, as udl tune draws them: no 'Objective Value', no minor log labels."""
    import optuna
    import optuna.visualization.matplotlib as ov

    from udlcli.plots import plt
    from udlcli.tasks.tune.outputs import tidy_figure

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    study = optuna.create_study(sampler=optuna.samplers.TPESampler(seed=0))
    study.optimize(
        lambda t: (
            (t.suggest_float("lr", 1e-4, 1e-2, log=True) - 1e-3) ** 2
            + t.suggest_int("channels", 4, 32) * 1e-9
        ),
        n_trials=8,
    )
    for draw in (ov.plot_optimization_history, ov.plot_parallel_coordinate):
        with plt.rc_context():
            ax = draw(study)
            fig = (ax.flat[0] if hasattr(ax, "flat") else ax).figure
            tidy_figure(fig, "validation MSE")
            fig.canvas.draw()
            texts = [t.get_text() for t in fig.findobj(lambda a: hasattr(a, "get_text"))]
            assert not any("Objective Value" in t for t in texts) and any(
                "validation MSE" in t for t in texts
            )
            for a in fig.axes:
                if a.get_yscale() == "log":
                    assert all(not t.get_text() for t in a.yaxis.get_minorticklabels())
            plt.close(fig)
