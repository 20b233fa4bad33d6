"""Noise transforms: the report's Gaussian and salt-and-pepper, their mix, clamping, seeding and validation."""

from __future__ import annotations

import pytest
import torch

from udlcli.data.noise import NoiseConfig, add_noise, pixel_sigma
from udlcli.errors import SpecError


def grey(n: int = 64, size: int = 28) -> torch.Tensor:
    """Mid-grey images (n, 1, size, size): every replaced or shifted pixel changes, and 0/1 come only from salt and pepper."""
    return torch.full((n, 1, size, size), 0.5)


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_gaussian_sigma_is_in_normalised_units():
    x = grey()
    noisy = add_noise(x, NoiseConfig(noise="gaussian", sigma=0.5), std=0.3081, generator=gen())
    # sigma 0.5 normalised = 0.154 pixels: clamping at 0 and 1 (3.2 std away) barely touches it
    assert (noisy - x).std().item() == pytest.approx(0.5 * 0.3081, rel=0.03)
    assert pixel_sigma(NoiseConfig()) == pytest.approx(0.3081)


def test_gaussian_default_is_clamped_to_the_pixel_range():
    x = torch.rand(32, 1, 28, 28)
    noisy = add_noise(x, NoiseConfig(noise="gaussian"), generator=gen())
    assert noisy.min() >= 0 and noisy.max() <= 1
    assert (
        (noisy == 0) | (noisy == 1)
    ).float().mean() > 0.05  # sigma 0.3081 pushes many pixels past the range


def test_salt_and_pepper_replaces_p_of_the_pixels_with_white_or_black():
    x = grey(200)
    noisy = add_noise(x, NoiseConfig(noise="saltpepper", p=0.3, salt=0.8), generator=gen())
    changed = noisy != x
    assert changed.float().mean().item() == pytest.approx(0.3, abs=0.01)
    assert set(noisy[changed].unique().tolist()) == {0.0, 1.0}
    assert (noisy[changed] == 1).float().mean().item() == pytest.approx(0.8, abs=0.01)
    assert torch.equal(noisy[~changed], x[~changed])


def test_both_adds_gaussian_then_salt_and_pepper():
    x = grey(50)
    g = add_noise(x, NoiseConfig(noise="gaussian", sigma=0.1), generator=gen(3))
    b = add_noise(x, NoiseConfig(noise="both", sigma=0.1), generator=gen(3))
    sp = (b == 0) | (b == 1)  # sigma 0.1 (0.03 px) never reaches 0 or 1 from 0.5
    assert sp.float().mean().item() == pytest.approx(0.2, abs=0.01)
    assert torch.equal(b[~sp], g[~sp])  # the same Gaussian draws underneath


def test_mix_draws_each_type_for_a_quarter_of_the_images():
    x = grey(4000, size=8)
    noisy = add_noise(x, NoiseConfig(noise="mix", sigma=0.1), generator=gen(1))
    flat = noisy.flatten(1)
    has_sp = ((flat == 0) | (flat == 1)).any(1)
    has_gauss = ((flat != 0) & (flat != 1) & (flat != 0.5)).any(1)
    kinds = {
        "none": ~has_sp & ~has_gauss,
        "gaussian": has_gauss & ~has_sp,
        "saltpepper": has_sp & ~has_gauss,
        "both": has_sp & has_gauss,
    }
    for name, mask in kinds.items():
        assert mask.float().mean().item() == pytest.approx(0.25, abs=0.03), name


def test_same_seed_same_noise_and_global_rng_is_used_without_a_generator():
    x = torch.rand(8, 1, 28, 28)
    cfg = NoiseConfig()
    assert torch.equal(add_noise(x, cfg, generator=gen(5)), add_noise(x, cfg, generator=gen(5)))
    assert not torch.equal(add_noise(x, cfg, generator=gen(5)), add_noise(x, cfg, generator=gen(6)))
    torch.manual_seed(11)
    a = add_noise(x, cfg)
    torch.manual_seed(11)
    assert torch.equal(a, add_noise(x, cfg))


def test_none_and_zero_strength_leave_the_image_unchanged():
    x = torch.rand(4, 1, 28, 28)
    out = add_noise(x, NoiseConfig(noise="none"))
    assert torch.equal(out, x) and out is not x
    assert torch.equal(
        add_noise(x, NoiseConfig(noise="both", sigma=0.0, p=0.0), generator=gen()), x
    )


@pytest.mark.parametrize("bad", [{"p": 1.5}, {"sigma": -1}, {"salt": -0.1}, {"noise": "pink"}])
def test_bad_settings_are_rejected(bad):
    from udlcli.config import validate

    with pytest.raises(SpecError, match=next(iter(bad))):
        validate(NoiseConfig, bad)
