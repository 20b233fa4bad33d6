"""An exponential moving average of a model's weights (train.ema): what validation, tests, samples and exports use.

After every optimiser step each floating-point parameter's average moves toward it:
avg <- decay * avg + (1 - decay) * p; buffers (batch-norm statistics, fixed normalisation) are
copied as they are. The averages are checkpointed beside the weights, so a resumed run continues
the same average; a run folder's checkpoints keep both, and loading a run for inference takes the
average (core/loading.py).
"""

from __future__ import annotations

from contextlib import contextmanager

import torch


class EMA:
    def __init__(self, model: torch.nn.Module, decay: float):
        self.model, self.decay = model, decay
        self.shadow = {k: v.detach().clone() for k, v in model.state_dict().items()}

    @torch.no_grad()
    def update(self) -> None:
        for k, v in self.model.state_dict().items():
            if v.dtype.is_floating_point and k in self._params:
                self.shadow[k].lerp_(v.detach(), 1.0 - self.decay)
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
        return {k: v.clone() for k, v in self.shadow.items()}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        for k, v in state.items():
            self.shadow[k].copy_(v)
