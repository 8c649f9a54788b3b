"""Training losses over present labels only: MSE or BCE, and the Gaussian NLL of MVE."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def masked_loss(
    pred: torch.Tensor,
    target: torch.Tensor,
    mask: torch.Tensor,
    task: str,
    labels: float | None = None,
):
    """Mean loss over present labels: MSE (regression) or BCE with logits (classification).

    ``labels`` is the count to divide the summed loss by (default: the present labels of
    this batch); data-parallel training passes its share of the global batch's count.
    """
    target = torch.where(mask, target, torch.zeros_like(target))
    if task == "regression":
        per = F.mse_loss(pred, target, reduction="none")
    else:
        per = F.binary_cross_entropy_with_logits(pred, target, reduction="none")
    return _mean(per, mask, labels)


def masked_gaussian_nll(
    mean: torch.Tensor,
    log_var: torch.Tensor,
    target: torch.Tensor,
    mask: torch.Tensor,
    labels: float | None = None,
):
    """Mean Gaussian negative log-likelihood over present labels (constant dropped).

    ``0.5 * (log_var + (target - mean)^2 / exp(log_var))``; the log variance is clamped to
    [-10, 10] so that one outlier cannot make it diverge. ``labels`` as in
    :func:`masked_loss`.
    """
    target = torch.where(mask, target, torch.zeros_like(target))
    log_var = log_var.clamp(-10.0, 10.0)
    per = 0.5 * (log_var + (target - mean) ** 2 * torch.exp(-log_var))
    return _mean(per, mask, labels)


def _mean(per: torch.Tensor, mask: torch.Tensor, labels: float | None) -> torch.Tensor:
    total = (per * mask).sum()
    if labels is None:
        return total / mask.sum().clamp_min(1)
    return total / max(labels, 1e-12)
