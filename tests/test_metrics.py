"""udlcli.metrics against hand-computed cases, and the properties FID and balance must have."""

from __future__ import annotations

import math

import numpy as np
import pytest

from udlcli import metrics
from udlcli.errors import DataError


def test_frechet_distance_of_diagonal_gaussians_by_hand():
    # mu1=(0,0), S1=diag(1,4); mu2=(1,2), S2=diag(4,9):
    # |mu1-mu2|^2 = 1 + 4 = 5; Tr(S1+S2) = 18; Tr((S1 S2)^1/2) = sqrt(4) + sqrt(36) = 8; FID = 5 + 18 - 16 = 7.
    d = metrics.frechet_distance(
        np.zeros(2), np.diag([1.0, 4.0]), np.array([1.0, 2.0]), np.diag([4.0, 9.0])
    )
    assert d == pytest.approx(7.0, abs=1e-9)


def test_fid_from_samples_by_hand():
    # a = {0, 2}: mean 1, unbiased variance 2; b = {1, 5}: mean 3, variance 8.
    # FID = (1-3)^2 + 2 + 8 - 2 sqrt(16) = 4 + 10 - 8 = 6.
    assert metrics.fid(np.array([[0.0], [2.0]]), np.array([[1.0], [5.0]])) == pytest.approx(
        6.0, abs=1e-9
    )


def test_fid_of_a_set_against_itself_is_zero_and_grows_with_noise():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(500, 16)) @ rng.normal(
        size=(16, 16)
    )  # correlated features, like a network's
    assert abs(metrics.fid(a, a)) < 1e-6
    fids = [metrics.fid(a, a + rng.normal(scale=s, size=a.shape)) for s in (0.1, 0.5, 1.0, 2.0)]
    assert all(x < y for x, y in zip(fids, fids[1:])), fids


def test_fid_with_fewer_samples_than_features_stays_real_and_finite():
    rng = np.random.default_rng(1)
    d = metrics.fid(
        rng.normal(size=(3, 32)), rng.normal(size=(200, 32))
    )  # singular covariances (rank 2 of 32)
    assert math.isfinite(d) and d > 0


def test_fid_needs_two_vectors():
    with pytest.raises(DataError, match="at least 2"):
        metrics.fid(np.zeros((1, 4)), np.zeros((5, 4)))


def test_precision_recall_by_hand():
    # k=1. real {0,1,2,5}: radii to the nearest other point 1,1,1,3. fake {0.5,1.5,2.5,9}: radii 1,1,1,6.5.
    # precision: 0.5, 1.5, 2.5 lie in real balls; 9 is 4 from 5 (> 3) -> 3/4.
    # recall: 0, 1, 2 lie in fake balls; 5 is 4 from 9 (<= 6.5) -> 4/4.
    real, fake = np.array([[0.0], [1.0], [2.0], [5.0]]), np.array([[0.5], [1.5], [2.5], [9.0]])
    assert metrics.precision_recall(real, fake, k=1) == (0.75, 1.0)
    # swapped roles swap the two numbers' meaning: fake {..., 9} as real covers 5; real's 5 as fake misses 9.
    assert metrics.precision_recall(fake, real, k=1) == (1.0, 0.75)


def test_precision_recall_tell_collapse_from_blur():
    rng = np.random.default_rng(0)
    real = rng.normal(size=(800, 8))
    collapsed = real[:40][rng.integers(0, 40, 800)] + rng.normal(
        scale=0.01, size=(800, 8)
    )  # sharp, few modes
    blurry = rng.normal(scale=2.5, size=(800, 8))  # diverse, off the manifold
    p_c, r_c = metrics.precision_recall(real, collapsed, k=3)
    p_b, r_b = metrics.precision_recall(real, blurry, k=3)
    assert p_c > 0.9 and r_c < 0.3
    assert p_b < p_c and r_b > r_c


def test_balance_confidence_and_is_by_hand():
    probs = np.array([[0.9, 0.1], [0.8, 0.2], [0.6, 0.4], [0.3, 0.7]])
    b = metrics.class_balance(probs)
    assert (
        b["counts"] == [3, 1]
        and b["max_share"] == 0.75
        and b["min_share"] == 0.25
        and b["max_class"] == 0
    )
    assert b["kl_uniform"] == pytest.approx(0.75 * math.log(1.5) + 0.25 * math.log(0.5))
    assert metrics.confidence(probs) == pytest.approx((0.9 + 0.8 + 0.6 + 0.7) / 4)
    # One-hot and balanced: KL(p(y|x) || p(y)) = log 2 for each x, so IS = 2; identical rows give IS = 1.
    assert metrics.inception_score(np.array([[1.0, 0.0], [0.0, 1.0]])) == pytest.approx(
        2.0, rel=1e-9
    )
    assert metrics.inception_score(np.tile([0.3, 0.7], (5, 1))) == pytest.approx(1.0)


def test_balance_flags_a_one_class_set():
    one_class = np.tile(np.eye(10)[3], (100, 1))
    b = metrics.class_balance(one_class)
    assert (
        not b["balanced"]
        and b["max_share"] == 1.0
        and b["min_share"] == 0.0
        and b["max_class"] == 3
    )
    assert b["kl_uniform"] == pytest.approx(math.log(10))
    uniform = np.eye(10)[np.arange(100) % 10]
    assert metrics.class_balance(uniform)["balanced"] and metrics.class_balance(uniform)[
        "kl_uniform"
    ] == pytest.approx(0.0)


