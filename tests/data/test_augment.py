"""Self-supervised views on the device: seeded, the same for a batch split over ranks, flips only where they keep meaning."""

from __future__ import annotations

import pytest
import torch

from udlcli.data import load_dataset
from udlcli.data.augment import AugmentConfig, augment, flips_for
from udlcli.rows import Rows


@pytest.fixture(scope="module")
def digits():
    return load_dataset("mnist-sample", limit=100).train.images(torch.arange(64))


def test_views_are_seeded_in_range_and_differ(digits):
    cfg = AugmentConfig()
    torch.manual_seed(0)
    a = augment(digits, cfg, False, Rows())
    torch.manual_seed(0)
    assert torch.equal(a, augment(digits, cfg, False, Rows()))
    b = augment(digits, cfg, False, Rows())
    assert a.shape == digits.shape and 0 <= float(a.min()) and float(a.max()) <= 1
    assert not torch.equal(a, b) and not torch.equal(a, digits)


def test_strength_zero_keeps_the_images(digits):
    out = augment(digits, AugmentConfig(strength=0.0), True, Rows())
    torch.testing.assert_close(out, digits, atol=1e-5, rtol=0)


def test_a_batch_split_over_ranks_is_augmented_as_one_process(digits):
    cfg = AugmentConfig(blur_p=0.5)
    torch.manual_seed(1)
    whole = augment(digits, cfg, True, Rows())
    torch.manual_seed(1)
    second = augment(digits[32:], cfg, True, Rows(64, slice(32, 64)))
    torch.testing.assert_close(second, whole[32:])


def test_flips_keep_digits_as_they_are():
    cfg = AugmentConfig()
    assert not flips_for(cfg, "mnist") and not flips_for(cfg, "svhn") and flips_for(cfg, "cifar10")
    assert flips_for(cfg, "fashion-mnist")  # a flipped shirt is a shirt
    assert flips_for(AugmentConfig(flip=True), "mnist")
    x = torch.zeros(200, 1, 28, 28)
    x[:, :, :, :5] = 1.0  # a bar on the left edge
    torch.manual_seed(0)
    crop_only = AugmentConfig(crop_min=1.0, jitter=0.0)
    kept = augment(x, crop_only, False, Rows())
    flipped = augment(x, crop_only, True, Rows())
    right = lambda v: (v[..., 23:].mean((1, 2, 3)) > 0.5).float().mean()  # noqa: E731
    assert float(right(kept)) == 0.0 and 0.3 < float(right(flipped)) < 0.7


def test_colour_images_get_jitter_and_grey():
    torch.manual_seed(0)
    x = torch.rand(256, 3, 32, 32)
    cfg = AugmentConfig(crop_min=1.0, gray_p=0.5, jitter=0.0)
    out = augment(x, cfg, False, Rows())
    grey = (out.std(1) < 1e-6).flatten(1).all(1)  # the three channels equal
    assert 0.3 < float(grey.float().mean()) < 0.7


def test_the_strongest_views_stay_finite(digits):
    """strength up to 2 (udl tune searches to 1.5) widens the crop past crop_min: never a negative area."""
    torch.manual_seed(0)
    v = augment(digits, AugmentConfig(strength=2.0), False, Rows())
    assert bool(torch.isfinite(v).all()) and float(v.std()) > 0
