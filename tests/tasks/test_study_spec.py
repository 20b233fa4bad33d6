"""The study file of `udl reproduce`: the shipped examples/report.yaml, profiles, and one-line errors that point at the YAML line."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from conftest import REPO, one_error_line

from udlcli.cli.app import app
from udlcli.errors import SpecError
from udlcli.tasks.reproduce.study import load_study

REPORT = REPO / "examples" / "report.yaml"
ISSUE_STEPS = [
    "tune ae",
    "train ae",
    "embed",
    "embed",
    "sample ae",
    "tune finetune",
    "finetune",
    "finetune",
    "denoise",
    "train vae",
    "sample vae",
    "gan",
    "evaluate",
]


def test_the_shipped_study_has_every_step_of_the_report_in_dependency_order():
    study = load_study(REPORT, "quick")
    assert [s.params.run for s in study.steps.values()] == ISSUE_STEPS
    order = list(study.steps)
    for name, step in study.steps.items():
        assert all(order.index(dep) < order.index(name) for dep in step.needs), name
    assert study.steps["finetune"].needs == ["train_ae", "tune_finetune"]
    assert study.steps["evaluate"].needs == ["train_ae", "train_vae", "gan"]
    assert set(study.profiles) == {"quick", "full"}


def test_profiles_change_budgets_and_full_keeps_the_reports():
    quick, full = load_study(REPORT, "quick"), load_study(REPORT, "full")
    assert (full.steps["tune_ae"].params.trials, full.steps["tune_ae"].params.max_epochs) == (
        100,
        40,
    )
    assert (
        full.steps["tune_finetune"].params.trials,
        full.steps["tune_finetune"].params.max_epochs,
    ) == (50, 40)
    assert full.steps["embed_tsne"].params.n is None  # the whole test split
    assert quick.steps["tune_ae"].params.trials < 100 and quick.steps["embed_tsne"].params.n == 5000
    # A profile merges into a step's spec: it keeps what it does not name.
    assert quick.steps["tune_ae"].params.spec["search"] == {"channels": [4, 16]}
    assert quick.steps["train_ae"].params.best_of == "tune_ae"
    # The full profile trains the AE and both classifiers with udl's defaults (frozen >= 96.3%, --unfreeze >= 99.2%).
    assert full.steps["train_ae"].params.spec["train"] == {
        "epochs": 40,
        "batch_size": 64,
        "scheduler": "cosine",
    }
    assert full.steps["finetune_unfrozen"].params.spec == {
        "finetune": {"unfreeze": True},
        "train": {"epochs": 10},
    }


def _study(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "study.yaml"
    p.write_text(textwrap.dedent(text).lstrip())
    return p


BASE = """
steps:
  train_ae:
    run: train ae
  pca:
    run: embed
    from: train_ae
    method: pca
profiles:
  quick: {}
