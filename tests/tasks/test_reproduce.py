"""`udl reproduce`: the whole study on real digits, done-markers, --resume, --only/--from, and a failing step."""

from __future__ import annotations

import json
import re
import textwrap
from pathlib import Path

from conftest import REPO, one_error_line

from udlcli.cli.app import app

STEPS = [
    "tune_ae",
    "train_ae",
    "embed_pca",
    "embed_tsne",
    "sample_ae",
    "tune_finetune",
    "finetune",
    "finetune_unfrozen",
    "denoise",
    "train_vae",
    "sample_vae",
    "gan",
    "evaluate",
]


def _states(report: Path) -> dict[str, dict]:
    return {p.stem: json.loads(p.read_text()) for p in (report / "state").glob("*.json")}


def test_every_step_runs_in_order_into_its_own_run_folder(study_report):
    report = study_report["dir"]
    states = _states(report)
    assert set(states) == set(STEPS) and all(s["status"] == "done" for s in states.values())
    started = sorted(STEPS, key=lambda n: states[n]["started"])
    assert started.index("tune_ae") < started.index("train_ae") < started.index(
        "finetune"
    ) and started.index("gan") < started.index("evaluate")
    steps = report / "steps"
    # Each step wrote its normal run folder under steps/, named after the step.
    for run in (
        "ae/train_ae",
        "tune/tune_ae",
        "tune/tune_finetune",
        "finetune/finetune",
        "denoise/denoise",
        "vae/train_vae",
        "gan/gan",
    ):
        assert (steps / run).is_dir(), run
    assert (steps / "ae/train_ae/embed/tsne_n300.png").is_file() and (
        steps / "vae/train_vae/samples/vae_grid.png"
    ).is_file()
    # Later steps used earlier steps' outputs: the AE came from the study's best.yaml, the classifier from that AE.
    best = json.loads((steps / "tune/tune_ae/summary.json").read_text())["best"]
    ae_spec = (steps / "ae/train_ae/spec.yaml").read_text()
    assert (
        f"channels: {best['params']['channels']}, latent_dim: {best['params']['latent_dim']}"
        in ae_spec
    )
    assert json.loads((steps / "finetune/finetune/summary.json").read_text())["ae_run"] == str(
        steps / "ae/train_ae"
    )
    # Key numbers travel into the markers: real values, not placeholders.
    summary = json.loads((steps / "ae/train_ae/summary.json").read_text())
    assert (
        states["train_ae"]["output"]["numbers"]["test MSE ([0,1] pixels)"]
        == summary["test_mse"]
        > 0
    )
    assert (
        states["finetune"]["output"]["numbers"]["test accuracy"] > 0.3
    )  # well above chance (0.1): the AE's codes carry the classes
    ev = states["evaluate"]["output"]["numbers"]
    assert (
        ev["floor: uniform noise: FID (udl-LeNet)"]
        > 10 * ev["ceiling: train split: FID (udl-LeNet)"]
    )
    # Rows are named by their steps; a 1-epoch GAN on 400 digits may still score near noise, the AE well below it.
    assert {
        "train_ae (ae): FID (udl-LeNet)",
        "train_vae (vae): FID (udl-LeNet)",
        "gan (gan): FID (udl-LeNet)",
    } <= set(ev)
    assert ev["train_ae (ae): FID (udl-LeNet)"] < ev["floor: uniform noise: FID (udl-LeNet)"]


def test_resume_of_a_finished_report_runs_nothing(study_report, runner):
    report = study_report["dir"]
    before = {n: s["started"] for n, s in _states(report).items()}
    r = runner.invoke(
        app,
        ["reproduce", "--resume", str(report), "--data-dir", str(study_report["data_dir"]), "-q"],
    )
    assert r.exit_code == 0, r.output
    assert "ran 0 step(s)" in r.output
    assert {n: s["started"] for n, s in _states(report).items()} == before


def test_only_reruns_one_step_and_keeps_the_others(study_report, runner):
    report = study_report["dir"]
    before = _states(report)
    r = runner.invoke(
        app, ["reproduce", "--only", "sample_ae", "--out", str(report.parent.parent), "-q"]
    )
    assert r.exit_code == 0, r.output
    assert (
        f"rerunning steps of the newest report, {report}" in r.output.replace("\n", "")
        and "ran 1 step(s)" in r.output
    )
    after = _states(report)
    assert after["sample_ae"]["started"] >= before["sample_ae"]["started"]
    assert {n: s["started"] for n, s in after.items() if n != "sample_ae"} == {
        n: s["started"] for n, s in before.items() if n != "sample_ae"
    }


