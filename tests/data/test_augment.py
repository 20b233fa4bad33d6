"""Self-supervised views on the device: seeded, the same for a batch split over ranks, flips only where they keep meaning."""

from __future__ import annotations

import math

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


# ---------------------------------------------------------------- each transform against its formula


class FixedDraws(Rows):
    """Rows whose uniforms are given: each image's 16 parameters set by the test."""

    def __init__(self, u: torch.Tensor):
        super().__init__()
        object.__setattr__(self, "u", u)

    def rand(self, shape, device=None, dtype=None, generator=None):
        assert tuple(shape) == tuple(self.u.shape)
        return self.u.to(device=device, dtype=dtype)


def _draws(b: int, **at) -> torch.Tensor:
    """(b, 16) uniforms: 0.5 everywhere (no crop change at crop_min 1, no jitter factor), u[:, 4] = 0.9
    (no flip), u[:, 5] = u[:, 10] = u[:, 12] = 0.99 (no jitter, grey or blur), then the given ones."""
    u = torch.full((b, 16), 0.5, dtype=torch.float64)
    u[:, [4, 5, 10, 12]] = torch.tensor([0.9, 0.99, 0.99, 0.99], dtype=torch.float64)
    for k, v in at.items():
        u[:, int(k[1:])] = torch.as_tensor(v, dtype=torch.float64)
    return u


def test_the_crop_is_the_random_resized_crop_written_out():
    """On a ramp image (a pixel's value is its normalised x, or y), a bilinear crop is exact: column
    j shows sx X_j + cx, X_j = (2j + 1) / W - 1, with area = 1 - s (1 - crop_min) u0, ratio =
    exp(s (2 u1 - 1) ln 4/3), sx = sqrt(area ratio), sy = sqrt(area / ratio), cx = (2 u2 - 1)(1 - sx)."""
    n, s, cmin = 32, 1.0, 0.3
    grid = (2 * torch.arange(n, dtype=torch.float64) + 1) / n - 1  # pixel centres in [-1, 1]
    ramp_x = ((grid + 1) / 2).view(1, 1, 1, n).expand(4, 1, n, n)
    ramp_y = ((grid + 1) / 2).view(1, 1, n, 1).expand(4, 1, n, n)
    u0, u1 = torch.tensor([0.0, 0.4, 0.8, 1.0]), torch.tensor([0.5, 0.2, 0.9, 0.7])
    u2, u3 = torch.tensor([0.5, 0.1, 0.8, 0.3]), torch.tensor([0.5, 0.9, 0.2, 0.6])
    u = _draws(4, u0=u0, u1=u1, u2=u2, u3=u3)
    cfg = AugmentConfig(crop_min=cmin, jitter=0.0, strength=s)
    area = 1 - s * (1 - cmin) * u0.double()
    ratio = torch.exp(s * (2 * u1.double() - 1) * math.log(4 / 3))
    sx, sy = (area * ratio).sqrt(), (area / ratio).sqrt()
    cx, cy = (2 * u2.double() - 1) * (1 - sx), (2 * u3.double() - 1) * (1 - sy)
    inner = slice(4, n - 4)  # away from the edges, where reflection padding takes over
    got_x = augment(ramp_x, cfg, False, FixedDraws(u))[:, 0, 10, inner]
    want_x = ((sx[:, None] * grid[None, inner] + cx[:, None]) + 1) / 2
    torch.testing.assert_close(got_x, want_x, atol=1e-6, rtol=0)
    got_y = augment(ramp_y, cfg, False, FixedDraws(u))[:, 0, inner, 10]
    want_y = ((sy[:, None] * grid[None, inner] + cy[:, None]) + 1) / 2
    torch.testing.assert_close(got_y, want_y, atol=1e-6, rtol=0)
    flipped = augment(ramp_x, cfg, True, FixedDraws(_draws(4, u0=u0, u1=u1, u2=u2, u3=u3, u4=0.1)))
    torch.testing.assert_close(
        flipped[:, 0, 10, inner],
        ((-sx[:, None] * grid[None, inner] + cx[:, None]) + 1) / 2,
        atol=1e-6,
        rtol=0,
    )


# NTSC's YIQ, written out here: Y is luma; a hue rotation turns (I, Q) about the grey axis.
YIQ = torch.tensor(
    [[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]], dtype=torch.float64
)