"""


@pytest.mark.parametrize(
    "old, new, line, words",
    [
        ("from: train_ae", "from: train_a", 6, ["pca", "from", "'train_a' is not a step"]),
        ("run: embed", "run: embedd", 5, ["unknown command 'embedd'", "choose one of"]),
        ("run: train ae", "run: train cnn", 3, ["'train cnn' is not a command", "train vae"]),
        ("method: pca", "method: umap", 7, ["method", "umap"]),
        ("method: pca", "method: pca\n    colour: red", 8, ["colour", "unknown key"]),
        ("  quick: {}", "  quick: {tsne: {n: 10}}", 9, ["tsne", "matches none of the steps"]),
    ],
)
def test_bad_studies_fail_with_the_yaml_line(tmp_path, old, new, line, words):
    assert old in BASE
    p = _study(tmp_path, BASE.replace(old, new))
    with pytest.raises(SpecError) as e:
        load_study(p, "quick")
    msg = str(e.value)
    assert msg.startswith(f"{p}:{line}: ") and "\n" not in msg, msg
    for w in words:
        assert w in msg, msg


def test_a_cycle_is_named_step_by_step(tmp_path):
    p = _study(
        tmp_path,
        """
        steps:
          a: {run: train ae, best_of: c}
          b: {run: tune finetune, from: a}
          c: {run: tune ae, from: b}
        profiles: {quick: {}}
        """,
    )
    with pytest.raises(
        SpecError, match=r"study.yaml:\d+: steps refer to each other in a cycle: a -> c -> b -> a"
    ):
        load_study(p, "quick")


def test_best_of_must_name_a_tune_step_and_profiles_must_exist(tmp_path):
    p = _study(
        tmp_path,
        BASE.replace("  pca:", "  again:\n    run: train ae\n    best_of: train_ae\n  pca:"),
    )
    with pytest.raises(
        SpecError, match="best_of: 'train_ae' is a train step; best_of names a tune step"
    ):
        load_study(p, "quick")
    with pytest.raises(SpecError, match="no profile 'huge'; this file has: quick"):
        load_study(_study(tmp_path, BASE), "huge")


def test_cli_rejects_a_bad_study_before_anything_runs(tmp_path, runner):
    p = _study(tmp_path, BASE.replace("from: train_ae", "from: nowhere"))
    out = tmp_path / "runs"
    r = runner.invoke(app, ["reproduce", str(p), "--out", str(out)])
    assert r.exit_code == 2
    assert "study.yaml:6: step pca: from: 'nowhere' is not a step" in one_error_line(r)
    assert not out.exists()  # validated before a folder was made
    r = runner.invoke(app, ["reproduce", str(tmp_path / "missing.yaml"), "--out", str(out)])
    assert r.exit_code == 2 and "study file not found" in one_error_line(r)


def test_without_a_checkout_the_study_installed_with_udl_is_used(tmp_path, monkeypatch):
    from udlcli.tasks.reproduce.run import default_study

    assert default_study() == Path("examples/report.yaml")  # the tests run from the repo root
    monkeypatch.chdir(tmp_path)
    installed = default_study()
    assert installed.name == "report.yaml" and installed.read_text() == REPORT.read_text()
    assert list(load_study(installed, "quick").steps)[0] == "tune_ae"


def test_a_bad_spec_field_of_any_step_fails_before_the_first_step_runs(tmp_path, runner):
    # The bad field is in the last step: nothing may have been trained when the error comes.
    p = _study(
        tmp_path,
        BASE.replace(
            "  pca:", "  vae:\n    run: train vae\n    spec: {train: {epochs: 0}}\n  pca:"
        ),
    )
    out = tmp_path / "runs"
    r = runner.invoke(app, ["reproduce", str(p), "--out", str(out)])
    assert r.exit_code == 2
    line = one_error_line(r)
    assert (
        "study.yaml:4: step vae: invalid spec: train.epochs:" in line
        and "greater than or equal to 1" in line
    )
    assert not out.exists()
    p = _study(
        tmp_path,
        BASE.replace(
            "  pca:", "  t:\n    run: tune ae\n    spec: {search: {channels: [4, 2]}}\n  pca:"
        ),
    )
    r = runner.invoke(app, ["reproduce", str(p), "--out", str(out)])
    assert (
        r.exit_code == 2
        and "study.yaml:4: step t: invalid search: section" in one_error_line(r)
        and not out.exists()
    )


FAMILIES = REPO / "examples" / "families.yaml"


def test_profile_keys_are_globs_and_skip_leaves_steps_out(tmp_path):
    p = tmp_path / "s.yaml"
    p.write_text(
        textwrap.dedent("""\
        steps:
          mnist_ae: {run: train ae}
          mnist_vae: {run: train vae}
          cifar_ae: {run: train ae}
          cifar_probe: {run: probe, from: cifar_ae}
        profiles:
          quick:
            "*_ae": {spec: {train: {epochs: 2}}}
            "mnist_*": {spec: {train: {epochs: 3}}}
            "cifar_*": skip
          half:
            cifar_ae: skip
          none:
            "*_gan": {spec: {train: {epochs: 2}}}
        """)
    )
    s = load_study(p, "quick")
    assert list(s.steps) == ["mnist_ae", "mnist_vae"] and s.skipped == ["cifar_ae", "cifar_probe"]
    # Later keys win where patterns overlap, in the profile's order.
    assert [st.params.spec["train"]["epochs"] for st in s.steps.values()] == [3, 3]
    with pytest.raises(
        SpecError, match=r"s.yaml:5: step cifar_probe: from: 'cifar_ae' is left out by profile half"
    ):
        load_study(p, "half")
    with pytest.raises(
        SpecError, match=r"s.yaml:14: profile none: '\*_gan' matches none of the steps"
    ):
        load_study(p, "none")


def test_the_families_study_trains_every_family_on_three_datasets():
    quick, full = load_study(FAMILIES, "quick"), load_study(FAMILIES, "full")
    families = {"ae", "dae", "vae", "gan", "dcgan", "ddpm", "flow", "simclr", "byol"}
    for ds in ("mnist", "fashion", "cifar10"):
        trained = {
            n
            for n, st in full.steps.items()
            if n.startswith(ds) and st.command in ("train", "denoise")
        }
        assert trained == {f"{ds}_{f}" for f in families}
        # The full profile is each family's own default budget: a spec names the dataset (and the DCGAN) only.
        for n in trained:
            assert set(full.steps[n].params.spec.get("train", {})) == set()
        encoders = {
            st.params.from_
            for st in full.steps.values()
            if st.command == "probe" and st.params.from_.startswith(ds)
        }
        assert encoders == {f"{ds}_{f}" for f in ("ae", "dae", "vae", "simclr", "byol")}
        assert {f"{ds}_{f}" for f in ("ae", "dae", "vae", "simclr", "byol")} == {
            st.params.from_
            for st in full.steps.values()
            if st.command == "embed" and st.params.from_.startswith(ds)
        }
        assert set(full.steps[f"{ds}_samples"].params.runs) == {
            f"{ds}_{f}" for f in ("vae", "gan", "dcgan", "ddpm", "flow")
        }
    assert full.steps["fashion_dcgan"].params.spec == {
        "data": {"dataset": "fashion-mnist"},
        "model": {"arch": "dcgan"},
    }
    # quick: MNIST and Fashion-MNIST only (CIFAR-10 cannot be downloaded everywhere), smaller budgets.
    assert all(not n.startswith("cifar10") for n in quick.steps) and len(quick.skipped) == 20
    assert quick.steps["fashion_flow"].params.spec["train"]["epochs"] == 1
    # The globs touch only their own family: "*_gan" not the DCGAN, "*_ae" not the DAE, no probe.
    assert quick.steps["mnist_dcgan"].params.spec["data"]["limit"] == 10_000
    assert quick.steps["mnist_dcgan"].params.spec["train"]["epochs"] == 2
    assert quick.steps["mnist_dae"].params.spec["data"]["limit"] == 20_000
    assert all(
        st.params.k == 200 and st.params.features is None
        for st in quick.steps.values()
        if st.command == "probe"
    )
    assert quick.steps["fashion_flow"].params.spec["data"] == {
        "dataset": "fashion-mnist",
        "limit": 6000,
    }


def test_study_option_picks_a_study_shipped_with_udl(tmp_path, runner):
    from udlcli.tasks.reproduce.run import packaged_study

    assert packaged_study("families").read_text() == FAMILIES.read_text()
    assert packaged_study("report").read_text() == REPORT.read_text()
    r = runner.invoke(app, ["reproduce", "--study", "nope", "--out", str(tmp_path)])
    assert r.exit_code == 2
    assert (
        "--study nope: no such study shipped with udl; choose one of: families, report"
        in one_error_line(r)
    )
    r = runner.invoke(
        app, ["reproduce", str(REPORT), "--study", "families", "--out", str(tmp_path)]
    )
    assert r.exit_code == 2 and "not both" in one_error_line(r)
    assert not (tmp_path / "report").exists()


@pytest.mark.parametrize(
    "profiles, line, words",
    [
        ("profiles: [quick]", 6, "profiles: must be a mapping"),
        ("profiles: {quick: skip}", 6, "profile quick: expected a mapping of step names"),
        ("profiles: {quick: {b: [1]}}", 6, "profile quick, step b: expected a mapping"),
    ],
)
def test_malformed_profiles_are_one_line(tmp_path, profiles, line, words):
    p = tmp_path / "s.yaml"
    p.write_text(f"steps:\n  a: {{run: train ae}}\n  b: {{run: train vae}}\n\n\n{profiles}\n")
    with pytest.raises(SpecError) as e:
        load_study(p, "quick")
    assert str(e.value).startswith(f"{p}:{line}: ") and words in str(e.value), str(e.value)


def test_a_step_the_profile_skips_is_still_checked(tmp_path):
    p = tmp_path / "s.yaml"
    p.write_text(
        "steps:\n  a: {run: train ae}\n  b: {run: train aee}\nprofiles:\n  quick: {b: skip}\n"
    )
    with pytest.raises(SpecError, match=r"s.yaml:3: step b: 'train aee' is not a command"):
        load_study(p, "quick")


def test_only_with_study_reruns_the_newest_report_of_that_study(tmp_path):
    import json
    import os

    from udlcli.tasks.reproduce.run import _newest_report

    for name, source, age in (("families", "f.yaml", 1), ("report", "r.yaml", 0)):
        d = tmp_path / "report" / name
        d.mkdir(parents=True)
        (d / "reproduce.json").write_text(json.dumps({"source": source}))
        os.utime(d / "reproduce.json", (1e9 + age, 1e9 + age))
    broken = tmp_path / "report" / "broken"
    broken.mkdir()
    (broken / "reproduce.json").write_text("{not json")
    os.utime(broken / "reproduce.json", (1e9 - 5, 1e9 - 5))
    assert _newest_report(tmp_path).name == "families"
    assert _newest_report(tmp_path, "r.yaml").name == "report"
    with pytest.raises(SpecError, match="existing report of x.yaml"):
        _newest_report(tmp_path, "x.yaml")
