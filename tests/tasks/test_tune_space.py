"""What `udl tune` optimises: each family's own optimiser in its space, a conditional model that keeps every class, and the self-supervised families scored by kNN accuracy, maximised."""

from __future__ import annotations

import json

import pytest
import torch

from udlcli.models import REGISTRY
from udlcli.tasks.tune import run as engine
from udlcli.tasks.tune.space import objectives

TINY_UNET = {"model.width": 8, "model.blocks": 1, "model.attention": False}
SSL_TINY = {"model.channels": 8, "model.proj_hidden": 32, "model.proj_dim": 16}


@pytest.mark.parametrize("name", sorted(f.name for f in REGISTRY.values() if f.search))
def test_every_search_includes_the_familys_own_optimiser(name):
    from udlcli.core.spec import resolve_spec

    family = REGISTRY[name]
    default = resolve_spec(name).train.optimizer  # what `udl train NAME` trains with
    assert default in family.search().optimizer, (name, default, family.search().optimizer)


def test_a_conditional_trial_learns_every_class(tmp_path):
    """A tuning trial's conditional flow knows the data's 10 classes (not one) and samples class k."""
    cls = objectives()["flow"]
    flags = {
        "data.dataset": "mnist-sample",
        "data.limit": 200,
        "train.epochs": 1,
        "train.batch_size": 50,
        "train.device": "cpu",
        "model.conditional": True,
        **TINY_UNET,
    }
    obj = cls.resolve(None, flags, [], tmp_path)
    obj.load(tmp_path)
    spec = obj.spec_for({"lr": 1e-3, "optimizer": "adamw", "weight_decay": 1e-5, "width": 8})
    assert spec.model.classes == 10
    model = obj.fit(spec, [], "trial 0").model.eval()
    assert model.net.label.num_embeddings == 11  # ten classes and "none"
    for k in (0, 7, 9):
        x = model.generate(2, torch.Generator().manual_seed(0), steps=2, class_=k)
        assert x.shape == (2, 1, 28, 28)
    # The class reaches the network: two classes from the same noise give different images.
    a = model.generate(2, torch.Generator().manual_seed(0), steps=2, class_=1)
    b = model.generate(2, torch.Generator().manual_seed(0), steps=2, class_=8)
    assert not torch.allclose(a, b)


def test_the_self_supervised_families_tune_knn_accuracy_maximised(runs, tmp_path):
    flags = {
        "data.dataset": "mnist-sample",
        "data.limit": 300,
        "train.batch_size": 64,
        **SSL_TINY,
    }
    opts = engine.TuneOptions(objective="simclr", trials=3, max_epochs=1, out=runs, seed=1)
    result = engine.tune(opts, None, flags)
    s = result.summary
    assert s["metric"] == "validation kNN accuracy" and s["direction"] == "maximize"
    study = runs / "tune" / "simclr-study"
    import csv

    rows = list(csv.DictReader((study / "trials.csv").open()))
    values = [float(r["value"]) for r in rows if r["state"] == "COMPLETE"]
    assert values and all(0.0 <= v <= 1.0 for v in values)  # accuracies, not NT-Xent losses
    assert s["best"]["value"] == pytest.approx(max(values))  # the highest is the best
    assert json.loads((study / "summary.json").read_text())["direction"] == "maximize"
    assert "validation kNN accuracy" in (study / "best.yaml").read_text().splitlines()[0]


def test_a_study_made_to_minimise_is_not_continued_as_a_maximisation(runs):
    import optuna

    from udlcli.tasks.tune.storage import StorageError

    study_dir = runs / "tune" / "old"
    study_dir.mkdir(parents=True)
    storage = f"sqlite:///{study_dir / 'study.db'}"
    optuna.create_study(study_name="old", storage=storage, direction="minimize")
    opts = engine.TuneOptions(
        objective="byol", trials=1, max_epochs=1, out=runs, study_name="old", storage=storage
    )
    with pytest.raises(StorageError, match="minimizes its value"):
        engine.tune(opts, None, {"data.dataset": "mnist-sample", "data.limit": 100, **SSL_TINY})


def test_docs_tuning_md_lists_every_objective_and_its_space():
    """docs/tuning.md's table has a row for every `udl tune` objective naming each searched field,
    and says which way its value goes."""
    from pathlib import Path

    doc = (Path(__file__).resolve().parents[2] / "docs" / "tuning.md").read_text()
    rows = {ln.split("|")[1].strip(" `"): ln for ln in doc.splitlines() if ln.startswith("| `")}
    for name, obj in objectives().items():
        assert name in rows, f"docs/tuning.md has no row for udl tune {name}"
        for field in obj.search_cls.model_fields:
            assert f"`{field}`" in rows[name], (name, field)
        way = {"minimize": "minimised", "maximize": "maximised"}[obj.search_cls.direction]
        assert way in rows[name], (name, rows[name])
