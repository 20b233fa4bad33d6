"""Whole-split transforms on uint8 (N, C, H, W): layout, colour conversion, resizing, crops and channel statistics."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from udlcli.data import transform


def test_as_nchw_reads_every_layout():
    x = np.zeros((5, 28, 28), np.uint8)
    assert transform.as_nchw(x).shape == (5, 1, 28, 28)
    assert transform.as_nchw(np.zeros((5, 32, 32, 3), np.uint8)).shape == (5, 3, 32, 32)
    assert transform.as_nchw(np.zeros((5, 3, 32, 32), np.uint8)).shape == (5, 3, 32, 32)
    with pytest.raises(TypeError):
        transform.as_nchw(np.zeros((5, 28, 28), np.float32))


def test_gray_is_pils_luma_and_rgb_repeats_it():
    rgb = torch.from_numpy(np.random.default_rng(0).integers(0, 256, (4, 3, 8, 8), dtype=np.uint8))
    gray = transform.to_gray(rgb)
    pil = np.stack(
        [np.asarray(Image.fromarray(a.permute(1, 2, 0).numpy()).convert("L")) for a in rgb]
    )
    assert gray.shape == (4, 1, 8, 8)
    assert np.abs(gray[:, 0].numpy().astype(int) - pil).max() <= 1  # PIL rounds in fixed point
    back = transform.to_rgb(gray)
    assert back.shape == (4, 3, 8, 8) and torch.equal(back[:, 0], back[:, 2])


def test_resize_matches_pil_bilinear_within_a_level():
    x = torch.from_numpy(np.random.default_rng(1).integers(0, 256, (3, 3, 96, 96), dtype=np.uint8))
    small = transform.resize(x, 64)
    assert small.shape == (3, 3, 64, 64) and small.dtype == torch.uint8
    pil = np.asarray(
        Image.fromarray(x[0].permute(1, 2, 0).numpy()).resize((64, 64), Image.BILINEAR)
    )
    diff = np.abs(small[0].permute(1, 2, 0).numpy().astype(int) - pil)
    assert diff.mean() < 2.0  # the same filter; edges differ by a level or two
    assert transform.resize(x, 96) is x  # nothing to do


def test_center_crop():
    x = torch.arange(1 * 1 * 6 * 4, dtype=torch.uint8).view(1, 1, 6, 4)
    assert transform.center_crop(x, 2).flatten().tolist() == [9, 10, 13, 14]


def test_channel_stats_per_channel_and_in_chunks(monkeypatch):
    x = torch.from_numpy(np.random.default_rng(2).integers(0, 256, (50, 3, 5, 5), dtype=np.uint8))
    monkeypatch.setattr(transform, "CHUNK", 7)  # several chunks
    mean, std = transform.channel_stats(x)
    f = x.double() / 255
    assert mean == pytest.approx(f.mean(dim=(0, 2, 3)).tolist(), abs=1e-4)
    assert std == pytest.approx(f.std(dim=(0, 2, 3), unbiased=False).tolist(), abs=1e-4)
