"""An exponential moving average of a model's weights (train.ema): what validation, tests, samples and exports use.

After every optimiser step each floating-point parameter's average moves toward it:
avg <- d * avg + (1 - d) * p with d = min(decay, (1 + n) / (10 + n)) after n updates: the average
warms up (timm's and lucidrains' EMAs do the same), so a short CPU run is not scored on weights
still mostly at their initial values (0.999 alone keeps 64% of them after 440 steps). Buffers
(batch-norm statistics, fixed normalisation) are copied as they are. The averages are checkpointed beside the weights, so a resumed run continues
the same average; a run folder's checkpoints keep both, and loading a run for inference takes the
average (core/loading.py).
"""

from __future__ import annotations

from contextlib import contextmanager

import torch


class EMA:
    def __init__(self, model: torch.nn.Module, decay: float):
        self.model, self.decay, self.updates = model, decay, 0
        self.shadow = {k: v.detach().clone() for k, v in model.state_dict().items()}

    @torch.no_grad()
    def update(self) -> None:
        self.updates += 1
        d = min(self.decay, (1 + self.updates) / (10 + self.updates))
        for k, v in self.model.state_dict().items():
            if v.dtype.is_floating_point and k in self._params:
                self.shadow[k].lerp_(v.detach(), 1.0 - d)
            else:
                self.shadow[k].copy_(v)

    @property
    def _params(self) -> set[str]:
        # Names of the trainable tensors: the average follows these; everything else is copied.
        if not hasattr(self, "_names"):
            self._names = {k for k, _ in self.model.named_parameters()}
        return self._names

    @contextmanager
    def swapped(self):
        """The model holds the averaged weights inside the block, its own again after it."""
        own = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
        self.model.load_state_dict(self.shadow)
        try:
            yield
        finally:
            self.model.load_state_dict(own)

    def state_dict(self) -> dict[str, torch.Tensor]:
        # The update count rides along as a tensor, so the payload stays a dict of tensors.
        return {
            **{k: v.clone() for k, v in self.shadow.items()},
            UPDATES: torch.tensor(self.updates),
        }

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        # A checkpoint from before the warmup has no count: its average is already warm.
        self.updates = WARM if UPDATES not in state else self.updates
        for k, v in state.items():
            if k == UPDATES:
                self.updates = int(v)
            else:
                self.shadow[k].copy_(v)


WARM = 1_000_000
"""The count a checkpoint without one resumes at: past any warmup, d = decay."""
UPDATES = "_ema_updates"
"""The key of the update count in an EMA's state (not a weight: loading a run for inference drops it)."""


def scored_weights(payload: dict) -> dict:
    """The weights a checkpoint is scored, sampled and exported with: its average (train.ema), else its own."""
    ema = payload.get("ema")
    if not ema:
        return payload["model"]
    return {k: v for k, v in ema.items() if k != UPDATES}
