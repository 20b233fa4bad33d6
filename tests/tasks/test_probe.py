"""`udl probe`: a linear probe and a kNN on a real run's frozen features, written to the run, and its refusals."""

from __future__ import annotations

import json
import shutil

import pytest
from conftest import one_error_line

from udlcli.cli.app import app


@pytest.fixture()
def ae_run(latent_runs, tmp_path):
    run = tmp_path / "runs" / "ae" / "ae"
    shutil.copytree(latent_runs["ae"], run)
    return run


def test_probe_writes_both_accuracies_well_above_chance(runner, ae_run):
    r = runner.invoke(app, ["probe", str(ae_run), "--k", "20"])
    assert r.exit_code == 0, r.output
    n = json.loads((ae_run / "probe_k20.json").read_text())
    assert (n["kind"], n["features"], n["width"]) == ("ae", "latent", 7)
    # A 7-number latent of a tiny 2-epoch AE (about 50%): 3x the 10% of guessing, short of a classifier.
    assert 0.3 < n["linear_probe"] < 1 and 0.3 < n["knn20_cosine"] < 1
    assert n["train_images"] + n["test_images"] <= 2_000 + 10_000
    assert "linear probe" in r.output and f"{n['linear_probe']:.2%}" in r.output


def test_another_layer_gets_its_own_file(runner, ae_run):
    r = runner.invoke(app, ["probe", str(ae_run), "--features", "hidden", "--k", "20", "-q"])
    assert r.exit_code == 0, r.output
    n = json.loads((ae_run / "probe_hidden_k20.json").read_text())
    assert n["features"] == "hidden" and n["width"] > 7
    assert not list(ae_run.glob("probe.json")) and not list(ae_run.glob("probe_k*.json"))


def test_each_k_keeps_its_own_numbers_and_a_rerun_says_it_replaces(runner, ae_run):
    """--k 5 does not replace --k 10's probe; the same setting again replaces it, and says so."""
    for k in ("5", "10"):
        assert runner.invoke(app, ["probe", str(ae_run), "--k", k, "-q"]).exit_code == 0
    assert json.loads((ae_run / "probe_k5.json").read_text())["knn5_cosine"] > 0
    assert json.loads((ae_run / "probe_k10.json").read_text())["knn10_cosine"] > 0
    again = runner.invoke(app, ["probe", str(ae_run), "--k", "5"])
    assert again.exit_code == 0 and f"replacing {ae_run / 'probe_k5'}.json" in again.output.replace(
        "\n", ""
    )


def test_the_newest_encoding_run_is_the_default(runner, ae_run):
    r = runner.invoke(app, ["probe", "--out", str(ae_run.parent.parent), "--k", "5", "-q"])
    assert r.exit_code == 0, r.output
    assert (ae_run / "probe_k5.json").is_file()


@pytest.mark.parametrize(
    "args,says",
    [
        (["--features", "logits"], "logits"),
        (["--k", "0"], "--k 0"),
    ],
)
def test_bad_options_are_one_line(runner, ae_run, args, says):
    r = runner.invoke(app, ["probe", str(ae_run), *args])
    assert r.exit_code != 0 and says in one_error_line(r)


def test_a_run_that_does_not_encode_is_refused(runner, tmp_path):
    r = runner.invoke(app, ["probe", str(tmp_path / "nothing")])
    assert r.exit_code != 0 and "nothing" in one_error_line(r)
