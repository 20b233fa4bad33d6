"""The GAN's networks sized from the shape: the report's MLP for any C*H*W, and the DCGAN for 28, 32 and 64 pixels."""

from __future__ import annotations

import pytest
import torch

from udlcli.errors import SpecError
from udlcli.models.dcgan import build_dcgan
from udlcli.models.gan import GAN, GanModelConfig, build_gan


@pytest.mark.parametrize("shape", [(1, 28, 28), (3, 32, 32), (3, 64, 64)])
@pytest.mark.parametrize("arch", ["mlp", "dcgan"])
def test_both_archs_draw_and_judge_images_of_the_shape(arch, shape):
    torch.manual_seed(0)
    g, d = build_gan(GanModelConfig(arch=arch), shape)
    x = g(torch.randn(4, 64))
    assert x.shape == (4, *shape) and x.min() >= -1 and x.max() <= 1  # Tanh: [-1, 1]
    assert d(x).shape == (4,)


def test_the_reports_mlp_is_unchanged_for_mnist():
    g, d = build_gan(GanModelConfig(), (1, 28, 28))
    lin = [m for m in g.modules() if isinstance(m, torch.nn.Linear)]
    assert [m.out_features for m in lin] == [256, 512, 1024, 784]
    assert next(m for m in d.modules() if isinstance(m, torch.nn.Linear)).in_features == 784


@pytest.mark.parametrize("shape", [(3, 48, 48), (3, 32, 48)])
def test_dcgan_refuses_a_size_it_is_not_built_for(shape):
    with pytest.raises(SpecError, match="--image-size 28, 32 or 64, or --arch mlp"):
        build_dcgan(64, 64, shape)


def test_one_training_step_in_colour_with_per_channel_normalisation():
    from udlcli.models.gan import GanTrainConfig

    torch.manual_seed(0)
    mean, std = [0.4, 0.5, 0.6], [0.2, 0.3, 0.4]
    gan = GAN(GanModelConfig(arch="dcgan", channels=8), mean=mean, std=std, shape=(3, 32, 32))
    # G's Tanh range [-1, 1] maps to each channel's own [mean - std, mean + std].
    px = gan.to_pixels(torch.stack([torch.full((3, 32, 32), v) for v in (-1.0, 1.0)]))
    assert torch.allclose(px[0, :, 0, 0], torch.tensor([0.2, 0.2, 0.2]))
    assert torch.allclose(px[1, :, 0, 0], torch.tensor([0.6, 0.8, 1.0]))
    opt = gan.configure_optimizers(GanTrainConfig(lr=2e-4))
    before = [p.clone() for p in gan.parameters()]
    out = gan.train_step(torch.rand(6, 3, 32, 32), torch.zeros(6), opt)
    assert all(torch.isfinite(v) for v in out.values())
    assert all(not torch.equal(a, b) for a, b in zip(before, gan.parameters()) if a.ndim > 1)