def test_knn_accuracy_by_hand():
    import torch

    bank = torch.tensor([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.1, 0.9]])
    bank_y = torch.tensor([0, 0, 1, 1])
    q = torch.tensor([[1.0, 0.05], [0.05, 1.0], [0.6, 0.4]])
    assert metrics.knn_accuracy(bank, bank_y, q, torch.tensor([0, 1, 0]), k=2) == 1.0
    assert metrics.knn_accuracy(bank, bank_y, q, torch.tensor([1, 1, 1]), k=1) == pytest.approx(
        1 / 3
    )
    # cosine, not distance: a long vector in class 1's direction still counts as class 1
    assert (
        metrics.knn_accuracy(bank, bank_y, torch.tensor([[0.0, 50.0]]), torch.tensor([1]), k=1)
        == 1.0
    )


def test_knn_weights_let_one_near_neighbour_outvote_two_far_ones():
    """k = 3 around the query (1, 0): one class-0 neighbour at cosine 1, two class-1 neighbours at
    cosine 0.8, and a class-0 point at cosine -1 that is not among the 3.

    By hand, the votes exp(sim / T):   class 0: e^(1/T)      class 1: 2 e^(0.8/T)
      T = 0.1    e^10 = 22,026 against 2 e^8 = 5,962: class 0 (a plain majority, 2 to 1, says 1;
                 reversed weights e^(-sim/T) give e^-10 = 4.5e-5 against 2 e^-8 = 6.7e-4: class 1)
      the two are equal where e^(0.2/T) = 2, T = 0.2 / ln 2 = 0.2885:
      T = 0.25   e^4 = 54.6 against 2 e^3.2 = 49.1: class 0
      T = 0.33   e^3.03 = 20.7 against 2 e^2.42 = 22.5: class 1
      T = 1      e^1 = 2.72 against 2 e^0.8 = 4.45: class 1
    """
    import torch

    bank = torch.tensor([[1.0, 0.0], [0.8, 0.6], [0.8, -0.6], [-1.0, 0.0]])
    bank_y = torch.tensor([0, 1, 1, 0])
    q, zero = torch.tensor([[3.0, 0.0]]), torch.tensor([0])
    for t, want in ((0.1, 0), (0.25, 0), (0.33, 1), (1.0, 1)):
        got = metrics.knn_accuracy(bank, bank_y, q, zero, k=3, temperature=t)
        assert got == (1.0 if want == 0 else 0.0), (t, got)
    # k = 1 and k = 4 by hand too: the nearest alone is class 0; with the far class-0 point added,
    # class 0 gets e^10 + e^-10, still ahead at T = 0.1 and still behind at T = 1.
    assert metrics.knn_accuracy(bank, bank_y, q, zero, k=1, temperature=1.0) == 1.0
    assert metrics.knn_accuracy(bank, bank_y, q, zero, k=4, temperature=0.1) == 1.0
    assert metrics.knn_accuracy(bank, bank_y, q, zero, k=4, temperature=1.0) == 0.0


def test_knn_reversed_weights_would_follow_the_far_minority():
    """k = 5 around (0, 1): three class-1 neighbours near (cosines 0.99, 0.98, 0.97) and two class-0
    ones far behind (cosines -0.5, -0.6). A plain majority (3 to 2) and exp(sim / 0.1) (class 1:
    e^9.9 + e^9.8 + e^9.7, about 5.6e4, against e^-5 + e^-6, about 0.009) both say class 1;
    weights exp(-sim / 0.1) would say class 0 (e^5 + e^6 = 552 against about 1.7e-4)."""
    import torch

    def at(c: float) -> list[float]:  # the unit vector whose cosine with (0, 1) is c
        return [math.sqrt(1 - c * c), c]

    bank = torch.tensor([at(0.99), at(0.98), at(0.97), at(-0.5), at(-0.6)])
    bank_y = torch.tensor([1, 1, 1, 0, 0])
    q = torch.tensor([[0.0, 1.0], [0.0, 2.0]])  # the same direction twice: one chunk each below
    for chunk in (1, 1024):
        acc = metrics.knn_accuracy(bank, bank_y, q, torch.tensor([1, 1]), k=5, chunk=chunk)
        assert acc == 1.0


def test_linear_probe_separates_what_is_separable_and_not_noise():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 600)
    x = rng.normal(size=(600, 5)) + 4 * np.eye(3, 5)[y]
    assert metrics.linear_probe(x[:400], y[:400], x[400:], y[400:]) > 0.95
    noise = rng.normal(size=(600, 5))
    assert metrics.linear_probe(noise[:400], y[:400], noise[400:], y[400:]) < 0.5


def test_knn_normalises_each_query_not_each_feature():
    """Cosine similarity: a lone query [1, 0.1] is nearest to [1, 0] (cos 0.995), not to
    [0.7, 0.7] (0.77); normalising over the batch instead would turn it into [1, 1]."""
    import torch

    bank = torch.tensor([[1.0, 0.0], [0.7, 0.7]])
    assert (
        metrics.knn_accuracy(
            bank, torch.tensor([0, 1]), torch.tensor([[1.0, 0.1]]), torch.tensor([0]), k=1
        )
        == 1.0
    )
    assert (
        metrics.knn_accuracy(
            bank, torch.tensor([0, 1]), torch.zeros(0, 2), torch.zeros(0, dtype=torch.long)
        )
        == 0.0
    )