def test_resume_refuses_changes_and_only_needs_finished_inputs(study_report, runner, tmp_path):
    report = study_report["dir"]
    r = runner.invoke(app, ["reproduce", str(study_report["study"]), "--resume", str(report)])
    assert (
        r.exit_code == 2
        and "--resume continues a report with the study and profile saved in it"
        in one_error_line(r)
    )
    r = runner.invoke(app, ["reproduce", "--only", "nope", "--resume", str(report)])
    assert r.exit_code == 2 and "no step 'nope'" in one_error_line(r)
    r = runner.invoke(app, ["reproduce", "--resume", str(tmp_path)])
    assert r.exit_code == 2 and "not a udl reproduce folder" in one_error_line(r)


def test_a_failing_step_stops_the_chain_and_resume_continues_after_a_fix(tmp_path, runner):
    study = tmp_path / "study.yaml"
    study.write_text(
        textwrap.dedent("""
        name: broken
        data: {dataset: mnist-sample}
        steps:
          train_ae:
            run: train ae
            spec: {data: {limit: 300}, model: {channels: 4}, train: {epochs: 1}}
          grid:
            run: sample vae          # an AE run is not a VAE: fails when it runs, not when it is validated
            from: train_ae
            grid: true
          pca:
            run: embed
            from: train_ae
            method: pca
        profiles: {quick: {}}
        """)
    )
    out = tmp_path / "runs"
    r = runner.invoke(app, ["reproduce", str(study), "--out", str(out), "-q"])
    assert r.exit_code != 0
    line = one_error_line(r)
    report = out / "report" / "broken"
    assert "step grid (sample vae) failed:" in line and f"udl reproduce --resume {report}" in line
    states = _states(report)
    assert (
        states["train_ae"]["status"] == "done"
        and states["grid"]["status"] == "failed"
        and "pca" not in states
    )
    md = (report / "report.md").read_text()
    assert "| grid | sample vae | failed |" in md and "| pca | embed | pending |" in md
    # Fix the saved study (the AE's samples instead) and continue: the finished AE is not trained again.
    saved = report / "study.yaml"
    saved.write_text(
        saved.read_text()
        .replace("run: sample vae", "run: sample ae")
        .replace("grid: true", "n: 16")
    )
    trained = states["train_ae"]["started"]
    r = runner.invoke(app, ["reproduce", "--resume", str(report), "-q"])
    assert r.exit_code == 0, r.output
    assert "ran 2 step(s)" in r.output
    states = _states(report)
    assert (
        all(s["status"] == "done" for s in states.values())
        and states["train_ae"]["started"] == trained
    )
    assert re.search(
        r"\| grid \| sample ae \| done \| \d+ s \|", (report / "report.md").read_text()
    )


def test_from_only_and_resume_choose_the_steps_to_run(tmp_path):
    import pytest
    from conftest import smoke_study

    from udlcli.errors import SpecError
    from udlcli.tasks.reproduce.run import select_steps
    from udlcli.tasks.reproduce.study import load_study

    study = load_study(smoke_study(tmp_path / "study.yaml"), "smoke")
    done = {n: {"status": "done"} for n in STEPS}
    assert select_steps(study, done, [], "sample_vae", fresh=False) == [
        "sample_vae",
        "gan",
        "evaluate",
    ]  # it and every step after it
    assert select_steps(study, done, ["embed_pca", "gan"], None, fresh=False) == [
        "embed_pca",
        "gan",
    ]
    assert select_steps(
        study, {**done, "denoise": {"status": "failed"}}, [], None, fresh=False
    ) == ["denoise"]  # --resume: what is not done
    assert select_steps(study, {}, [], None, fresh=True) == STEPS
    with pytest.raises(
        SpecError, match="step finetune needs tune_finetune, which has not finished"
    ):
        select_steps(
            study,
            {n: s for n, s in done.items() if n != "tune_finetune"},
            ["finetune"],
            None,
            fresh=False,
        )


def test_a_study_of_the_new_families(tmp_path, runner):
    """reproduce knows every registered family: flow and SimCLR train, sample, evaluate and embed as steps."""
    study = tmp_path / "study.yaml"
    study.write_text(
        textwrap.dedent("""
        name: new-families
        data: {dataset: mnist-sample}
        steps:
          flow:
            run: train flow
            spec: {data: {limit: 200}, model: {width: 8, attention: false}, train: {epochs: 1, n_fixed: 4}}
          sample_flow:
            run: sample flow
            from: flow
            n: 16
          simclr:
            run: train simclr
            spec: {data: {limit: 200}, model: {channels: 8, proj_hidden: 32, proj_dim: 16}, train: {epochs: 1, batch_size: 64}}
          pca:
            run: embed
            from: simclr
            method: pca
          evaluate:
            run: evaluate
            runs: [flow]
            n: 100
        profiles: {quick: {}}
        """)
    )
    out = tmp_path / "runs"
    r = runner.invoke(app, ["reproduce", str(study), "--out", str(out), "-q"])
    assert r.exit_code == 0, r.output
    report = out / "report" / "new-families"
    assert {k: v["status"] for k, v in _states(report).items()} == dict.fromkeys(
        ["flow", "sample_flow", "simclr", "pca", "evaluate"], "done"
    )
    md = (report / "report.md").read_text()
    assert "flow (flow): FID (udl-LeNet)" in md


