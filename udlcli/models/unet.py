"""The U-Net of the diffusion and flow families, sized from the image shape: residual blocks, group norm, a time embedding, attention.

For an image (C, H, W) with 28 <= H, W <= 64 and width w, levels L (default: halving while the
side is over 8), channel multipliers m (default 1, 2, 2, ...):

    in      conv3x3(C -> w)
    down    per level i: `blocks` ResBlocks (-> w*m_i), self-attention at the lowest level; then a
            stride-2 conv3x3, which halves the side rounding up: 28 -> 14 -> 7, 32 -> 16 -> 8, 64 -> ... -> 8
    middle  ResBlock, self-attention, ResBlock
    up      per level, lowest first: blocks + 1 ResBlocks on the skip connections, then nearest
            upsampling to the exact size of the level above (7 -> 14 -> 28: nothing cropped) and a conv3x3
    out     GroupNorm, SiLU, conv3x3(w -> C)

Each ResBlock: GroupNorm, SiLU, conv3x3, + the projected embedding, GroupNorm, SiLU, dropout,
conv3x3, + the input (a 1x1 conv when the width changes). The embedding is the sinusoidal
embedding of the time (x 1000 for times in [0, 1]) through an MLP, plus a learned class embedding
for class-conditional models, whose last class is "no class" (classifier-free guidance).
"""

from __future__ import annotations

import math
from typing import Optional

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn

from udlcli.config import Strict


class UNetConfig(Strict):
    """The U-Net's shape: the fields the diffusion and flow families share."""

    width: int = Field(32, ge=8, le=512, multiple_of=8)
    """Channels of the first level (multiples of 8: group norm takes 8 groups)."""
    mults: Optional[list[int]] = None
    """Channel multiplier of each level; None: 1, 2, 2, ... with one level per halving down to 8 pixels."""
    blocks: int = Field(1, ge=1, le=8)
    """ResBlocks per level on the way down (one more on the way up); 2 doubles the cost (docs/diffusion.md)."""
    attention: bool = True
    """Self-attention at the lowest resolution and in the middle."""
    dropout: float = Field(0.0, ge=0.0, lt=1.0)


def levels_for(side: int) -> int:
    """Levels for an image side: one per halving (rounding up) while the side is over 8, plus the first."""
    n = 1
    while side > 8:
        side = (side + 1) // 2
        n += 1
    return n


def sinusoidal(t: torch.Tensor, dim: int) -> torch.Tensor:
    """(B,) times -> (B, dim): sines and cosines of t at geometrically spaced frequencies (Vaswani et al.)."""
    half = dim // 2
    freqs = torch.exp(-math.log(10_000) * torch.arange(half, device=t.device) / half)
    args = t.float()[:, None] * freqs[None]
    return torch.cat([args.sin(), args.cos()], dim=1)


class ResBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int, emb: int, dropout: float):
        super().__init__()
        self.norm1, self.conv1 = nn.GroupNorm(8, c_in), nn.Conv2d(c_in, c_out, 3, padding=1)
        self.emb = nn.Linear(emb, c_out)
        self.norm2, self.conv2 = nn.GroupNorm(8, c_out), nn.Conv2d(c_out, c_out, 3, padding=1)
        self.dropout = nn.Dropout(dropout)
        self.skip = nn.Conv2d(c_in, c_out, 1) if c_in != c_out else nn.Identity()
        nn.init.zeros_(self.conv2.weight)  # each block starts as the identity: stable early steps
        nn.init.zeros_(self.conv2.bias)

    def forward(self, x: torch.Tensor, e: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        h = h + self.emb(F.silu(e))[:, :, None, None]
        h = self.conv2(self.dropout(F.silu(self.norm2(h))))
        return h + self.skip(x)


class Attention(nn.Module):
    """Single-head self-attention over the H x W positions, with a residual connection."""

    def __init__(self, c: int):
        super().__init__()
        self.norm, self.qkv, self.out = (
            nn.GroupNorm(8, c),
            nn.Conv2d(c, 3 * c, 1),
            nn.Conv2d(c, c, 1),
        )
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        q, k, v = self.qkv(self.norm(x)).reshape(b, 3, c, h * w).transpose(2, 3).unbind(1)
        a = F.scaled_dot_product_attention(q, k, v)  # (B, HW, C)
        return x + self.out(a.transpose(1, 2).reshape(b, c, h, w))


class UNet(nn.Module):
    """x_t (B, C, H, W), times t (B,), classes (B,) or None -> a tensor of x_t's shape (noise, velocity, ...)."""

    def __init__(self, cfg: UNetConfig, shape, classes: int = 0):
        super().__init__()
        c, h, w = shape
        n = levels_for(min(h, w))
        mults = cfg.mults or [1] + [2] * (n - 1)
        widths = [cfg.width * m for m in mults]
        emb = 4 * cfg.width
        self.width, self.classes = cfg.width, classes
        self.time = nn.Sequential(nn.Linear(cfg.width, emb), nn.SiLU(), nn.Linear(emb, emb))
        self.label = nn.Embedding(classes + 1, emb) if classes else None  # the last: no class
        self.inp = nn.Conv2d(c, widths[0], 3, padding=1)
        self.down, self.pools = nn.ModuleList(), nn.ModuleList()
        chans, ch = [widths[0]], widths[0]
        for i, wd in enumerate(widths):
            lowest = i == len(widths) - 1
            for _ in range(cfg.blocks):
                self.down.append(self._block(ch, wd, emb, cfg, lowest))
                ch = wd
                chans.append(ch)
            if not lowest:
                self.pools.append(nn.Conv2d(ch, ch, 3, stride=2, padding=1))
                chans.append(ch)
        self.mid = nn.ModuleList(
            [ResBlock(ch, ch, emb, cfg.dropout), ResBlock(ch, ch, emb, cfg.dropout)]
        )
        self.mid_attn = Attention(ch) if cfg.attention else nn.Identity()
        self.up, self.ups = nn.ModuleList(), nn.ModuleList()
        for i, wd in reversed(list(enumerate(widths))):
            lowest = i == len(widths) - 1
            for _ in range(cfg.blocks + 1):
                self.up.append(self._block(ch + chans.pop(), wd, emb, cfg, lowest))
                ch = wd
            if i:
                self.ups.append(nn.Conv2d(ch, ch, 3, padding=1))
        self.out = nn.Sequential(nn.GroupNorm(8, ch), nn.SiLU(), nn.Conv2d(ch, c, 3, padding=1))
        nn.init.zeros_(self.out[-1].weight)
        nn.init.zeros_(self.out[-1].bias)
        self.blocks, self.levels = cfg.blocks, len(widths)

    @staticmethod
    def _block(c_in: int, c_out: int, emb: int, cfg: UNetConfig, attend: bool) -> nn.ModuleList:
        attn = Attention(c_out) if attend and cfg.attention else nn.Identity()
        return nn.ModuleList([ResBlock(c_in, c_out, emb, cfg.dropout), attn])

    def forward(
        self, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor | None = None
    ) -> torch.Tensor:
        e = self.time(sinusoidal(t, self.width))
        if self.label is not None:
            e = e + self.label(
                y if y is not None else torch.full_like(t, self.classes, dtype=torch.long)
            )
        h = self.inp(x)
        skips, blocks = [h], iter(self.down)
        for level in range(self.levels):
            for _ in range(self.blocks):
                res, attn = next(blocks)
                h = attn(res(h, e))
                skips.append(h)
            if level < self.levels - 1:
                h = self.pools[level](h)
                skips.append(h)
        h = self.mid[1](self.mid_attn(self.mid[0](h, e)), e)
        blocks, ups = iter(self.up), iter(self.ups)
        for level in reversed(range(self.levels)):
            for _ in range(self.blocks + 1):
                res, attn = next(blocks)
                h = attn(res(torch.cat([h, skips.pop()], 1), e))
            if level:
                # Nearest upsampling to the skip's exact size (7 -> 14, not 8 cropped to 7), then a conv.
                h = next(ups)(F.interpolate(h, size=skips[-1].shape[-2:], mode="nearest"))
        return self.out(h)
