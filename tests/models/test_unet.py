"""The diffusion U-Net: sized from the image shape, exact sizes on the way up (28 -> 14 -> 7 -> 14 -> 28), conditioning."""

from __future__ import annotations

import math

import pytest
import torch

from udlcli.models.unet import ResBlock, UNet, UNetConfig, levels_for


@pytest.mark.parametrize(
    "shape,levels,lowest",
    [
        ((1, 28, 28), 3, 7),
        ((3, 32, 32), 3, 8),
        ((3, 64, 64), 4, 8),
        ((1, 48, 40), 4, 5),
        ((1, 28, 64), 3, 7),  # the shorter side sets the levels
    ],
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


def test_the_time_embedding_is_vaswanis_sinusoid():
    """Row b: sin(t_b w_i) for i < d/2, then cos(t_b w_i), with w_i = 10000^(-i / (d/2))."""
    import math

    from udlcli.models.unet import sinusoidal

    t = torch.tensor([0.0, 3.0, 250.0, 999.0])
    got = sinusoidal(t, 12)
    for b, tb in enumerate(t.tolist()):
        for i in range(6):
            w = 10_000 ** (-i / 6)
            assert float(got[b, i]) == pytest.approx(math.sin(tb * w), abs=1e-4)
            assert float(got[b, 6 + i]) == pytest.approx(math.cos(tb * w), abs=1e-4)


def test_a_fresh_block_is_the_identity_and_attention_is_over_positions():
    from udlcli.models.unet import Attention

    torch.manual_seed(0)
    x, e = torch.randn(2, 8, 5, 5), torch.randn(2, 16)
    torch.testing.assert_close(ResBlock(8, 8, 16, 0.0)(x, e), x)  # zero last conv: x itself
    att = Attention(8)
    torch.testing.assert_close(att(x), x)  # zero output projection at the start
    torch.nn.init.normal_(att.out.weight, std=0.3)
    qkv = att.qkv(att.norm(x)).flatten(2)  # (B, 3C, HW)
    q, k, v = (qkv[:, i * 8 : (i + 1) * 8].transpose(1, 2) for i in range(3))  # (B, HW, C) each
    weights = torch.softmax(q @ k.transpose(1, 2) / math.sqrt(8), dim=-1)  # over the 25 positions
    a = (weights @ v).transpose(1, 2).reshape(2, 8, 5, 5)
    torch.testing.assert_close(att(x), x + att.out(a), atol=1e-5, rtol=1e-5)


def test_every_weight_takes_part():
    """One backward pass reaches every parameter (a block called twice in place of two is caught)."""
    torch.manual_seed(0)
    net = UNet(UNetConfig(width=8), (1, 28, 28), classes=3)
    for p in net.parameters():  # off the zero initialisations, so every path carries a gradient
        torch.nn.init.normal_(p, std=0.05)
    net(
        torch.randn(2, 1, 28, 28), torch.tensor([5.0, 600.0]), torch.tensor([0, 2])
    ).square().sum().backward()
    idle = [n for n, p in net.named_parameters() if p.grad is None or not p.grad.abs().sum()]
    assert idle == [], idle


@pytest.mark.parametrize(
    "side,levels", [(8, 1), (9, 2), (15, 2), (16, 2), (17, 3), (28, 3), (33, 4), (64, 4)]
)
def test_levels_for_each_side(side, levels):
    """One level, and one more per halving (rounding up: 9 -> 5) while the side is over 8."""
    assert levels_for(side) == levels
