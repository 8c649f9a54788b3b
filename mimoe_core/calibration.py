"""A model's uncertainty, calibrated on the validation set: std, intervals, probabilities.

One :class:`Calibration` per trained model (or ensemble) turns an uncertainty estimate into
what users read, and owns its JSON form (stored in checkpoints and ``metrics.json``):

- regression: a z-scaled std (``<target>_std``) and an interval at any coverage
  (``<target>_lower``, ``<target>_upper``) from split conformal prediction normalized by the
  std (``conformal``, the default), from a Gaussian with the z-scaled std (``zscale``), or
  from a Gaussian with the raw std (``none``);
- classification: Platt-calibrated probabilities, and the spread as ``<target>_std``.

The estimators (:data:`ESTIMATORS`) are computed elsewhere: ``ensemble`` (the std of
members' predictions), ``mve`` (a variance head) and ``experts`` (the alpha-weighted spread
of the selected experts' predictions, :func:`~mimoe_core.analysis.weighted_expert_spread`).
Torch-free: numpy, scipy and scikit-learn through :mod:`mimoe_core.analysis.uncertainty`.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import numpy as np
from scipy.stats import norm

from mimoe_core.analysis.uncertainty import (
    ConformalRegressor,
    ProbabilityCalibrator,
    ZScaling,
    classification_uncertainty_metrics,
    regression_uncertainty_metrics,
    weighted_expert_spread,
)
from mimoe_core.results import PredictionResult

#: Where a model's std comes from.
ESTIMATORS = ("ensemble", "mve", "experts", "conformers")
#: How the std becomes intervals (regression); classification always calibrates with Platt.
METHODS = ("conformal", "zscale", "none")
#: Whether ``conformal`` offsets the std by its median validation value before normalizing
#: (:class:`~mimoe_core.analysis.uncertainty.ConformalRegressor`'s ``regularized``).
REGULARIZED_CONFORMAL = False


def check_coverage(coverage: float) -> float:
    """``coverage`` as a float in (0, 1), else a ValueError that says so."""
    if not 0.0 < float(coverage) < 1.0:
        raise ValueError(f"the interval coverage must be in (0, 1), got {coverage}")
    return float(coverage)


@dataclass
class Calibration:
    """The fitted calibration of one model's uncertainty (see the module docstring).

    Attributes:
        task: ``"regression"`` or ``"classification"``.
        estimator: one of :data:`ESTIMATORS`.
        method: one of :data:`METHODS`.
        zscale: the fitted z-scaling (regression; unused by method ``none``).
        conformal: the fitted normalized conformal regressor (method ``conformal``).
        probability: the fitted probability calibrator (classification).
    """

    task: str
    estimator: str
    method: str
    zscale: ZScaling | None = None
    conformal: ConformalRegressor | None = None
    probability: ProbabilityCalibrator | None = None

    @classmethod
    def fit(
        cls,
        task: str,
        estimator: str,
        method: str,
        pred: np.ndarray,
        std: np.ndarray,
        target: np.ndarray,
        regularized: bool = REGULARIZED_CONFORMAL,
    ) -> Calibration:
        """Fit on the validation set.

        Args:
            task: ``"regression"`` or ``"classification"``.
            estimator: one of :data:`ESTIMATORS` (recorded).
            method: one of :data:`METHODS`.
            pred: [M, T] validation predictions (probabilities for classification).
            std: [M, T] their uncertainty (> 0 for regression where labelled).
            target: [M, T] validation labels, NaN where missing.
            regularized: for ``conformal``, divide the errors by the std plus its median
                instead of the std alone, default :data:`REGULARIZED_CONFORMAL`.

        Raises:
            ValueError: an unknown estimator or method, or no validation label at all.
        """
        if estimator not in ESTIMATORS:
            raise ValueError(f"uncertainty must be one of {ESTIMATORS}, got {estimator!r}")
        if method not in METHODS:
            raise ValueError(f"calibration must be one of {METHODS}, got {method!r}")
        target = np.asarray(target, dtype=np.float64)
        if target.size == 0 or np.isnan(target).all():
            raise ValueError(
                "calibration is fitted on the validation set, and it has no labelled "
                "molecule; use a split with a validation set, or --calibration none"
            )
        if task == "classification":
            return cls(
                task, estimator, method, probability=ProbabilityCalibrator().fit(pred, target)
            )
        std = _positive(std)
        conformal = None
        if method == "conformal":
            conformal = ConformalRegressor(regularized=regularized).fit(pred, target, std=std)
        return cls(task, estimator, method, ZScaling().fit(pred, std, target), conformal)

    def apply(self, pred: np.ndarray, std: np.ndarray, coverage: float = 0.9) -> dict[str, Any]:
        """Calibrated outputs for new molecules.

        Args:
            pred: [M, T] predictions (probabilities for classification); NaN rows stay NaN.
            std: [M, T] their uncertainty from the same estimator.
            coverage: nominal coverage of the intervals, in (0, 1), default 0.9.

        Returns:
            ``{"prediction", "std", "lower", "upper"}`` arrays [M, T]; classification gets
            calibrated probabilities and no interval (``lower``/``upper`` None).
        """
        coverage = check_coverage(coverage)
        pred, std = np.asarray(pred, dtype=np.float64), np.asarray(std, dtype=np.float64)
        ok = ~np.isnan(pred).any(axis=1)
        if self.task == "classification":
            prob = np.full_like(pred, np.nan)
            prob[ok] = self.probability.apply(pred[ok])
            return {"prediction": prob, "std": std, "lower": None, "upper": None}
        raw = _positive(std)
        lower, upper = np.full_like(pred, np.nan), np.full_like(pred, np.nan)
        shown = raw.copy()  # method "none": the estimator's own std
        if self.method != "none":
            shown[ok] = self.zscale.apply(raw[ok])
        if self.method == "conformal":
            lower[ok], upper[ok] = self.conformal.interval(pred[ok], raw[ok], coverage)
        else:
            half = norm.ppf(0.5 + coverage / 2) * shown
            lower, upper = pred - half, pred + half
        shown[~ok] = np.nan
        return {"prediction": pred, "std": shown, "lower": lower, "upper": upper}

    def apply_to(
        self, result: PredictionResult, std: np.ndarray, coverage: float = 0.9
    ) -> PredictionResult:
        """``result`` with its prediction, std and interval calibrated (:meth:`apply`).

        Args:
            result: the uncalibrated result.
            std: [M, T] its raw uncertainty from :attr:`estimator`.
            coverage: nominal coverage of the interval, default 0.9.
        """
        out = self.apply(result.prediction, std, coverage)
        return replace(
            result,
            prediction=out["prediction"],
            std=out["std"],
            lower=out["lower"],
            upper=out["upper"],
            coverage=coverage if out["lower"] is not None else None,
            uncertainty=self.estimator,
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: floats, lists and strings only."""
        return {
            "task": self.task,
            "estimator": self.estimator,
            "method": self.method,
            "zscale": self.zscale.to_dict() if self.zscale else None,
            "conformal": self.conformal.to_dict() if self.conformal else None,
            "probability": self.probability.to_dict() if self.probability else None,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Calibration:
        """The calibration that :meth:`to_dict` wrote."""
        return cls(
            data["task"],
            data["estimator"],
            data["method"],
            ZScaling.from_dict(data["zscale"]) if data.get("zscale") else None,
            ConformalRegressor.from_dict(data["conformal"]) if data.get("conformal") else None,
            ProbabilityCalibrator.from_dict(data["probability"])
            if data.get("probability")
            else None,
        )


def uncertainty_metrics(
    task: str,
    pred: np.ndarray,
    std: np.ndarray,
    target: np.ndarray,
    lower: np.ndarray | None = None,
    upper: np.ndarray | None = None,
    uncalibrated: np.ndarray | None = None,
) -> dict[str, Any]:
    """The uncertainty metrics of one set, on the rows with a prediction.

    Regression: NLL, Spearman of |error| against std, miscalibration area, ENCE, and interval
    coverage and width when ``lower``/``upper`` are given. Classification: ECE and Brier of
    ``pred`` (the calibrated probabilities) and, given the ``uncalibrated`` ones, the same
    before calibration under ``"before_calibration"``.
    """
    pred, target = np.asarray(pred, dtype=np.float64), np.asarray(target, dtype=np.float64)
    ok = ~np.isnan(pred).any(axis=1)
    if task == "classification":
        found = classification_uncertainty_metrics(pred[ok], target[ok])
        if uncalibrated is not None:
            before = np.asarray(uncalibrated, dtype=np.float64)[ok]
            found["before_calibration"] = classification_uncertainty_metrics(before, target[ok])
        return found
    pick = (lambda a: None) if lower is None else (lambda a: np.asarray(a)[ok])
    return regression_uncertainty_metrics(
        pred[ok], _positive(np.asarray(std)[ok]), target[ok], pick(lower), pick(upper)
    )


def _positive(std: np.ndarray) -> np.ndarray:
    # A zero spread (two members that agree exactly, one selected expert) would make the
    # normalized scores infinite; the floor is far below any property's resolution.
    return np.maximum(np.asarray(std, dtype=np.float64), 1e-8)


def finite_json(value: Any) -> Any:
    """``value`` with NaN and infinities as None: JSON has neither."""
    if isinstance(value, dict):
        return {k: finite_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [finite_json(v) for v in value]
    if isinstance(value, float | np.floating) and not np.isfinite(value):
        return None
    return value


def with_uncertainty(
    result: PredictionResult, calibration: Calibration | None, coverage: float = 0.9
) -> PredictionResult:
    """``result`` with its calibrated uncertainty, if the model is calibrated.

    The estimate is the alpha-weighted spread of the selected experts' own predictions
    (``experts``: :func:`~mimoe_core.analysis.weighted_expert_spread`; logits for
    classification) or the variance head's std (``mve``).
    """
    if calibration is None:
        return result
    return calibration.apply_to(result, estimate_std(result, calibration.estimator), coverage)


def estimate_std(result: PredictionResult, estimator: str) -> np.ndarray:
    """[M, T] the raw uncertainty of a single model's result.

    ``experts``, ``mve``, or ``conformers`` (the spread over a conformer ensemble).
    """
    if estimator == "experts":
        return expert_spread(result)
    if estimator in ("mve", "conformers") and result.uncertainty == estimator:
        if result.std is not None:
            return result.std
    raise ValueError(f"a single model has no {estimator!r} uncertainty (trained without it)")


def expert_spread(result: PredictionResult) -> np.ndarray:
    """[M, T] the alpha-weighted spread of the selected experts' predictions (NaN if skipped)."""
    spread = np.full(result.prediction.shape, np.nan)
    ok = result.ok
    spread[ok] = weighted_expert_spread(result.expert_predictions[ok], result.alpha[ok])
    return spread
