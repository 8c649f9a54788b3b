"""Which epoch is best: the validation metric, its score, and what counts as better."""

from __future__ import annotations

import warnings

import numpy as np

from mimoe_core.training.metrics import (
    SELECTION_METRIC,
    compute_metrics,
    masked_log_loss,
    scorable_tasks,
)


def selection_metric(task: str, val_labels: np.ndarray) -> tuple[str, bool]:
    """The validation metric for early stopping, and whether larger is better.

    ROC-AUC needs both classes in at least one validation task; without them every epoch
    would score NaN and the untrained epoch 0 would be kept, so the validation log-loss is
    used instead, with a warning.
    """
    name, maximize = SELECTION_METRIC[task]
    if task == "classification" and scorable_tasks(task, val_labels) == 0:
        warnings.warn(
            "no validation task holds both classes, so ROC-AUC is undefined; early stopping "
            "uses the validation log-loss (val_loss) instead. A larger or stratified validation "
            "set (e.g. --split scaffold_balanced) restores ROC-AUC selection.",
            stacklevel=4,  # the caller of train(), which builds the run that calls this
        )
        return "loss", False
    return name, maximize


def selection_score(task: str, metric: str, pred: np.ndarray, labels: np.ndarray) -> float:
    """The validation score of one epoch under :func:`selection_metric`'s metric."""
    if metric == "loss":
        return masked_log_loss(pred, labels)
    return compute_metrics(task, pred, labels)[metric]


def is_better(score: float, best: float | None, maximize: bool) -> bool:
    """Is ``score`` an improvement? The first epoch always is; a NaN score never beats a number."""
    if best is None or (not np.isfinite(best) and np.isfinite(score)):
        return True
    if not np.isfinite(score):
        return False
    return score > best if maximize else score < best