def test_colour_jitter_is_brightness_contrast_saturation_then_hue():
    torch.manual_seed(0)
    x = 0.2 + 0.6 * torch.rand(3, 3, 8, 8, dtype=torch.float64)
    j = 0.4
    u6, u7, u8 = (
        torch.tensor([0.9, 0.1, 0.6]),
        torch.tensor([0.2, 0.7, 0.5]),
        torch.tensor([0.8, 0.3, 0.1]),
    )
    u9 = torch.tensor([0.95, 0.2, 0.5])
    u = _draws(3, u5=0.0, u6=u6, u7=u7, u8=u8, u9=u9)
    cfg = AugmentConfig(crop_min=1.0, jitter=j, gray_p=0.0)
    got = augment(x, cfg, False, FixedDraws(u))

    def f(v):
        return (1 + j * (2 * v.double() - 1)).view(3, 1, 1, 1)

    luma = lambda v: (v * torch.tensor([0.299, 0.587, 0.114], dtype=v.dtype).view(1, 3, 1, 1)).sum(
        1, keepdim=True
    )  # noqa: E731
    y = x * f(u6)
    m = luma(y).mean((2, 3), keepdim=True)
    y = (y - m) * f(u7) + m
    y = luma(y) + (y - luma(y)) * f(u8)
    turns = j / 4 * (2 * u9.double() - 1)
    yiq = torch.einsum("ij,bjhw->bihw", YIQ, y)
    got_yiq = torch.einsum("ij,bjhw->bihw", YIQ, got)
    # Pixels neither side of the final clip to [0, 1] (before or after the hue's turn).
    inside = (y.min(1).values > 0.01) & (y.max(1).values < 0.99)
    inside &= (got.min(1).values > 1e-6) & (got.max(1).values < 1 - 1e-6)
    for b in range(3):
        k = inside[b]
        assert int(k.sum()) > 20
        torch.testing.assert_close(got_yiq[b, 0][k], yiq[b, 0][k], atol=1e-6, rtol=0)  # luma kept
        before = torch.atan2(yiq[b, 2][k], yiq[b, 1][k])
        after = torch.atan2(got_yiq[b, 2][k], got_yiq[b, 1][k])
        turned = torch.remainder(after - before + math.pi, 2 * math.pi) - math.pi
        torch.testing.assert_close(
            turned, torch.full_like(turned, 2 * math.pi * float(turns[b])), atol=1e-5, rtol=0
        )
        torch.testing.assert_close(
            yiq[b, 1:][:, k].norm(dim=0), got_yiq[b, 1:][:, k].norm(dim=0), atol=1e-6, rtol=0
        )
    untouched = augment(x, cfg, False, FixedDraws(_draws(3, u5=0.9, u6=u6, u7=u7, u8=u8, u9=u9)))
    torch.testing.assert_close(untouched, x)  # u5 over jitter_p (0.8): no jitter at all
    half = AugmentConfig(crop_min=1.0, jitter=0.0, gray_p=0.5, strength=0.5)  # grey p: 0.25
    kept = augment(x, half, False, FixedDraws(_draws(3, u10=0.3, u1=0.5)))
    assert bool((kept.std(1) > 1e-6).any())
    greyed = augment(
        x,
        AugmentConfig(crop_min=1.0, jitter=0.0, gray_p=0.5),
        False,
        FixedDraws(_draws(3, u10=[0.2, 0.6, 0.0])),
    )
    for b, want in ((0, True), (1, False), (2, True)):
        assert bool((greyed[b].std(0) < 1e-9).all()) == want
    torch.testing.assert_close(greyed[0, 0], luma(x)[0, 0])


def test_the_blur_is_a_normalised_five_tap_gaussian():
    torch.manual_seed(0)
    x = torch.rand(2, 3, 12, 12, dtype=torch.float64)  # colour: each channel blurred alike
    u11 = torch.tensor([0.2, 0.9])
    cfg = AugmentConfig(crop_min=1.0, jitter=0.0, blur_p=0.5)
    got = augment(x, cfg, False, FixedDraws(_draws(2, u11=u11, u12=[0.1, 0.1])))
    for b in range(2):
        sigma = 0.1 + 1.4 * float(u11[b])
        k = [math.exp(-(r * r) / (2 * sigma * sigma)) for r in range(-2, 3)]
        k = [v / sum(k) for v in k]
        pad = lambda i, n: -i if i < 0 else (2 * (n - 1) - i if i >= n else i)  # noqa: E731  reflect
        for ch in range(3):
            img = x[b, ch]
            rows = torch.stack(
                [sum(k[t] * img[:, pad(c + t - 2, 12)] for t in range(5)) for c in range(12)], 1
            )
            want = torch.stack(
                [sum(k[t] * rows[pad(r + t - 2, 12)] for t in range(5)) for r in range(12)], 0
            )
            torch.testing.assert_close(got[b, ch], want, atol=1e-9, rtol=0)
    kept = augment(x, cfg, False, FixedDraws(_draws(2, u11=u11, u12=[0.9, 0.9])))
    torch.testing.assert_close(kept, x)  # u12 over blur_p: not blurred
    weaker = AugmentConfig(crop_min=1.0, jitter=0.0, blur_p=0.5, strength=0.5)  # blur p: 0.25
    torch.testing.assert_close(augment(x, weaker, False, FixedDraws(_draws(2, u12=[0.3, 0.3]))), x)
