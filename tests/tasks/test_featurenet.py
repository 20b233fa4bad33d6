"""udl evaluate's feature network: the shipped ones load safely and score as claimed; others are trained once and cached."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch

from udlcli import metrics
from udlcli.data import load_dataset
from udlcli.errors import CheckpointError
from udlcli.models.lenet import LeNet, synthetic_negatives
from udlcli.tasks.evaluate import featurenet, training


@pytest.fixture(scope="module")
def sample_data():
    return load_dataset("mnist-sample")


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    """A user cache shared by this module's tests (each test otherwise gets its own, empty one)."""
    return tmp_path_factory.mktemp("featurenet-cache")


@pytest.fixture
def in_cache(cache, monkeypatch):
    monkeypatch.setenv("UDL_CACHE_DIR", str(cache))
    return cache


@pytest.fixture(scope="module")
def trained(cache, sample_data):
    """A quick network trained on first use (1 epoch on mnist-sample's 4,000 digits), as for a dataset with none shipped."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("UDL_CACHE_DIR", str(cache))
        return training.featurenet_for(sample_data, device="cpu", epochs=1, shipped=False)


# ---------------------------------------------------------------- shipped networks


@pytest.mark.parametrize("name", ["mnist", "fashion-mnist"])
def test_shipped_network_matches_its_manifest_and_loads_without_pickle(name):
    entry = featurenet.manifest()[name]
    path = featurenet.SHIPPED_DIR / entry["file"]
    assert featurenet.sha256_of(path) == entry["sha256"]
    from safetensors.torch import (
        load_file,  # tensors and a JSON header only: nothing on disk runs as code
    )

    state = load_file(str(path))
    assert set(state) == set(LeNet(16, 128, 10, reject=True).state_dict())
    net = featurenet.load_network(path, "cpu", expected_sha256=entry["sha256"], shipped=True)
    assert (
        net.sha256 == entry["sha256"]
        and net.record["recipe"] == featurenet.RECIPE
        and net.record["dataset"]["name"] == name
    )
    assert net.info()["note"] is None and featurenet.shipped_entry(name) == entry


def test_mnist_sample_is_scored_by_the_mnist_network(sample_data):
    net = training.featurenet_for(sample_data, device="cpu")
    assert net.shipped and net.sha256 == featurenet.manifest()["mnist"]["sha256"]


@pytest.mark.parametrize(
    "name,folder,bar", [("mnist", "MNIST", 0.99), ("fashion-mnist", "FashionMNIST", 0.89)]
)
def test_shipped_network_gives_the_accuracy_it_claims(name, folder, bar, mnist_dir):
    if not (mnist_dir / folder / "raw").is_dir():
        pytest.skip(f"{folder} not in {mnist_dir}")
    data = load_dataset(name, mnist_dir)
    net = training.featurenet_for(data, device="cpu")
    _, probs = net.embed_split(data.test)
    acc = float((probs.argmax(1) == data.test.y.numpy()).mean())
    assert acc == pytest.approx(net.record["test_accuracy"], abs=5e-4) and acc >= bar


def test_a_changed_shipped_file_is_refused(tmp_path, monkeypatch, sample_data):
    shutil.copytree(featurenet.SHIPPED_DIR, tmp_path / "nets")
    blob = bytearray((tmp_path / "nets" / "mnist.safetensors").read_bytes())
    blob[-1] ^= 0xFF  # one flipped bit in a weight
    (tmp_path / "nets" / "mnist.safetensors").write_bytes(bytes(blob))
    monkeypatch.setattr(featurenet, "SHIPPED_DIR", tmp_path / "nets")
    with pytest.raises(CheckpointError, match="is not the .* it was shipped with; reinstall udl"):
        training.featurenet_for(sample_data, device="cpu")


def test_noise_is_rejected_and_digits_are_not(sample_data):
    net = training.featurenet_for(sample_data, device="cpu")
    _, p_digits = net.embed(sample_data.test.images()[:500])
    _, p_noise = net.embed(
        torch.rand(500, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    )  # the floor's noise
    assert metrics.confidence(p_digits) > 0.9 and metrics.confidence(p_noise) < 0.1


# ---------------------------------------------------------------- networks trained on first use


def test_trained_network_is_cached_in_the_user_cache_with_a_record(trained, cache, tmp_path):
    net = trained
    assert (
        net.source
        == cache / featurenet.CACHE_DIR / "lenet" / "mnist-sample" / featurenet.WEIGHTS_FILE
    )
    rec = json.loads((net.source.parent / featurenet.RECORD).read_text())
    assert (
        rec["key"] == "mnist-sample"
        and rec["recipe"] == featurenet.RECIPE
        and rec["sha256"] == net.sha256
    )
    assert rec["dataset"]["name"] == "mnist-sample" and rec["dataset"]["train_size"] == 4000
    assert rec["train"]["epochs"] == 1 and rec["model"]["features"] >= 64 and rec["model"]["reject"]
    assert (
        0.5 < rec["test_accuracy"] <= 1.0
    )  # one epoch on 3,600 digits already classifies most test digits (chance: 0.1)
    assert not net.shipped and "same sha256" in net.info()["note"]


def test_later_calls_reuse_the_cache(trained, sample_data, in_cache):
    before = trained.source.stat().st_mtime_ns
    again = training.featurenet_for(sample_data, device="cpu", epochs=1, shipped=False)
    assert again.source == trained.source and trained.source.stat().st_mtime_ns == before
    x = sample_data.test.images(torch.arange(50))
    f1, p1 = trained.embed(x)
    f2, p2 = again.embed(x)
    np.testing.assert_array_equal(f1, f2)
    assert f1.shape == (50, trained.model.n_features) and f1.dtype == np.float32
    assert (p1.sum(axis=1) <= 1 + 1e-9).all()  # the data classes' share; the rest is P(not data)


def test_a_limited_dataset_gets_its_own_cache_key(trained, in_cache):
    assert featurenet.dataset_key("mnist-sample", 1000) == "mnist-sample-limit1000"
    assert featurenet.find_cached("mnist-sample-limit1000") is None
    assert featurenet.find_cached("mnist-sample") == trained.source.parent


def test_an_interrupted_training_is_not_used(tmp_path, trained, monkeypatch):
    # A run folder without featurenet.json (training killed midway) must not count as a cache hit.
    monkeypatch.setenv("UDL_CACHE_DIR", str(tmp_path))
    dst = tmp_path / featurenet.CACHE_DIR / "lenet" / "mnist-sample"
    dst.mkdir(parents=True)
    shutil.copy(trained.source, dst / featurenet.WEIGHTS_FILE)
    assert featurenet.find_cached("mnist-sample") is None


def test_fid_is_zero_on_the_same_set_and_grows_as_noise_is_added(sample_data):
    net = training.featurenet_for(sample_data, device="cpu")
    x = sample_data.test.images()  # the 1,000 test digits
    real, _ = net.embed(x)
    gen = torch.Generator().manual_seed(0)
    noise = torch.randn(x.shape, generator=gen)
    fids = [
        metrics.fid(net.embed((x + s * noise).clamp(0, 1))[0], real) for s in (0.0, 0.1, 0.3, 0.6)
    ]
    assert abs(fids[0]) < 1e-6
    assert all(a < b for a, b in zip(fids, fids[1:])), fids


def test_features_are_the_penultimate_layer():
    m = LeNet(channels=4, features=64, reject=True).eval()
    x = torch.rand(3, 1, 28, 28)
    with torch.no_grad():
        assert m.features(x).shape == (3, 64)
        torch.testing.assert_close(m.head(m.features(x)), m(x))
        assert m(x).shape == (3, 11) and m.data_probs(m.features(x)).shape == (3, 10)


def test_training_batches_carry_synthetic_negatives():
    torch.manual_seed(0)
    neg = synthetic_negatives(400, (1, 28, 28))
    assert neg.shape == (400, 1, 28, 28) and 0 <= neg.min() and neg.max() <= 1
    flat = (neg.flatten(1).std(1) == 0).float().mean()
    assert 0.1 < flat < 0.4  # about a quarter are flat images, the rest textures
    m = LeNet(channels=4, features=64, reject=True, negatives=0.5)
    x, y = torch.rand(8, 1, 28, 28), torch.randint(0, 10, (8,))
    m.train()
    seen = []
    m.register_forward_hook(lambda mod, inp, out: seen.append(len(inp[0])))
    m.loss(x, y)
    assert seen == [8, 4]  # the real batch, then half as many negatives
    m.eval()
    seen.clear()
    m.loss(x, y)
    assert seen == [8]  # validation: real images only
