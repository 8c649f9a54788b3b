"""Metrics with missing labels masked: RMSE/MAE (regression), ROC-AUC/PR-AUC (classification).

Torch-free: scikit-learn and numpy only, so the training loop and the figures share them.
"""

from __future__ import annotations

import numpy as np
from sklearn.metrics import average_precision_score, roc_auc_score

#: Metric used for early stopping, and whether larger is better, per task.
SELECTION_METRIC = {"regression": ("rmse", False), "classification": ("roc_auc", True)}


def regression_metrics(pred: np.ndarray, target: np.ndarray) -> dict:
    """RMSE and MAE per target and their mean over targets, on present labels only.

    Args:
        pred: [M, num_targets] predictions in the original units.
        target: [M, num_targets] labels, NaN where missing.

    Returns:
        ``{"rmse", "mae", "per_target": {"rmse": [...], "mae": [...]}, "n": [...]}``;
        a target with no label gets NaN and is left out of the means.

    Example:
        >>> regression_metrics(np.array([[1.0], [2.0]]), np.array([[1.0], [4.0]]))["rmse"]
        1.4142135623730951
    """
    rmse, mae, counts = [], [], []
    for p, t in zip(pred.T, target.T, strict=True):
        keep = ~np.isnan(t)
        counts.append(int(keep.sum()))
        if not keep.any():
            rmse.append(float("nan"))
            mae.append(float("nan"))
            continue
        err = p[keep] - t[keep]
        rmse.append(float(np.sqrt(np.mean(err**2))))
        mae.append(float(np.mean(np.abs(err))))
    return {
        "rmse": _nanmean(rmse),
        "mae": _nanmean(mae),
        "per_target": {"rmse": rmse, "mae": mae},
        "n": counts,
    }


def classification_metrics(prob: np.ndarray, target: np.ndarray) -> dict:
    """ROC-AUC and PR-AUC per task, averaged over tasks with both classes present.

    Args:
        prob: [M, num_tasks] predicted probabilities of class 1.
        target: [M, num_tasks] labels 0/1, NaN where missing.

    Returns:
        ``{"roc_auc", "pr_auc", "per_target": {...}, "n": [...], "tasks_scored": k}``; a task
        with one class only (or no label) gets NaN and is left out of the means.
    """
    roc, pr, counts = [], [], []
    for p, t in zip(prob.T, target.T, strict=True):
        keep = ~np.isnan(t)
        counts.append(int(keep.sum()))
        labels = t[keep]
        if labels.size == 0 or labels.min() == labels.max():
            roc.append(float("nan"))
            pr.append(float("nan"))
            continue
        roc.append(float(roc_auc_score(labels, p[keep])))
        pr.append(float(average_precision_score(labels, p[keep])))
    return {
        "roc_auc": _nanmean(roc),
        "pr_auc": _nanmean(pr),
        "per_target": {"roc_auc": roc, "pr_auc": pr},
        "n": counts,
        "tasks_scored": int(np.sum(~np.isnan(roc))),
    }


def masked_log_loss(prob: np.ndarray, target: np.ndarray, eps: float = 1e-7) -> float:
    """Mean binary cross-entropy over present labels (NaN = missing); NaN with no label.

    Example:
        >>> round(masked_log_loss(np.array([[0.8], [0.3]]), np.array([[1.0], [np.nan]])), 4)
        0.2231
    """
    keep = ~np.isnan(target)
    if not keep.any():
        return float("nan")
    p = np.clip(prob[keep], eps, 1 - eps)
    t = target[keep]
    return float(-np.mean(t * np.log(p) + (1 - t) * np.log(1 - p)))


def scorable_tasks(task: str, target: np.ndarray) -> int:
    """How many targets the selection metric can score.

    A target counts when it has a label (regression) or both classes (classification, where
    ROC-AUC needs both).
    """
    count = 0
    for t in np.asarray(target, dtype=float).reshape(len(target), -1).T:
        labels = t[~np.isnan(t)]
        if labels.size and (task == "regression" or labels.min() != labels.max()):
            count += 1
    return count


def compute_metrics(task: str, pred: np.ndarray, target: np.ndarray) -> dict:
    """:func:`regression_metrics` or :func:`classification_metrics` by task."""
    if task == "regression":
        return regression_metrics(pred, target)
    return classification_metrics(pred, target)


def _nanmean(values: list[float]) -> float:
    finite = [v for v in values if not np.isnan(v)]
    return float(np.mean(finite)) if finite else float("nan")
