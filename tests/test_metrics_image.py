"""PSNR and SSIM, checked against scikit-image's reference implementations on real digits."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from udlcli.metrics_image import MAX_PSNR, psnr, psnr_from_mse, ssim

skm = pytest.importorskip(
    "skimage.metrics", reason="scikit-image (a dev dependency) is the reference implementation"
)


@pytest.fixture(scope="module")
def pairs() -> tuple[torch.Tensor, torch.Tensor]:
    """Real test digits (clean) and corrupted copies of three strengths: (24, 1, 28, 28) each."""
    from udlcli.data import load_dataset
    from udlcli.data.noise import NoiseConfig, add_noise

    clean = load_dataset("mnist-sample").test.images(torch.arange(24))
    g = torch.Generator().manual_seed(0)
    noisy = torch.cat(
        [
            add_noise(c, NoiseConfig(noise=k, sigma=0.4), generator=g)
            for c, k in zip(clean.chunk(3), ("gaussian", "saltpepper", "both"))
        ]
    )
    return noisy, clean


def test_ssim_matches_scikit_image(pairs):
    noisy, clean = pairs
    ours = ssim(noisy, clean)
    ref = [
        skm.structural_similarity(
            a[0].double().numpy(),
            b[0].double().numpy(),
            gaussian_weights=True,
            sigma=1.5,
            use_sample_covariance=False,
            data_range=1.0,
        )
        for a, b in zip(noisy, clean)
    ]
    np.testing.assert_allclose(ours.numpy(), ref, atol=1e-5)  # float32 against float64
    assert ours.std() > 0.05  # the cases differ, so agreement is not an accident of one value


def test_psnr_matches_scikit_image(pairs):
    noisy, clean = pairs
    ref = [
        skm.peak_signal_noise_ratio(b[0].numpy(), a[0].numpy(), data_range=1.0)
        for a, b in zip(noisy, clean)
    ]
    np.testing.assert_allclose(psnr(noisy, clean).numpy(), ref, rtol=1e-5)


def test_identical_images_score_one_and_the_psnr_cap(pairs):
    _, clean = pairs
    assert torch.allclose(ssim(clean, clean), torch.ones(len(clean)), atol=1e-6)
    assert torch.allclose(psnr(clean, clean), torch.full((len(clean),), MAX_PSNR))
    assert psnr_from_mse(0.0) == MAX_PSNR and psnr_from_mse(0.01) == pytest.approx(20.0)


def test_ssim_rejects_images_smaller_than_its_window():
    with pytest.raises(ValueError, match="window"):
        ssim(torch.rand(2, 1, 8, 8), torch.rand(2, 1, 8, 8))


def test_colour_ssim_is_the_mean_over_channels_as_scikit_image_computes_it():
    """Real colour photographs (scikit-image's astronaut and coffee), 48x48 patches, under per-channel noise."""
    from skimage import data as skdata

    from udlcli.data.noise import NoiseConfig, add_noise

    photos = [skdata.astronaut(), skdata.coffee()]
    patches = torch.stack(
        [
            torch.from_numpy(p[r : r + 48, c : c + 48].copy()).permute(2, 0, 1)
            for p in photos
            for r, c in ((40, 60), (200, 150))
        ]
    )
    clean = patches.float() / 255  # (4, 3, 48, 48)
    noisy = add_noise(
        clean,
        NoiseConfig(noise="both", sigma=0.5),
        std=[0.25, 0.2, 0.3],
        generator=torch.Generator().manual_seed(0),
    )
    assert not torch.equal(noisy[:, 0], noisy[:, 1])  # every channel has its own noise
    ours = ssim(noisy, clean)
    ref = [
        skm.structural_similarity(
            a.permute(1, 2, 0).double().numpy(),
            b.permute(1, 2, 0).double().numpy(),
            channel_axis=2,
            gaussian_weights=True,
            sigma=1.5,
            use_sample_covariance=False,
            data_range=1.0,
        )
        for a, b in zip(noisy, clean)
    ]
    np.testing.assert_allclose(ours.numpy(), ref, atol=1e-5)
    np.testing.assert_allclose(
        psnr(noisy, clean).numpy(),
        [
            skm.peak_signal_noise_ratio(b.numpy(), a.numpy(), data_range=1.0)
            for a, b in zip(noisy, clean)
        ],
        atol=1e-4,
    )
