"""The learning-rate schedule of a training run: built from its settings, stepped per epoch."""

from __future__ import annotations

import numpy as np
import torch

from mimoe_core.training.settings import TrainSettings

__all__ = ["make_scheduler", "step_scheduler"]


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
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=settings.epochs)
    return None


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
