"""The learning-rate schedule of a training run: built from its settings, stepped per epoch.

An optional linear warmup (``TrainSettings.warmup_epochs``) sets the rate of each optimizer
step of the first epochs from the epoch and step alone (:func:`warmup_lr`), so a resumed run
needs no extra state; the schedule proper starts after it.
"""

from __future__ import annotations

import numpy as np
import torch

from mimoe_core.training.settings import TrainSettings

__all__ = ["make_scheduler", "step_scheduler", "warmup_lr"]


def make_scheduler(optimizer, settings: TrainSettings, minimize: bool):
    """The LR schedule ``settings.scheduler`` names (None for ``"none"``)."""
    if settings.scheduler == "plateau":
        return torch.optim.lr_scheduler.ReduceLROnPlateau(
            optimizer,
            mode="min" if minimize else "max",
            factor=0.5,
            patience=max(1, settings.patience // 2),
        )
    if settings.scheduler == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(
            optimizer, T_max=max(1, settings.epochs - settings.warmup_epochs)
        )
    return None


def warmup_lr(settings: TrainSettings, epoch: int, step: int, steps_per_epoch: int) -> float | None:
    """The learning rate of optimizer step ``step`` (0-based) of ``epoch`` during warmup.

    Linear from ``lr / total`` at the first step to ``lr`` at the last of ``total =
    warmup_epochs * steps_per_epoch`` steps, and ``lr`` again at the first step after it
    (a last batch left out of an epoch can stop the rise short); then None: the optimizer's
    own rate, which the schedule manages.
    """
    if epoch == settings.warmup_epochs > 0 and step == 0:
        return settings.lr
    if epoch >= settings.warmup_epochs:
        return None
    total = settings.warmup_epochs * max(steps_per_epoch, 1)
    return settings.lr * min(1.0, (epoch * steps_per_epoch + step + 1) / total)


def step_scheduler(scheduler, score: float, maximize: bool) -> None:
    """Advance the LR schedule after an epoch with validation ``score``."""
    if scheduler is None:
        return
    if isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
        # A NaN score is no improvement: the worst value for the scheduler's mode
        # (+inf would count as the best value ever in "max" mode).
        worst = float("-inf") if maximize else float("inf")
        scheduler.step(score if np.isfinite(score) else worst)
    else:
        scheduler.step()
