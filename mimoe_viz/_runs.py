"""Helpers shared by the run-folder and ablation figures: metric direction, usage columns."""

from __future__ import annotations

import re

import pandas as pd

# Metrics where larger is better; every other metric (rmse, mae, loss) is minimized.
MAXIMIZED = ("auc", "r2", "accuracy")


def maximized(metric: str) -> bool:
    """Whether larger values of ``metric`` (a column name such as ``val_roc_auc``) are better.

    Example:
        >>> maximized("val_roc_auc"), maximized("test_rmse")
        (True, False)
    """
    return any(tag in metric for tag in MAXIMIZED)


def usage_columns(history: pd.DataFrame) -> list[str]:
    """The ``usage_1..K`` columns of a history frame, in expert order."""
    found = [c for c in history.columns if re.fullmatch(r"usage_\d+", str(c))]
    return sorted(found, key=lambda c: int(c.split("_")[1]))
