r"""Uncertainty you can trust: evaluation, calibration and the spreads that feed them.

Torch-free (numpy, scipy, scikit-learn), like :mod:`~mimoe_core.analysis.metrics`: every
function takes ``[M, T]`` arrays (1-D arrays count as one target) with NaN in ``target`` for
a missing label, masks each target on its own labels, and returns per-target values plus
their mean over targets.

- Evaluation: :func:`regression_uncertainty_metrics` (Gaussian NLL, Spearman of
  :math:`|\hat y - y|` against :math:`\sigma`, miscalibration area, ENCE, interval coverage
  and width), :func:`coverage_curve`, :func:`miscalibration_area`, :func:`rmv_rmse_bins`,
  :func:`classification_uncertainty_metrics` (ECE, Brier score).
- Calibration, fitted on the validation set and stored as plain floats:
  :class:`ZScaling`, :class:`ConformalRegressor`, :class:`ProbabilityCalibrator`, defined
  in :mod:`~mimoe_core.analysis.calibrators` and re-exported here.
- Sources of a spread: :func:`weighted_expert_spread` (the mixture's own experts) and
  :func:`ensemble_mean_std` (independently trained members).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import ArrayLike
from scipy.stats import norm, spearmanr

from mimoe_core.analysis._arrays import (
    _as_2d,
    _check_n_bins,
    _check_probabilities,
    _check_same_shape,
    _check_std,
    _labelled,
)
from mimoe_core.analysis.calibrators import ConformalRegressor, ProbabilityCalibrator, ZScaling
from mimoe_core.analysis.metrics import _nanmean

__all__ = [
    "ConformalRegressor",
    "ProbabilityCalibrator",
    "ZScaling",
    "classification_uncertainty_metrics",
    "coverage_curve",
    "ensemble_mean_std",
    "miscalibration_area",
    "regression_uncertainty_metrics",
    "rmv_rmse_bins",
    "weighted_expert_spread",
]

#: Coverage levels of :func:`coverage_curve`: 0, 0.01, ..., 1 (chemprop's 100 bins).
DEFAULT_LEVELS = np.linspace(0.0, 1.0, 101)


# --- regression evaluation ------------------------------------------------------------------


def coverage_curve(
    pred: ArrayLike, std: ArrayLike, target: ArrayLike, levels: ArrayLike | None = None
) -> tuple[np.ndarray, np.ndarray]:
    r"""Expected against observed coverage of central Gaussian intervals, per target.

    For each level :math:`p`, the interval is :math:`\hat y \pm z_p \sigma` with
    :math:`z_p = \Phi^{-1}(\tfrac{1}{2} + \tfrac{p}{2})`, and the observed coverage is the
    share of labelled molecules with :math:`|\hat y - y| \le z_p \sigma`. Level 0 covers
    nothing and level 1 everything, by definition (chemprop's convention), so the curve
    runs from (0, 0) to (1, 1). Targets are kept apart rather than pooled: they differ in
    how well their uncertainty is calibrated, and the figure draws one line each.

    Args:
        pred: [M, T] predictions.
        std: [M, T] predicted standard deviations (>= 0), same units as ``pred``.
        target: [M, T] labels, NaN where missing.
        levels: [L] nominal coverages in [0, 1], default None (0, 0.01, ..., 1).

    Returns:
        ``(expected [L], observed [L, T])``; a target without labels gets a NaN column.

    Raises:
        ValueError: for mismatched shapes, negative std, levels outside [0, 1], or a
            non-finite pred/std where a label is present.

    Example:
        >>> expected, observed = coverage_curve([0.0, 0.0], [1.0, 1.0], [0.5, 2.0], [0.5, 0.99])
        >>> observed[:, 0].tolist()  # |error| <= 0.674 sigma, then <= 2.576 sigma
        [0.5, 1.0]
    """
    p, s, y = _as_2d(pred, "pred"), _as_2d(std, "std"), _as_2d(target, "target")
    _check_same_shape(pred=p, std=s, target=y)
    _check_std(s)
    keep = _labelled(y, ("pred", p), ("std", s))
    expected = DEFAULT_LEVELS.copy() if levels is None else np.asarray(levels, dtype=np.float64)
    if expected.ndim != 1 or not np.all((expected >= 0) & (expected <= 1)):
        raise ValueError("levels must be a 1-D array of coverages in [0, 1]")
    z = norm.ppf(0.5 + expected / 2)  # [L]
    observed = np.full((expected.size, p.shape[1]), np.nan)
    for t in range(p.shape[1]):
        k = keep[:, t]
        if not k.any():
            continue
        err, sig = np.abs(p[k, t] - y[k, t]), s[k, t]
        with np.errstate(invalid="ignore"):  # z = inf times sigma = 0 at level 1
            covered = err[None, :] <= z[:, None] * sig[None, :]
        observed[:, t] = covered.mean(axis=1)
        observed[expected == 0, t] = 0.0
        observed[expected == 1, t] = 1.0
    return expected, observed


def miscalibration_area(expected: ArrayLike, observed: ArrayLike) -> np.ndarray | float:
    r"""Area between the coverage curve and the diagonal, by the trapezoid rule.

    .. math::
        \mathrm{MA} = \int_0^1 |\mathrm{observed}(p) - p| \, dp

    With the default levels of :func:`coverage_curve` this is exactly chemprop's
    ``MiscalibrationAreaEvaluator`` (100 bins; Tran et al. 2020,
    https://arxiv.org/abs/1912.10066): 0 for a calibrated model, at most 0.5.

    Args:
        expected: [L] increasing levels.
        observed: [L] or [L, T] observed coverages.

    Returns:
        A float for 1-D ``observed``, else a [T] array (NaN for a target without labels).

    Example:
        >>> miscalibration_area([0.0, 0.5, 1.0], [0.0, 1.0, 1.0])
        0.25
    """
    x = np.asarray(expected, dtype=np.float64)
    obs = np.asarray(observed, dtype=np.float64)
    gap = np.abs(obs - (x if obs.ndim == 1 else x[:, None]))
    area = np.trapezoid(gap, x, axis=0)
    return float(area) if obs.ndim == 1 else area


def rmv_rmse_bins(
    pred: ArrayLike, std: ArrayLike, target: ArrayLike, n_bins: int = 10
) -> list[tuple[np.ndarray, np.ndarray]]:
    r"""Root mean variance against RMSE in bins of increasing std, per target (ENCE's bins).

    The labelled molecules of a target are sorted by :math:`\sigma` and split into
    ``min(n_bins, n)`` bins of (nearly) equal count; bin :math:`j` gets
    :math:`\mathrm{RMV}_j = \sqrt{\mathrm{mean}\,\sigma^2}` and
    :math:`\mathrm{RMSE}_j = \sqrt{\mathrm{mean}\,(\hat y - y)^2}` (Levi et al. 2022,
    https://arxiv.org/abs/1905.11659). A calibrated model has RMV = RMSE in every bin.

    Args:
        pred: [M, T] predictions.
        std: [M, T] predicted standard deviations (>= 0).
        target: [M, T] labels, NaN where missing.
        n_bins: the number of bins, default 10 (fewer when a target has fewer labels).

    Returns:
        Per target, ``(rmv [B], rmse [B])``; empty arrays for a target without labels.

    Example:
        >>> rmv, rmse = rmv_rmse_bins([0.0, 0.0, 0.0, 0.0], [1.0, 1.0, 2.0, 2.0],
        ...                           [1.0, -1.0, 0.0, 4.0], n_bins=2)[0]
        >>> rmv.tolist(), rmse.tolist()
        ([1.0, 2.0], [1.0, 2.8284271247461903])
    """
    p, s, y = _as_2d(pred, "pred"), _as_2d(std, "std"), _as_2d(target, "target")
    _check_same_shape(pred=p, std=s, target=y)
    _check_std(s)
    n_bins = _check_n_bins(n_bins)
    keep = _labelled(y, ("pred", p), ("std", s))
    out = []
    for t in range(p.shape[1]):
        k = keep[:, t]
        order = np.argsort(s[k, t], kind="stable")
        sig, err = s[k, t][order], (p[k, t] - y[k, t])[order]
        bins = np.array_split(np.arange(sig.size), min(n_bins, sig.size)) if sig.size else []
        rmv = np.array([np.sqrt(np.mean(sig[b] ** 2)) for b in bins])
        rmse = np.array([np.sqrt(np.mean(err[b] ** 2)) for b in bins])
        out.append((rmv, rmse))
    return out


def regression_uncertainty_metrics(
    pred: ArrayLike,
    std: ArrayLike,
    target: ArrayLike,
    lower: ArrayLike | None = None,
    upper: ArrayLike | None = None,
    n_bins: int = 10,
) -> dict:
    r"""How trustworthy a predicted std (and optionally an interval) is, per target and mean.

    On the labelled molecules of each target:

    - ``nll``: mean Gaussian negative log-likelihood, constant included,
      :math:`\tfrac{1}{2}\log(2\pi\sigma^2) + \tfrac{(\hat y - y)^2}{2\sigma^2}`
      (infinite or NaN where :math:`\sigma = 0`);
    - ``spearman``: rank correlation of :math:`|\hat y - y|` with :math:`\sigma` (does a
      larger std flag a larger error?); NaN when either is constant or n < 2;
    - ``miscalibration_area``: :func:`miscalibration_area` of :func:`coverage_curve`;
    - ``ence``: expected normalized calibration error over the bins of
      :func:`rmv_rmse_bins`, :math:`\mathrm{mean}_j |\mathrm{RMV}_j - \mathrm{RMSE}_j| /
      \mathrm{RMV}_j`;
    - with ``lower`` and ``upper``: ``coverage`` (share of labels inside
      [lower, upper]) and ``width`` (mean of upper - lower, infinite for an unbounded
      interval).

    Args:
        pred: [M, T] predictions.
        std: [M, T] predicted standard deviations (>= 0), same units as ``pred``.
        target: [M, T] labels, NaN where missing.
        lower: [M, T] interval lower bounds, default None (no interval metrics).
        upper: [M, T] interval upper bounds, default None; give both or neither.
        n_bins: ENCE bins, default 10 (fewer when a target has fewer labels).

    Returns:
        ``{"nll", "spearman", "miscalibration_area", "ence", ["coverage", "width",]
        "per_target": {name: [T values]}, "n": [T counts]}``; the top-level values are the
        means over targets with a value (NaN targets are left out, as in
        :func:`~mimoe_core.analysis.metrics.regression_metrics`).

    Raises:
        ValueError: for mismatched shapes, negative std, only one of lower/upper,
            lower > upper, or a non-finite pred/std where a label is present.

    Example:
        >>> out = regression_uncertainty_metrics([[0.0], [0.0]], [[1.0], [1.0]], [[1.0], [-1.0]])
        >>> round(out["nll"], 4)  # 0.5 log(2 pi) + 0.5
        1.4189
    """
    p, s, y = _as_2d(pred, "pred"), _as_2d(std, "std"), _as_2d(target, "target")
    _check_same_shape(pred=p, std=s, target=y)
    _check_std(s)
    keep = _labelled(y, ("pred", p), ("std", s))
    if (lower is None) != (upper is None):
        raise ValueError("give both lower and upper for interval metrics, or neither")
    interval = lower is not None
    if interval:
        lo, hi = _as_2d(lower, "lower"), _as_2d(upper, "upper")
        _check_same_shape(pred=p, lower=lo, upper=hi)
        if np.any(lo[keep] > hi[keep]):
            raise ValueError("lower must not exceed upper")

    expected, observed = coverage_curve(p, s, y)
    areas = miscalibration_area(expected, observed)
    bins = rmv_rmse_bins(p, s, y, n_bins=n_bins)
    per: dict[str, list[float]] = {"nll": [], "spearman": [], "miscalibration_area": [], "ence": []}
    if interval:
        per["coverage"], per["width"] = [], []
    counts = []
    for t in range(p.shape[1]):
        k = keep[:, t]
        counts.append(int(k.sum()))
        if not k.any():
            for values in per.values():
                values.append(float("nan"))
            continue
        err, sig = p[k, t] - y[k, t], s[k, t]
        with np.errstate(divide="ignore", invalid="ignore"):
            nll = 0.5 * np.log(2 * np.pi * sig**2) + err**2 / (2 * sig**2)
            rmv, rmse = bins[t]
            ence = np.mean(np.abs(rmv - rmse) / rmv)
        per["nll"].append(float(np.mean(nll)))
        per["spearman"].append(_spearman(np.abs(err), sig))
        per["miscalibration_area"].append(float(areas[t]))
        per["ence"].append(float(ence))
        if interval:
            inside = (lo[k, t] <= y[k, t]) & (y[k, t] <= hi[k, t])
            per["coverage"].append(float(np.mean(inside)))
            per["width"].append(float(np.mean(hi[k, t] - lo[k, t])))
    out: dict[str, Any] = {name: _nanmean(values) for name, values in per.items()}
    out["per_target"] = per
    out["n"] = counts
    return out


def _spearman(a: np.ndarray, b: np.ndarray) -> float:
    # spearmanr warns and returns NaN on constant input; say NaN without the warning.
    if a.size < 2 or np.ptp(a) == 0 or np.ptp(b) == 0:
        return float("nan")
    return float(spearmanr(a, b).statistic)


# --- classification -------------------------------------------------------------------------


def classification_uncertainty_metrics(
    prob: ArrayLike, target: ArrayLike, n_bins: int = 10
) -> dict:
    r"""Expected calibration error and Brier score per task, and their mean over tasks.

    ``ece`` uses ``n_bins`` equal-width bins of the predicted probability, :math:`[0, 1/B),
    \dots, [1 - 1/B, 1]`, and weighs each bin's gap by its share of molecules:

    .. math::
        \mathrm{ECE} = \sum_b \frac{n_b}{n} \left| \bar y_b - \bar p_b \right|, \qquad
        \mathrm{Brier} = \frac{1}{n} \sum_i (p_i - y_i)^2

    Args:
        prob: [M, T] predicted probabilities of class 1.
        target: [M, T] labels 0/1, NaN where missing.
        n_bins: ECE bins, default 10.

    Returns:
        ``{"ece", "brier", "per_target": {"ece": [...], "brier": [...]}, "n": [...]}``; a
        task without labels gets NaN and is left out of the means.

    Raises:
        ValueError: for mismatched shapes, probabilities outside [0, 1], labels other than
            0/1, or a NaN probability where a label is present.

    Example:
        >>> out = classification_uncertainty_metrics([0.9, 0.9, 0.2], [1.0, 0.0, 0.0])
        >>> round(out["ece"], 4), round(out["brier"], 4)  # (2/3)|0.5-0.9| + (1/3)|0-0.2|
        (0.3333, 0.2867)
    """
    p, y = _as_2d(prob, "prob"), _as_2d(target, "target")
    _check_same_shape(prob=p, target=y)
    _check_probabilities(p, y)
    n_bins = _check_n_bins(n_bins)
    keep = _labelled(y, ("prob", p))
    ece, brier, counts = [], [], []
    for t in range(p.shape[1]):
        k = keep[:, t]
        counts.append(int(k.sum()))
        if not k.any():
            ece.append(float("nan"))
            brier.append(float("nan"))
            continue
        pt, yt = p[k, t], y[k, t]
        which = np.minimum((pt * n_bins).astype(int), n_bins - 1)
        n_b = np.bincount(which, minlength=n_bins)
        gap = np.abs(np.bincount(which, yt, n_bins) - np.bincount(which, pt, n_bins))
        ece.append(float(gap.sum() / n_b.sum()))  # sum_b (n_b/n) |sum_b(y - p)/n_b|
        brier.append(float(np.mean((pt - yt) ** 2)))
    return {
        "ece": _nanmean(ece),
        "brier": _nanmean(brier),
        "per_target": {"ece": ece, "brier": brier},
        "n": counts,
    }


# --- where a std comes from -----------------------------------------------------------------


def weighted_expert_spread(expert_predictions: ArrayLike, alpha: ArrayLike) -> np.ndarray:
    r"""Routing-weighted std of the selected experts around the mixture prediction.

    .. math::
        \bar y = \sum_k \alpha_k \hat y_k, \qquad
        \sigma = \sqrt{\textstyle\sum_k \alpha_k (\hat y_k - \bar y)^2}

    Unselected experts (alpha = 0) do not count, so their predictions may be NaN (as in a
    :class:`~mimoe_core.results.PredictionResult`). With one selected expert the spread is 0:
    a Top-1 gate gives no disagreement signal, so use Top-k >= 2 (or an ensemble) when the
    spread is meant as an uncertainty. It measures disagreement, not calibrated error; fit a
    :class:`ZScaling` on it before reading it as a std. For classification, pass logits.

    Args:
        expert_predictions: [M, K, T] (or [M, K] for one target) per-expert predictions.
        alpha: [M, K] routing weights, >= 0 with rows summing to 1; a row with NaN (a
            skipped molecule) gives NaN.

    Returns:
        [M, T] (or [M]) spreads, in the units of the predictions.

    Raises:
        ValueError: for mismatched shapes, negative weights or rows not summing to 1.

    Example:
        >>> weighted_expert_spread([[1.0, 3.0, np.nan]], [[0.5, 0.5, 0.0]]).tolist()
        [1.0]
    """
    preds = np.asarray(expert_predictions, dtype=np.float64)
    a = np.asarray(alpha, dtype=np.float64)
    one_target = preds.ndim == 2
    if one_target:
        preds = preds[..., None]
    if a.ndim != 2 or preds.ndim != 3 or preds.shape[:2] != a.shape:
        raise ValueError(
            f"shape mismatch: expert_predictions {np.shape(expert_predictions)} must be "
            f"[M, K, T] with [M, K] = alpha's shape {a.shape}"
        )
    valid = ~np.isnan(a).any(axis=1)
    if np.any(a[valid] < 0):
        raise ValueError("alpha must be non-negative")
    sums = a[valid].sum(axis=1)
    if not np.allclose(sums, 1.0, atol=1e-5):
        raise ValueError(f"alpha rows must sum to 1, got sums in [{sums.min():g}, {sums.max():g}]")
    w = np.where(valid[:, None], a, 0.0)[..., None]  # [M, K, 1]
    y = np.where(w > 0, preds, 0.0)
    mean = np.sum(w * y, axis=1, keepdims=True)
    var = np.sum(w * (y - mean) ** 2, axis=1)
    spread = np.sqrt(np.maximum(var, 0.0))
    spread[~valid] = np.nan
    return spread[:, 0] if one_target else spread


def ensemble_mean_std(member_predictions: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """Mean and sample std (ddof = 1) over ensemble members, axis 0.

    The sample std is the unbiased-variance estimate of the spread of independently
    trained members (chemprop's and TorchMD-Net's ensembles report the same spread up to
    the ddof). It is a disagreement, not a calibrated std: fit a :class:`ZScaling` on it.

    Args:
        member_predictions: [N, M, T] (any [N, ...]) predictions of N >= 2 members.

    Returns:
        ``(mean, std)``, each of shape [M, T] (the input without its first axis).

    Raises:
        ValueError: with fewer than 2 members.

    Example:
        >>> mean, std = ensemble_mean_std([[1.0], [3.0]])
        >>> mean.tolist(), std.tolist()
        ([2.0], [1.4142135623730951])
    """
    preds = np.asarray(member_predictions, dtype=np.float64)
    if preds.ndim == 0 or preds.shape[0] < 2:
        n = 0 if preds.ndim == 0 else preds.shape[0]
        raise ValueError(f"an ensemble needs at least 2 members for a spread, got {n}")
    return preds.mean(axis=0), preds.std(axis=0, ddof=1)
