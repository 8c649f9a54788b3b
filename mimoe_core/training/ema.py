"""An exponential moving average of a model's weights, evaluated and checkpointed in their place.

Validation sets of small MoleculeNet datasets (60-110 molecules) give noisy scores from epoch
to epoch; the average of the recent weights is smoother than the last step's. With
``TrainSettings.ema_decay`` > 0 the trainer updates a :class:`WeightAverage` after every
optimizer step, and validates, keeps the best epoch of, and writes ``model.pt`` from the
averaged weights; ``last.pt`` holds both, so a resumed run continues the same average.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch import nn

__all__ = ["WeightAverage"]


class WeightAverage:
    """The moving average ``avg <- d * avg + (1 - d) * w`` of every parameter.

    The first steps use ``min(decay, (1 + n) / (10 + n))`` after ``n`` updates, so the average
    is not dominated by the initial weights. The update is ``avg + (1 - d) * (w - avg)``,
    which leaves a weight that does not move (a frozen part) exactly as it is. Buffers (the
    target scaler, counters) are copied, not averaged.

    Args:
        model: the model whose state dict is averaged (read now for the starting values).
        decay: ``d`` in (0, 1), e.g. 0.999.
    """

    def __init__(self, model: nn.Module, decay: float) -> None:
        if not 0.0 < decay < 1.0:
            raise ValueError(f"the EMA decay must be in (0, 1), got {decay}")
        self.decay = float(decay)
        self.updates = 0
        self.shadow = {k: v.detach().clone() for k, v in model.state_dict().items()}
        parameters = {id(p) for p in model.parameters()}
        state = model.state_dict(keep_vars=True)
        self._averaged = [
            k for k, v in state.items() if id(v) in parameters and v.is_floating_point()
        ]
        averaged = set(self._averaged)
        self._copied = [k for k in state if k not in averaged]

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        """Fold the model's current weights into the average."""
        self.updates += 1
        d = min(self.decay, (1 + self.updates) / (10 + self.updates))
        state = model.state_dict(keep_vars=True)
        # One fused call over all parameters: the update runs after every optimizer step.
        torch._foreach_lerp_(
            [self.shadow[k] for k in self._averaged],
            [state[k].detach() for k in self._averaged],
            1.0 - d,
        )
        for key in self._copied:
            self.shadow[key].copy_(state[key].detach())

    @contextlib.contextmanager
    def applied(self, model: nn.Module) -> Iterator[None]:
        """Within the block the model holds the averaged weights; its own come back after."""
        own = {k: v.detach().clone() for k, v in model.state_dict().items()}
        model.load_state_dict(self.shadow)
        try:
            yield
        finally:
            model.load_state_dict(own)

    def state_dict(self) -> dict:
        """Plain tensors and numbers, for ``last.pt`` (loads with ``weights_only=True``)."""
        return {"decay": self.decay, "updates": self.updates, "shadow": self.shadow}

    def load_state_dict(self, state: dict) -> None:
        """Continue the average saved by :meth:`state_dict`."""
        self.decay, self.updates = float(state["decay"]), int(state["updates"])
        self.shadow = {k: v.clone() for k, v in state["shadow"].items()}
