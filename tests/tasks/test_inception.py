"""`udl evaluate --inception-weights FILE`: the standard InceptionV3 from a file, read safely; on a randomly initialised network saved here."""

from __future__ import annotations

import pytest
import torch
from conftest import one_error_line

from udlcli.cli.app import app
from udlcli.errors import CheckpointError


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    """A randomly initialised InceptionV3 (torch-fidelity's layout), saved as a user's weights file would be."""
    from torch_fidelity import feature_extractor_inceptionv3 as fe

    with pytest.MonkeyPatch.context() as mp:  # build the network without any weights to load
        mp.setattr(fe.torch, "load", lambda *a, **k: {})
        mp.setattr(fe.FeatureExtractorInceptionV3, "load_state_dict", lambda self, *a, **k: None)
        torch.manual_seed(0)
        net = fe.FeatureExtractorInceptionV3("inception-v3-compat", ["2048"], "none")
    for (
        m
    ) in net.modules():  # PyTorch's default init fades to nothing through 90 layers: keep the scale
        if isinstance(m, torch.nn.Conv2d):
            torch.nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
    path = tmp_path_factory.mktemp("inception") / "weights-inception.pth"
    torch.save(net.state_dict(), path)
    return path


def test_the_file_loads_and_gives_the_networks_features(weights):
    from udlcli.tasks.evaluate.inception import Inception

    net = Inception(weights, torch.device("cpu"))
    torch.manual_seed(1)
    a = torch.rand(3, 1, 28, 28)  # grey: repeated to RGB, resized to 299 as TensorFlow did
    fa, pa = net.embed(a)
    assert fa.shape == (3, 2048) and pa.shape == (3, 1008)
    assert abs(float(pa.sum(1).mean()) - 1) < 1e-9 and fa.std(0).mean() > 1e-3
    assert net.info()["sha256"] == net.sha256 and len(net.sha256) == 64


@pytest.mark.slow  # two matrix square roots of 2,048 x 2,048: a minute on 2 cores
def test_the_statistic(weights):
    from udlcli.tasks.evaluate.inception import Inception

    net = Inception(weights, torch.device("cpu"))
    torch.manual_seed(1)
    a, b = torch.rand(3, 1, 28, 28), torch.rand(3, 1, 28, 28) * 0.2
    fa, _ = net.embed(a)
    same, other = net.metrics(fa, a), net.metrics(fa, b)
    assert same["fid"] < 1e-6 * other["fid"] and other["n"] == 3  # itself, and darker noise
    assert 1.0 <= other["inception_score"] <= 1008


def test_a_file_that_runs_code_is_never_unpickled(tmp_path):
    from udlcli.tasks.evaluate.inception import Inception

    marker = tmp_path / "PWNED"

    class Evil:
        def __reduce__(self):
            import os

            return (os.system, (f"touch {marker}",))

    path = tmp_path / "evil.pth"
    torch.save({"Conv2d_1a_3x3.conv.weight": Evil()}, path)
    with pytest.raises(CheckpointError, match="is not a readable weights file"):
        Inception(path, torch.device("cpu"))
    assert not marker.exists()


def test_wrong_or_broken_files_are_one_line(runner, tmp_path, weights):
    other = tmp_path / "other.pth"
    torch.save({"fc.weight": torch.zeros(3, 3)}, other)
    broken = tmp_path / "broken.pth"
    broken.write_bytes(weights.read_bytes()[:5000])
    run = tmp_path / "nowhere"
    for path, needle in (
        (other, "does not fit InceptionV3"),
        (broken, "is not a readable weights file"),
        (tmp_path / "missing.pth", "no such file"),
    ):
        r = runner.invoke(
            app, ["evaluate", "--images", str(tmp_path), "--inception-weights", str(path)]
        )
        assert r.exit_code != 0 and needle in one_error_line(r), (path, r.output)
    assert not run.exists()
