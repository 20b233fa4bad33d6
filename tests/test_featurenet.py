"""The feature network of udl evaluate: trained once on real digits, cached with its record, reused, never written into read-only data."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from udlcli import metrics
from udlcli.data import load_dataset
from udlcli.engine import featurenet
from udlcli.models.lenet import LeNet


@pytest.fixture(scope="module")
def sample_data():
    return load_dataset("mnist-sample")


@pytest.fixture(scope="module")
def trained(tmp_path_factory, sample_data):
    """A quick feature network (1 epoch on mnist-sample's 4,000 training digits) cached in a writable data dir.

    tests/test_evaluate.py uses the same session folder, so the network is trained once for both.
    """
    data_dir = tmp_path_factory.getbasetemp() / "featurenet-data"
    with pytest.MonkeyPatch.context() as mp:  # module fixtures run before the per-test cache isolation: never read ~/.cache
        mp.setenv("XDG_CACHE_HOME", str(tmp_path_factory.getbasetemp() / "featurenet-cache"))
        net = featurenet.featurenet_for(sample_data, data_dir, device="cpu", epochs=1)
    return data_dir, net


def test_trained_network_is_cached_with_a_record(trained):
    data_dir, net = trained
    assert net.run_dir == data_dir / featurenet.CACHE_DIR / "lenet" / "mnist-sample"
    rec = json.loads((net.run_dir / featurenet.RECORD).read_text())
    assert rec["key"] == "mnist-sample" and rec["recipe"] == featurenet.RECIPE
    assert rec["dataset"]["name"] == "mnist-sample" and rec["dataset"]["train_size"] == 4000
    assert rec["train"]["epochs"] == 1 and rec["model"]["features"] >= 64
    assert 0.5 < rec["test_accuracy"] <= 1.0  # one epoch on 3,600 digits already classifies most test digits (chance: 0.1)
    assert (net.run_dir / "weights" / "best.pt").is_file() and (net.run_dir / "summary.json").is_file()


def test_later_calls_reuse_the_cache(trained, sample_data):
    data_dir, net = trained
    weights = net.run_dir / "weights" / "best.pt"
    before = weights.stat().st_mtime_ns
    again = featurenet.featurenet_for(sample_data, data_dir, device="cpu")  # the default recipe: it would train 4 epochs if nothing were cached
    assert again.run_dir == net.run_dir and weights.stat().st_mtime_ns == before
    assert sorted(p.name for p in (data_dir / featurenet.CACHE_DIR / "lenet").iterdir()) == ["mnist-sample"]
    x = sample_data.test.images(torch.arange(50))
    f1, p1 = net.embed(x)
    f2, p2 = again.embed(x)
    np.testing.assert_array_equal(f1, f2)
    assert f1.shape == (50, net.model.n_features) and f1.dtype == np.float32
    np.testing.assert_allclose(p1.sum(axis=1), 1.0, atol=1e-9)


def test_a_limited_dataset_gets_its_own_cache_key(trained):
    assert featurenet.dataset_key("mnist-sample", 1000) == "mnist-sample-limit1000"
    assert featurenet.find_cached("mnist-sample-limit1000", trained[0]) is None
    assert featurenet.find_cached("mnist-sample", trained[0]) == trained[1].run_dir


def test_an_interrupted_training_is_not_used(tmp_path, trained):
    # A run folder without featurenet.json (training killed midway) must not count as a cache hit.
    src = trained[1].run_dir
    dst = tmp_path / featurenet.CACHE_DIR / "lenet" / "mnist-sample"
    (dst / "weights").mkdir(parents=True)
    (dst / "weights" / "best.pt").write_bytes((src / "weights" / "best.pt").read_bytes())
    assert featurenet.find_cached("mnist-sample", tmp_path) is None


def test_read_only_data_dir_falls_back_to_the_user_cache(tmp_path):
    ro = tmp_path / "shared-data"
    ro.mkdir()
    ro.chmod(0o555)  # like /work/shared/data; root passes os.access, so the mode bits are what count
    try:
        root = featurenet.writable_root(ro)
        assert root == tmp_path / "cache" / "udl" / featurenet.CACHE_DIR  # XDG_CACHE_HOME is the test's cache
        assert list(ro.iterdir()) == []
    finally:
        ro.chmod(0o755)
    assert featurenet.writable_root(tmp_path / "rw") == tmp_path / "rw" / featurenet.CACHE_DIR


def test_fid_is_zero_on_the_same_set_and_grows_as_noise_is_added(trained, sample_data):
    net = trained[1]
    x = sample_data.test.images()  # the 1,000 test digits
    real, _ = net.embed(x)
    gen = torch.Generator().manual_seed(0)
    noise = torch.randn(x.shape, generator=gen)
    fids = [metrics.fid(net.embed((x + s * noise).clamp(0, 1))[0], real) for s in (0.0, 0.1, 0.3, 0.6)]
    assert abs(fids[0]) < 1e-6
    assert all(a < b for a, b in zip(fids, fids[1:])), fids


def test_features_are_the_penultimate_layer():
    m = LeNet(channels=4, features=64).eval()
    x = torch.rand(3, 1, 28, 28)
    with torch.no_grad():
        assert m.features(x).shape == (3, 64)
        torch.testing.assert_close(m.head(m.features(x)), m(x))
