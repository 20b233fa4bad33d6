"""`udl runs` and `udl runs compare` on real run folders, a half-written one and broken ones."""

from __future__ import annotations

import json
import shutil

import pytest

from udlcli.cli.app import app
from udlcli.tasks.runs import compare_runs, list_runs


@pytest.fixture()
def root(latent_runs, tmp_path):
    """The session's real AE and VAE runs, copied, beside a run stopped mid-way and two broken ones."""
    out = tmp_path / "runs"
    shutil.copytree(latent_runs["ae"], out / "ae" / "ae")
    shutil.copytree(latent_runs["vae"], out / "vae" / "vae")
    half = out / "ae" / "ae2"  # stopped after epoch 1 of 2: no summary.json yet
    shutil.copytree(latent_runs["ae"], half)
    (half / "summary.json").unlink()
    lines = (half / "metrics.csv").read_text().splitlines()
    (half / "metrics.csv").write_text("\n".join(lines[:2]) + "\n")
    (out / "ae" / "bad-yaml").mkdir()
    (out / "ae" / "bad-yaml" / "spec.yaml").write_text("model: [unclosed\n")
    (out / "gan" / "bad-json").mkdir(parents=True)
    (out / "gan" / "bad-json" / "summary.json").write_text('{"status": "finish')
    (out / "ae" / "not-a-run").mkdir()  # an empty folder is not listed
    return out


def test_lists_every_run_with_its_numbers(root):
    by_name = {r.name: r for r in list_runs(root)}
    assert set(by_name) == {"ae", "vae", "ae2", "bad-yaml", "bad-json"}
    ae = by_name["ae"]
    summary = json.loads((root / "ae/ae/summary.json").read_text())
    assert (ae.task, ae.status, ae.epochs, ae.epochs_planned) == ("ae", "finished", 2, 2)
    assert (ae.metric, ae.value) == ("test MSE", summary["test_mse"])
    assert (ae.dataset, ae.device) == ("mnist-sample", "cpu")
    assert ae.precision == "32"  # the AE gains nothing from bf16: auto trains it in float32
    half = by_name["ae2"]
    assert (half.status, half.epochs, half.epochs_planned) == ("incomplete", 1, 2)
    assert half.metric == "last val_loss" and half.value > 0
    assert by_name["bad-yaml"].status == "broken"
    assert "spec.yaml is not valid YAML" in by_name["bad-yaml"].problem
    assert "summary.json is not valid JSON" in by_name["bad-json"].problem


def test_cli_table_plain_when_piped_and_json(runner, root):
    r = runner.invoke(app, ["runs", "--root", str(root)])
    assert r.exit_code == 0, r.output
    lines = r.output.splitlines()
    assert lines[0] == f"# 5 runs under {root}"
    assert lines[1].split("\t") == [
        "task", "name", "status", "epochs", "key metric", "dataset", "device", "precision",
        "created"
    ]  # fmt: skip
    rows = {ln.split("\t")[1]: ln.split("\t") for ln in lines[2:]}
    assert rows["ae"][2:4] == ["finished", "2/2"] and rows["ae"][7] == "32"
    assert rows["ae2"][2:4] == ["incomplete", "1/2"]
    assert rows["bad-json"][2].startswith("broken: summary.json is not valid JSON")
    r = runner.invoke(app, ["runs", "--root", str(root), "--json"])
    data = json.loads(r.output)
    assert {d["name"] for d in data} == set(rows)
    assert next(d for d in data if d["name"] == "vae")["metric"] == "test MSE"


def test_compare_shows_what_differs(runner, root):
    c = compare_runs([root / "ae/ae", root / "vae/vae"])
    spec = dict(c.spec)
    assert spec["model.name"] == ["ae", "vae"]
    assert c.differs(spec["model.name"]) and not c.differs(spec["data.dataset"])
    r = runner.invoke(app, ["runs", "compare", str(root / "ae/ae"), str(root / "vae/vae")])
    assert r.exit_code == 0, r.output
    assert "* model.name\tae\tvae" in r.output
    assert "data.dataset" not in r.output  # equal keys are hidden without --all
    r = runner.invoke(app, ["runs", "compare", str(root / "ae/ae"), str(root / "vae/vae"), "--all"])
    assert "  data.dataset\tmnist-sample\tmnist-sample" in r.output
    r = runner.invoke(app, ["runs", "compare", str(root / "ae/ae"), str(root / "ae/ae2"), "--json"])
    data = json.loads(r.output)
    assert "status" in data["differ"] and "model.name" not in data["differ"]


@pytest.mark.parametrize(
    "args, message",
    [
        (["runs", "--root", "nowhere"], "nowhere: no such runs folder"),
        (["runs", "compare", "runs/ae/ae"], "give two or more run folders"),
        (["runs", "compare", "nowhere/a", "nowhere/b"], "nowhere/a: no such run folder"),
    ],
)
def test_bad_input_is_one_line(runner, tmp_path, monkeypatch, args, message):
    from conftest import one_error_line

    monkeypatch.chdir(tmp_path)
    r = runner.invoke(app, args)
    assert r.exit_code != 0
    assert message in one_error_line(r)
