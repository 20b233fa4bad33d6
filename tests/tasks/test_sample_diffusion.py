"""`udl sample ddpm|flow` and `udl evaluate` on real tiny diffusion runs: grids, one PNG each, the trajectory, classes, guidance."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import one_error_line
from PIL import Image

from udlcli.cli.app import app

TINY = ["--set", "model.width=8", "--set", "model.attention=false"]


@pytest.fixture(scope="module")
def diffusion_runs(tmp_path_factory):
    """A tiny class-conditional flow run and a tiny ddpm run (T = 100), one epoch on 300 digits each."""
    from typer.testing import CliRunner

    root = tmp_path_factory.mktemp("diffusion_runs")
    common = ["--dataset", "mnist-sample", "--limit", "300", "--epochs", "1", *TINY, "-q"]
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("XDG_CACHE_HOME", str(root / "cache"))
        for args in (
            ["flow", "--conditional"],
            ["ddpm", "--set", "model.timesteps=100"],
        ):
            r = CliRunner().invoke(app, ["train", *args, *common, "--out", str(root)])
            assert r.exit_code == 0, r.output
    return {"flow": root / "flow" / "flow", "ddpm": root / "ddpm" / "ddpm"}


def _pixels(path) -> np.ndarray:
    return np.asarray(Image.open(path))


def test_a_grid_and_the_trajectory_and_the_same_seed_gives_the_same_images(runner, diffusion_runs):
    run = diffusion_runs["flow"]
    args = ["sample", "flow", str(run), "--n", "9", "--steps", "4", "--seed", "3", "-q"]
    assert runner.invoke(app, args).exit_code == 0
    grid = run / "samples" / "flow_samples_steps4.png"
    first = _pixels(grid)
    assert (run / "samples" / "flow_trajectory_steps4.png").is_file()
    assert json.loads(grid.with_suffix(".json").read_text())["steps"] == 4
    assert runner.invoke(app, args).exit_code == 0
    assert np.array_equal(first, _pixels(grid))
    other = runner.invoke(app, [*args[:-3], "--seed", "4", "-q"])
    assert other.exit_code == 0 and not np.array_equal(first, _pixels(grid))


def test_individual_pngs_of_a_class_with_guidance(runner, diffusion_runs, tmp_path):
    run, to = diffusion_runs["flow"], tmp_path / "threes"
    r = runner.invoke(
        app,
        ["sample", "flow", str(run), "--n", "5", "--steps", "3", "--class", "3"]
        + ["--guidance", "2", "--individual", "--to", str(to), "-q"],
    )
    assert r.exit_code == 0, r.output
    pngs = sorted(to.glob("*.png"))
    assert len(pngs) == 5 and _pixels(pngs[0]).shape == (28, 28)
    info = json.loads((to / "samples.json").read_text())
    assert (info["class_"], info["guidance"]) == (3, 2.0)


def test_ddpm_samples_with_ddim_or_all_its_steps(runner, diffusion_runs):
    run = diffusion_runs["ddpm"]
    r = runner.invoke(app, ["sample", "ddpm", str(run), "--n", "4", "--sampler", "ancestral", "-q"])
    assert r.exit_code == 0, r.output
    assert (run / "samples" / "ddpm_samples_ancestral.png").is_file()
    assert (run / "samples" / "ddpm_trajectory_ancestral.png").is_file()


@pytest.mark.parametrize(
    "kind,args,says",
    [
        ("flow", ["--sampler", "ddim"], "flow samples with euler or heun"),
        ("flow", ["--class", "12"], "this model knows classes 0..9"),
        ("flow", ["--guidance", "2"], "give --class K too"),
        ("flow", ["--interpolate", "1,2", "--class", "3"], "--class applies to random samples"),
        ("ddpm", ["--class", "3"], "--class needs a model trained with --conditional"),
        ("ddpm", ["--steps", "10", "--sampler", "ancestral"], "takes all 100 steps"),
    ],
)
def test_bad_sampling_options_are_one_line(runner, diffusion_runs, kind, args, says):
    r = runner.invoke(app, ["sample", kind, str(diffusion_runs[kind]), "--n", "2", *args])
    assert r.exit_code != 0 and says in one_error_line(r)


def test_evaluate_passes_the_sampling_options_and_reports_the_class_share(runner, diffusion_runs):
    run = diffusion_runs["flow"]
    r = runner.invoke(
        app,
        ["evaluate", str(run), "--n", "40", "--steps", "3", "--class", "3", "--guidance", "2"],
    )
    assert r.exit_code == 0, r.output
    e = json.loads((run / "evaluation_steps3_class_3_guidance2.0.json").read_text())
    assert e["sampler"] == {"steps": 3, "class_": 3, "guidance": 2.0} and e["n"] == 40
    share = e["balance"]["shares"][3]
    assert f"{share:.1%} of the --class 3 samples are classified as 3" in r.output
    # Another class keeps its own file: --class 8 does not replace --class 3's numbers.
    r8 = runner.invoke(app, ["evaluate", str(run), "--n", "40", "--steps", "3", "--class", "8"])
    assert r8.exit_code == 0, r8.output
    e8 = json.loads((run / "evaluation_steps3_class_8.json").read_text())
    assert e8["sampler"]["class_"] == 8
    assert json.loads((run / "evaluation_steps3_class_3_guidance2.0.json").read_text()) == e
    assert "replaced" not in r8.output
    again = runner.invoke(app, ["evaluate", str(run), "--n", "40", "--steps", "3", "--class", "8"])
    assert "replaced" in again.output and "evaluation_steps3_class_8.json" in again.output


def test_a_plain_evaluate_of_a_conditional_run_keeps_evaluation_json(runner, diffusion_runs):
    run = diffusion_runs["flow"]
    assert (
        runner.invoke(app, ["evaluate", str(run), "--n", "20", "--steps", "2", "-q"]).exit_code == 0
    )
    assert json.loads((run / "evaluation_steps2.json").read_text())["sampler"] == {"steps": 2}
    assert runner.invoke(app, ["evaluate", str(run), "--n", "20", "-q"]).exit_code == 0
    assert "sampler" not in json.loads((run / "evaluation.json").read_text())


def test_sampling_options_without_a_run_are_one_line(runner, tmp_path):
    r = runner.invoke(app, ["evaluate", "--images", str(tmp_path), "--class", "12"])
    assert r.exit_code != 0
    assert "--class: sampling options go with runs that generate" in one_error_line(r)
