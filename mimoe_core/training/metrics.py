"""Metrics with missing labels masked; they live in :mod:`mimoe_core.analysis.metrics`.

This module re-exports them so ``mimoe_core.training.metrics`` keeps working.
"""

from mimoe_core.analysis.metrics import (
    SELECTION_METRIC,
    classification_metrics,
    compute_metrics,
    masked_log_loss,
    regression_metrics,
    scorable_tasks,
)

__all__ = [
    "SELECTION_METRIC",
    "classification_metrics",
    "compute_metrics",
    "masked_log_loss",
    "regression_metrics",
    "scorable_tasks",
]
