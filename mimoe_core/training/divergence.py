"""Steps whose gradients are not finite: skipped, counted, and an error once nothing trains.

A loss that overflows (a model whose outputs blow up after a large step, a geometry that
gives 0/0) leaves NaN or inf in the gradients, and one optimizer step on them makes every
weight NaN for the rest of the run. The trainer measures the gradient norm of each step
(:func:`gradient_norm`, which also clips it) and skips the step when the norm is not
finite; under DDP the gradients are all-reduced first, so every rank sees the same norm and
skips the same steps. The epoch's ``skipped_steps`` says how many; an epoch in which every
step was skipped ends the run with :class:`TrainingDiverged`.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


class TrainingDiverged(ValueError):
    """Every training step of an epoch had non-finite gradients."""

    def __init__(self, epoch: int, steps: int) -> None:
        advice = (
            f"the last checkpoint is from epoch {epoch - 1}; lower --lr, raise "
            "--warmup-epochs, or keep --clip-norm on"
            if epoch > 0
            else "nothing was trained; check the targets and the input geometries, or lower --lr"
        )
        super().__init__(
            f"training diverged: all {steps} training steps of epoch {epoch} had non-finite "
            f"gradients (the loss or the model's outputs overflowed): {advice}"
        )
        self.epoch, self.steps = epoch, steps


def gradient_norm(model: nn.Module, clip_norm: float) -> Tensor:
    """The total L2 norm of ``model``'s gradients; NaN or inf when a gradient is not finite.

    With ``clip_norm`` > 0 the gradients are also clipped to it
    (``torch.nn.utils.clip_grad_norm_``, which returns the norm before clipping).
    """
    if clip_norm > 0:
        return torch.nn.utils.clip_grad_norm_(model.parameters(), clip_norm)
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    return torch.nn.utils.get_total_norm(grads) if grads else torch.zeros(())