def test_the_families_study_puts_every_family_in_one_table(tmp_path, runner):
    """`udl reproduce --study families` on 300 real digits a family: every row measured where its family can be."""
    import yaml

    d = yaml.safe_load((REPO / "examples" / "families.yaml").read_text())
    d["data"] = {"dataset": "mnist-sample"}
    tiny = {"data": {"limit": 300}, "train": {"epochs": 1}}
    smoke: dict = {"fashion_*": "skip", "cifar10_*": "skip"}
    smoke |= {f"mnist_{f}": {"spec": tiny} for f in ("ae", "dae", "vae", "gan", "dcgan")}
    unet = {"width": 8, "attention": False}
    smoke |= {f"mnist_{f}": {"spec": {**tiny, "model": unet}} for f in ("ddpm", "flow")}
    smoke["mnist_ddpm"]["spec"]["train"] = smoke["mnist_flow"]["spec"]["train"] = {
        "epochs": 1,
        "n_fixed": 4,
    }
    ssl = {**tiny, "model": {"channels": 8}, "train": {"epochs": 1, "batch_size": 64}}
    smoke |= {f"mnist_{f}": {"spec": ssl} for f in ("simclr", "byol")}
    smoke |= {"*_map": {"n": 200}, "*_samples": {"n": 100}}
    d["profiles"]["smoke"] = smoke
    study = tmp_path / "families.yaml"
    study.write_text(yaml.safe_dump(d, sort_keys=False))
    out = tmp_path / "runs"
    r = runner.invoke(app, ["reproduce", str(study), "-p", "smoke", "--out", str(out), "-q"])
    assert r.exit_code == 0, r.output
    report = out / "report" / "families"
    states = _states(report)
    assert len(states) == 20 and all(s["status"] == "done" for s in states.values())
    md = (report / "report.md").read_text()
    assert "Left out by the smoke profile: fashion_ae, fashion_dae," in md
    table = md[md.index("## Families") : md.index("## Autoencoder")]
    rows = {
        cells[2]: cells
        for line in table.splitlines()
        if line.startswith("| mnist-sample")
        for cells in [[c.strip() for c in line.strip("|").split("|")]]
    }
    assert list(rows) == [
        f"mnist_{f}" for f in ("ae", "dae", "vae", "gan", "dcgan", "ddpm", "flow", "simclr", "byol")
    ]
    number = re.compile(r"^\d[\d,.]*%?$")
    # columns: dataset family step parameters time MSE probe kNN FID P/R share
    measured = {
        "mnist_ae": (5, 6, 7),
        "mnist_dae": (5, 6, 7),
        "mnist_vae": (5, 6, 7, 8),
        "mnist_gan": (8,),
        "mnist_dcgan": (8,),
        "mnist_ddpm": (8,),
        "mnist_flow": (8,),
        "mnist_simclr": (6, 7),
        "mnist_byol": (6, 7),
    }
    for step, cols in measured.items():
        cells = rows[step]
        assert number.match(cells[3]) and cells[3] != "0", cells  # parameters
        for c in (5, 6, 7, 8):
            assert bool(number.match(cells[c])) == (c in cols), (step, c, cells)
            assert (cells[c] == "–") == (c not in cols), (step, c, cells)
    assert rows["mnist_gan"][1] == "gan (mlp)" and rows["mnist_dcgan"][1] == "gan (dcgan)"
    probe = json.loads((report / "steps" / "simclr" / "mnist_simclr" / "probe.json").read_text())
    assert rows["mnist_simclr"][6] == f"{probe['linear_probe']:.2%}"
    # One picture a family: the map of its features, or its samples; embedded in the HTML.
    pictures = re.findall(r"!\[mnist-sample [^\]]*\]\(([^)]+)\)", table)
    assert len(pictures) == 9 and all((report / p).is_file() for p in pictures)
    assert pictures[0].endswith("embed/pca_n200.png") and pictures[5].endswith("final_samples.png")
    page = (report / "report.html").read_text()
    families = page[page.index("<h2>Families</h2>") : page.index("<h2>Autoencoder")]
    assert families.count('<img src="data:image/png;base64,') == 9 and families.count("<tr>") == 10
