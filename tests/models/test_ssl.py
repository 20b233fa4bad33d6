"""What the self-supervised families share (models/ssl.py): the frozen features, and the kNN monitor's epochs, end and views figure, on real digits."""

from __future__ import annotations

import contextlib
from types import SimpleNamespace

import pytest
import torch

from udlcli import metrics, plots
from udlcli.config import DataConfig
from udlcli.core import lifecycle
from udlcli.core.spec import resolve_spec
from udlcli.data import load_dataset
from udlcli.models import ssl
from udlcli.models.simclr import SimCLR, SimCLRConfig

TINY = dict(channels=8, proj_hidden=32, proj_dim=16)


@pytest.fixture(scope="module")
def data():
    return load_dataset("mnist-sample", limit=300)


@pytest.fixture()
def model():
    torch.manual_seed(0)
    return SimCLR(SimCLRConfig(**TINY), DataConfig(dataset="mnist"))


def test_features_are_the_backbones_in_eval_mode_and_the_mode_is_given_back(data, model):
    seen = []
    model.backbone.register_forward_pre_hook(lambda m, inp: seen.append(m.training))
    split = data.train
    z, y = ssl.features(model, split, "cpu")
    assert seen and not any(seen) and model.training  # eval inside, training again after
    torch.testing.assert_close(z, model.backbone(split.images(torch.arange(len(split)))))
    assert torch.equal(y, split.y)
    # A limit as large as the split is the whole split, in order; a smaller one a seeded subset.
    whole, _ = ssl.features(model, split, "cpu", limit=len(split))
    torch.testing.assert_close(whole, z)
    a, ya = ssl.features(model, split, "cpu", limit=50)
    b, _ = ssl.features(model, split, "cpu", limit=50, seed=0)
    assert a.shape == (50, z.shape[1]) and torch.equal(a, b) and len(set(ya.tolist())) > 3


def _monitor(data, model, *, val=True, run_dir=None):
    train, held = data.split(0.2, 0)
    ctx = lifecycle.FitContext(
        run_dir,
        resolve_spec("simclr"),
        data,
        train,
        data.test,
        torch.device("cpu"),
        held if val else None,
    )
    trainer = SimpleNamespace(model=model, averaged=contextlib.nullcontext, history=[])
    return ssl.KNNMonitor(ctx), trainer, train, held


def test_the_monitor_scores_the_validation_split_each_epoch(data, model):
    monitor, trainer, train, held = _monitor(data, model)
    row = {}
    monitor.on_epoch(trainer, row)
    bank, bank_y = ssl.features(model, train, "cpu", ssl.BANK)
    q, q_y = ssl.features(model, held, "cpu")
    assert row["knn_acc"] == metrics.knn_accuracy(bank, bank_y, q, q_y)
    for no in (_monitor(data, model, val=False)[0],):  # no validation split: nothing, no error
        r = {}
        no.on_epoch(trainer, r)
        assert r == {}
    monitor.labelled = False  # data without labels (a flat folder): nothing to score
    r = {}
    monitor.on_epoch(trainer, r)
    assert r == {}


def test_the_monitor_scores_the_test_split_at_a_finished_end(data, model):
    monitor, trainer, train, _ = _monitor(data, model)
    trainer.history = [{"knn_acc": 0.1}, {"knn_acc": 0.7}]
    s = {"status": "finished"}
    monitor.on_end(trainer, s)
    bank, bank_y = ssl.features(model, train, "cpu")
    q, q_y = ssl.features(model, data.test, "cpu")
    assert s["test_knn_acc"] == metrics.knn_accuracy(bank, bank_y, q, q_y)
    assert s["knn_acc"] == 0.7  # the last epoch's, not the first
    stopped = {"status": "interrupted"}
    monitor.on_end(trainer, stopped)
    assert stopped == {"status": "interrupted"}  # a stopped run's test split is not scored
    trainer.history = []  # finished before any epoch row: the test score alone
    s = {"status": "finished"}
    monitor.on_end(trainer, s)
    assert "test_knn_acc" in s and "knn_acc" not in s


def test_the_views_figure_shows_eight_images(data, model, tmp_path, monkeypatch):
    drawn = {}
    monkeypatch.setattr(plots, "image_rows", lambda rows, *a, **k: drawn.update(rows=rows))
    monitor, trainer, _, _ = _monitor(data, model, run_dir=tmp_path)
    monitor.on_start(trainer)
    assert [r.shape[0] for r in drawn["rows"]] == [8, 8, 8]
    drawn.clear()
    _monitor(data, model, run_dir=None)[0].on_start(trainer)  # a tuning trial: no figure
    assert drawn == {}
