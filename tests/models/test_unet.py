"""The diffusion U-Net: sized from the image shape, exact sizes on the way up (28 -> 14 -> 7 -> 14 -> 28), conditioning."""

from __future__ import annotations

import pytest
import torch

from udlcli.models.unet import ResBlock, UNet, UNetConfig, levels_for


@pytest.mark.parametrize(
    "shape,levels,lowest",
    [((1, 28, 28), 3, 7), ((3, 32, 32), 3, 8), ((3, 64, 64), 4, 8), ((1, 48, 40), 4, 5)],
)
def test_levels_halve_down_to_at_most_8_pixels_and_come_back_to_the_exact_size(
    shape, levels, lowest
):
    net = UNet(UNetConfig(width=16), shape)
    assert net.levels == levels == levels_for(min(shape[1:]))
    sizes = []
    hook = net.mid[0].register_forward_hook(lambda m, i, o: sizes.append(tuple(o.shape[-2:])))
    x = torch.randn(2, *shape)
    out = net(x, torch.tensor([3.0, 900.0]))
    hook.remove()
    assert out.shape == x.shape  # nothing cropped, nothing padded
    assert min(sizes[0]) == lowest


def test_the_documented_parameter_counts():
    # docs/diffusion.md gives these; the default U-Net (width 32, 1 block a level, attention) and blocks=2
    def count(shape, **kw):
        return sum(p.numel() for p in UNet(UNetConfig(**kw), shape).parameters())

    assert count((1, 28, 28)) == 1_112_801 and count((3, 32, 32)) == 1_113_955
    assert count((1, 28, 28), blocks=2) == 1_623_169 and count((3, 32, 32), blocks=2) == 1_624_323


def test_it_starts_at_zero_and_sees_time_and_class():
    torch.manual_seed(0)
    net = UNet(UNetConfig(width=8, blocks=1), (1, 28, 28), classes=10)
    x = torch.randn(4, 1, 28, 28)
    assert torch.count_nonzero(net(x, torch.zeros(4))) == 0  # zero-initialised output layer
    for m in net.modules():  # undo the zero initialisations (output, each block's last conv)
        if isinstance(m, ResBlock):
            torch.nn.init.normal_(m.conv2.weight, std=0.1)
    torch.nn.init.normal_(net.out[-1].weight, std=0.1)
    t = torch.tensor([1.0, 1.0, 500.0, 500.0])
    y = torch.tensor([3, 4, 3, 10])  # 10: no class
    out = net(x[[0, 0, 0, 0]], t, y)
    assert not torch.allclose(out[0], out[1])  # another class
    assert not torch.allclose(out[0], out[2])  # another time
    assert torch.allclose(
        net(x[:1], t[:1]), net(x[:1], t[:1], torch.tensor([10]))
    )  # None = no class


@pytest.mark.parametrize(
    "flags,says",
    [
        ({"model.width": 12}, "multiple of 8"),  # group norm's 8 groups
        ({"train.fid_n": 1}, "at least 2 samples"),
    ],
)
def test_a_spec_the_unet_or_its_fid_cannot_take_is_refused_up_front(flags, says):
    from udlcli.core.spec import resolve_spec
    from udlcli.errors import SpecError

    with pytest.raises(SpecError, match=says):
        resolve_spec("flow", flags=flags)
