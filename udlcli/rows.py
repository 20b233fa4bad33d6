"""Per-image random draws for a batch that may be split over ranks: drawn for the whole global batch, then sliced.

A model that draws noise per image (a GAN's z, a VAE's epsilon, a DAE's corruption, a diffusion
model's t and noise) gets a `Rows` from the trainer with every batch, as an argument of its loss or
train step, and draws through it:

    eps = rows.randn((len(x), d), device=x.device)     # (B, d): this process's rows of the global draw

Training alone, `Rows()` (LOCAL) draws for the batch itself. On N ranks the trainer passes the
global batch size and this rank's slice of it, so every rank draws the same global tensor from the
same RNG state and keeps its own rows: N ranks see the noise one process would, and train to the
same weights. Nothing here is global state; the trainer hands it over explicitly.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Rows:
    total: int | None = None
    """Rows of the global batch; None: the batch in hand is the whole batch (one process)."""
    part: slice | None = None
    """This process's rows of the global batch (None: all of them)."""

    def draw(
        self,
        fn: Callable[..., torch.Tensor],
        shape: tuple[int, ...],
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """fn (torch.randn, torch.rand, ...) of `shape`, whose first dimension is this process's rows.

        With a generator the draw is made on the generator's device (a seeded CPU generator gives
        the same numbers on any device) and moved to `device`.
        """
        if self.total is None:
            full, part = shape, slice(None)
        else:
            full, part = (self.total, *shape[1:]), self.part
        if generator is None:
            return fn(full, device=device, dtype=dtype)[part]
        return fn(full, generator=generator, device=generator.device, dtype=dtype)[part].to(device)

    def randn(
        self, shape: tuple[int, ...], device=None, dtype=None, generator=None
    ) -> torch.Tensor:
        return self.draw(torch.randn, shape, device, dtype, generator)

    def rand(self, shape: tuple[int, ...], device=None, dtype=None, generator=None) -> torch.Tensor:
        return self.draw(torch.rand, shape, device, dtype, generator)

    @property
    def start(self) -> int:
        """The global index of this process's first row."""
        return 0 if self.part is None else self.part.start or 0

    def gather(self, t: torch.Tensor) -> torch.Tensor:
        """This process's rows t (b, ...) joined with every rank's, in global order (total, ...).

        Gradients flow back to each rank's own rows (an all-gather whose backward sums them), so a
        loss over the whole global batch (SimCLR's negatives) trains every rank as one process
        would. Shards differ by a row at most (core/distributed.shard): each is padded to the
        largest for the all-gather, and the padding dropped.
        """
        if self.total is None:
            return t
        import torch.distributed as dist
        import torch.distributed.nn.functional as dfn

        world = dist.get_world_size()
        base, extra = divmod(self.total, world)
        sizes = [base + (r < extra) for r in range(world)]
        pad = sizes[0] - len(t)
        padded = torch.cat([t, t.new_zeros(pad, *t.shape[1:])]) if pad else t
        return torch.cat([p[:n] for p, n in zip(dfn.all_gather(padded), sizes)])

    def randint(
        self, high: int, shape: tuple[int, ...], device=None, generator=None
    ) -> torch.Tensor:
        """Integers in [0, high) (int64), e.g. a diffusion step per image."""
        fn = lambda size, **kw: torch.randint(0, high, size, **kw)  # noqa: E731
        return self.draw(fn, shape, device, None, generator)


LOCAL = Rows()
"""The rows of a batch that is all there is (one process, or outside training)."""
