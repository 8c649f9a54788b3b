"""Helpers shared by the run-folder and ablation figures: metric direction, usage columns."""

from __future__ import annotations

from mimoe_core.run_folder import cutoff_columns, usage_columns

__all__ = ["MAXIMIZED", "cutoff_columns", "maximized", "usage_columns"]

# Metrics where larger is better; every other metric (rmse, mae, loss) is minimized.
MAXIMIZED = ("auc", "r2", "accuracy")


def maximized(metric: str) -> bool:
    """Whether larger values of ``metric`` (a column name such as ``val_roc_auc``) are better.

    Example:
        >>> maximized("val_roc_auc"), maximized("test_rmse")
        (True, False)
    """
    return any(tag in metric for tag in MAXIMIZED)
