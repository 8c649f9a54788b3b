r"""Calibrators of predicted uncertainty, fitted on the validation set.

- :class:`ZScaling`: one multiplier per target for the predicted std;
- :class:`ConformalRegressor`: split conformal intervals, normalized by the std if given;
- :class:`ProbabilityCalibrator`: Platt or isotonic recalibration of probabilities.

Each is stored as plain floats (``to_dict``/``from_dict``, JSON-ready for ``metrics.json`` or
a checkpoint) and follows scikit-learn's conventions: hyperparameters in ``__init__``,
``fit`` returns ``self``, fitted attributes end in ``_``. Inputs are ``[M, T]`` arrays (1-D
arrays count as one target) with NaN in ``target`` for a missing label, masked per target.
Torch-free (numpy, scipy, scikit-learn); re-exported by
:mod:`~mimoe_core.analysis.uncertainty`, whose metrics evaluate what these calibrate.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np
from numpy.typing import ArrayLike
from scipy.special import expit, logit
from sklearn.exceptions import NotFittedError
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression

from mimoe_core.analysis._arrays import (
    _as_2d,
    _check_coverage,
    _check_probabilities,
    _check_same_shape,
    _check_std,
    _labelled,
    _reshape_like,
)

__all__ = ["ConformalRegressor", "ProbabilityCalibrator", "ZScaling"]

# Platt scaling is meant to be unpenalized; a finite C keeps a separable validation set
# (tiny data sets) from sending the slope to infinity.
_PLATT_C = 1e4
_LOGIT_EPS = 1e-7


# --- regression calibration -----------------------------------------------------------------


def _check_kind(data: dict, kind: str) -> None:
    if data.get("kind") != kind:
        raise ValueError(f"expected a dict of kind {kind!r}, got kind {data.get('kind')!r}")


def _check_targets(arr: np.ndarray, expected: int, name: str) -> None:
    if arr.shape[1] != expected:
        raise ValueError(
            f"{name} has {arr.shape[1]} targets, the calibration was fitted on {expected}"
        )


class ZScaling:
    r"""One multiplier per target for the predicted std, fitted on the validation set.

    The scale minimizing the validation Gaussian NLL has a closed form:

    .. math::
        s^2 = \mathrm{mean}\left(\frac{(\hat y - y)^2}{\sigma^2}\right)

    (std scaling, Levi et al. 2022; "variance scaling" in chemprop). A target without
    validation labels keeps s = 1, with a warning.

    Attributes:
        scale_: [T] fitted multipliers.

    Example:
        >>> z = ZScaling().fit([[0.0], [0.0]], [[1.0], [1.0]], [[2.0], [-2.0]])
        >>> z.scale_.tolist(), z.apply([[0.5]]).tolist()
        ([2.0], [[1.0]])
    """

    def __init__(self) -> None:
        self.scale_: np.ndarray | None = None

    def fit(self, pred: ArrayLike, std: ArrayLike, target: ArrayLike) -> ZScaling:
        """Fit the scales on validation predictions.

        Args:
            pred: [M, T] validation predictions.
            std: [M, T] validation standard deviations (> 0 where labelled).
            target: [M, T] validation labels, NaN where missing.

        Returns:
            ``self``, fitted.

        Raises:
            ValueError: for mismatched shapes, a std <= 0 or a non-finite pred/std where a
                label is present.
        """
        p, s, y = _as_2d(pred, "pred"), _as_2d(std, "std"), _as_2d(target, "target")
        _check_same_shape(pred=p, std=s, target=y)
        keep = _labelled(y, ("pred", p), ("std", s))
        _check_std(np.where(keep, s, np.nan), strict=True)
        scale = np.ones(p.shape[1])
        for t in range(p.shape[1]):
            k = keep[:, t]
            if not k.any():
                warnings.warn(
                    f"target {t} has no validation label; its z-scale stays 1", stacklevel=2
                )
                continue
            scale[t] = np.sqrt(np.mean(((p[k, t] - y[k, t]) / s[k, t]) ** 2))
        self.scale_ = scale
        return self

    def apply(self, std: ArrayLike) -> np.ndarray:
        """``std * scale_`` per target; same shape as ``std`` ([M, T], or [M] for one target)."""
        if self.scale_ is None:
            raise NotFittedError("ZScaling is not fitted; call fit first")
        s = _as_2d(std, "std")
        _check_std(s)
        _check_targets(s, self.scale_.size, "std")
        return _reshape_like(s * self.scale_, std)

    def to_dict(self) -> dict:
        """``{"kind": "z_scaling", "scale": [T floats]}``, JSON-serializable."""
        if self.scale_ is None:
            raise NotFittedError("ZScaling is not fitted; call fit first")
        return {"kind": "z_scaling", "scale": [float(v) for v in self.scale_]}

    @classmethod
    def from_dict(cls, data: dict) -> ZScaling:
        """The fitted scaling that :meth:`to_dict` wrote."""
        _check_kind(data, "z_scaling")
        obj = cls()
        obj.scale_ = np.asarray(data["scale"], dtype=np.float64)
        return obj

    def __repr__(self) -> str:
        scale = None if self.scale_ is None else np.round(self.scale_, 4).tolist()
        return f"ZScaling(scale_={scale})"


class ConformalRegressor:
    r"""Split conformal intervals per target, normalized by the predicted std if given.

    Fitting stores the sorted nonconformity scores of the calibration (validation) set,
    :math:`r = |\hat y - y| / \sigma` when ``std`` is given, else :math:`r = |\hat y - y|`.
    Because the scores themselves are kept (not one quantile), any coverage can be served
    at predict time. For coverage :math:`c` and :math:`n` scores, the half-width is the
    :math:`k`-th smallest score with :math:`k = \lceil (n + 1) c \rceil`, which guarantees
    coverage >= c on exchangeable data (Lei et al. 2018, https://arxiv.org/abs/1604.04173).
    The interval is :math:`\hat y \pm q\,\sigma` (normalized) or :math:`\hat y \pm q`.

    When :math:`k > n` (fewer than :math:`c / (1 - c)` scores, e.g. 9 for 90 %) no finite
    interval has the guarantee: the interval is infinite and a warning says so.

    With ``regularized=True`` the scores divide by :math:`\sigma + \beta`, where
    :math:`\beta` is the median calibration std of the target (Papadopoulos et al. 2008's
    normalized score with its sensitivity parameter set from the data): intervals still
    widen with the std, but a std that is too small on a shifted molecule cannot shrink the
    interval to nothing. The guarantee is the same; only the shape changes.

    Args:
        coverage: the default nominal coverage, in (0, 1), default 0.9.
        regularized: offset the std by its calibration median (only with ``std``),
            default False.

    Attributes:
        scores_: per target, the sorted [n_t] calibration scores.
        normalized_: whether the scores were divided by the std.
        offset_: [T] the offset added to the std (zeros unless ``regularized``).

    Example:
        >>> cp = ConformalRegressor(coverage=0.5).fit([0.0, 0.0, 0.0], [1.0, -2.0, 3.0])
        >>> lower, upper = cp.interval([10.0])  # k = ceil(4 * 0.5) = 2nd smallest |error|
        >>> lower.tolist(), upper.tolist()
        ([8.0], [12.0])
    """

    def __init__(self, coverage: float = 0.9, regularized: bool = False) -> None:
        self.coverage = _check_coverage(coverage)
        self.regularized = bool(regularized)
        self.scores_: list[np.ndarray] | None = None
        self.normalized_: bool | None = None
        self.offset_: np.ndarray | None = None

    def fit(
        self, pred: ArrayLike, target: ArrayLike, std: ArrayLike | None = None
    ) -> ConformalRegressor:
        """Store the calibration scores.

        Args:
            pred: [M, T] calibration (validation) predictions.
            target: [M, T] calibration labels, NaN where missing.
            std: [M, T] predicted standard deviations (> 0 where labelled), default None
                (absolute residuals, one width for every molecule).

        Returns:
            ``self``, fitted; warns if a target has too few scores for ``coverage``.

        Raises:
            ValueError: for mismatched shapes, a std <= 0 or a non-finite pred/std where a
                label is present.
        """
        p, y = _as_2d(pred, "pred"), _as_2d(target, "target")
        if std is None:
            _check_same_shape(pred=p, target=y)
            keep = _labelled(y, ("pred", p))
            s = np.ones_like(p)
        else:
            s = _as_2d(std, "std")
            _check_same_shape(pred=p, std=s, target=y)
            keep = _labelled(y, ("pred", p), ("std", s))
            _check_std(np.where(keep, s, np.nan), strict=True)
        offset = np.zeros(p.shape[1])
        if self.regularized and std is not None:
            offset = np.array([np.median(s[keep[:, t], t]) if keep[:, t].any() else 0.0
                               for t in range(p.shape[1])])  # fmt: skip
            s = s + offset
        self.offset_ = offset
        self.scores_ = [
            np.sort(np.abs(p[keep[:, t], t] - y[keep[:, t], t]) / s[keep[:, t], t])
            for t in range(p.shape[1])
        ]
        self.normalized_ = std is not None
        self.quantiles()  # warn now if the calibration set is too small
        return self

    def quantiles(self, coverage: float | None = None) -> np.ndarray:
        """[T] half-widths in score units (inf where there are too few scores, with a warning).

        Args:
            coverage: nominal coverage in (0, 1), default None (the fitted ``coverage``).
        """
        scores = self._fitted()
        c = self.coverage if coverage is None else _check_coverage(coverage)
        q = np.empty(len(scores))
        for t, r in enumerate(scores):
            n = r.size
            k = math.ceil((n + 1) * c - 1e-9)  # the tolerance absorbs float error in (n+1)c
            if k > n:
                need = math.ceil(c / (1 - c) - 1e-9)
                warnings.warn(
                    f"target {t}: {n} calibration scores are too few for coverage {c:g} "
                    f"(needs at least {need}); its interval is infinite",
                    stacklevel=2,
                )
                q[t] = np.inf
            else:
                q[t] = r[max(k, 1) - 1]
        return q

    def interval(
        self, pred: ArrayLike, std: ArrayLike | None = None, coverage: float | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """``(lower, upper)`` around ``pred``, same shape as ``pred``.

        Args:
            pred: [M, T] predictions.
            std: [M, T] standard deviations (>= 0); required if and only if the regressor
                was fitted with std. Default None.
            coverage: nominal coverage in (0, 1), default None (the fitted ``coverage``).

        Raises:
            ValueError: for coverage outside (0, 1), std given or missing against the fit,
                negative std, or a different number of targets than fitted.
        """
        q = self.quantiles(coverage)
        p = _as_2d(pred, "pred")
        _check_targets(p, q.size, "pred")
        if self.normalized_:
            if std is None:
                raise ValueError("this regressor was fitted with std (normalized scores); pass std")
            s = _as_2d(std, "std")
            _check_same_shape(pred=p, std=s)
            _check_std(s)
            s = s + self.offset_
            with np.errstate(invalid="ignore"):  # inf * 0 for an unbounded, zero-std entry
                half = np.where(np.isinf(q), np.inf, q * s)
        else:
            if std is not None:
                raise ValueError(
                    "this regressor was fitted without std (absolute scores); drop std"
                )
            half = np.broadcast_to(q, p.shape)
        return _reshape_like(p - half, pred), _reshape_like(p + half, pred)

    def _fitted(self) -> list[np.ndarray]:
        if self.scores_ is None:
            raise NotFittedError("ConformalRegressor is not fitted; call fit first")
        return self.scores_

    def to_dict(self) -> dict:
        """``{"kind", "coverage", "normalized", "offset", "scores": [[n_t floats] per target]}``."""
        scores = self._fitted()
        return {
            "kind": "conformal_regressor",
            "coverage": self.coverage,
            "normalized": bool(self.normalized_),
            "offset": [float(v) for v in self.offset_],
            "scores": [[float(v) for v in r] for r in scores],
        }

    @classmethod
    def from_dict(cls, data: dict) -> ConformalRegressor:
        """The fitted regressor that :meth:`to_dict` wrote."""
        _check_kind(data, "conformal_regressor")
        offset = np.asarray(data.get("offset", [0.0] * len(data["scores"])), dtype=np.float64)
        obj = cls(coverage=data["coverage"], regularized=bool(offset.any()))
        obj.scores_ = [np.sort(np.asarray(r, dtype=np.float64)) for r in data["scores"]]
        obj.normalized_ = bool(data["normalized"])
        obj.offset_ = offset  # files written before the offset existed: none
        return obj

    def __repr__(self) -> str:
        fitted = (
            ""
            if self.scores_ is None
            else f", normalized_={self.normalized_}, n={[r.size for r in self.scores_]}"
        )
        return f"ConformalRegressor(coverage={self.coverage}{fitted})"


# --- probability calibration ----------------------------------------------------------------


class ProbabilityCalibrator:
    r"""Per-task recalibration of predicted probabilities, fitted on the validation set.

    - ``"platt"``: logistic regression of the label on :math:`\mathrm{logit}(p)` (Platt
      1999; scikit-learn ``LogisticRegression``, C = 1e4, i.e. practically unpenalized);
      monotone, two numbers per task.
    - ``"isotonic"``: scikit-learn ``IsotonicRegression(out_of_bounds="clip")``, applied by
      linear interpolation between its thresholds (``np.interp``, which clips the same
      way); flexible, needs more validation labels.

    A task whose validation labels hold a single class (or none) cannot be calibrated: it
    stays the identity, with a warning. Missing labels (NaN) are masked per task.

    Args:
        method: ``"platt"`` or ``"isotonic"``, default ``"platt"``.

    Attributes:
        params_: per task, ``None`` (identity), ``{"coef", "intercept"}`` (Platt) or
            ``{"x", "y"}`` (isotonic thresholds), all floats.

    Example:
        >>> cal = ProbabilityCalibrator("isotonic").fit([0.2, 0.4, 0.6, 0.8], [0.0, 0.0, 1.0, 1.0])
        >>> cal.apply([0.3, 0.9]).tolist()
        [0.0, 1.0]
    """

    METHODS = ("platt", "isotonic")

    def __init__(self, method: str = "platt") -> None:
        if method not in self.METHODS:
            raise ValueError(f"method must be one of {self.METHODS}, got {method!r}")
        self.method = method
        self.params_: list[dict[str, Any] | None] | None = None

    def fit(self, prob: ArrayLike, target: ArrayLike) -> ProbabilityCalibrator:
        """Fit one calibration map per task.

        Args:
            prob: [M, T] validation probabilities of class 1.
            target: [M, T] validation labels 0/1, NaN where missing.

        Returns:
            ``self``, fitted.

        Raises:
            ValueError: for mismatched shapes, probabilities outside [0, 1], labels other
                than 0/1, or a NaN probability where a label is present.
        """
        p, y = _as_2d(prob, "prob"), _as_2d(target, "target")
        _check_same_shape(prob=p, target=y)
        _check_probabilities(p, y)
        keep = _labelled(y, ("prob", p))
        params: list[dict[str, Any] | None] = []
        for t in range(p.shape[1]):
            pt, yt = p[keep[:, t], t], y[keep[:, t], t]
            if yt.size == 0 or yt.min() == yt.max():
                warnings.warn(
                    f"task {t} has a single class (or no label) in validation; "
                    "its probabilities are left uncalibrated",
                    stacklevel=2,
                )
                params.append(None)
            elif self.method == "platt":
                x = logit(np.clip(pt, _LOGIT_EPS, 1 - _LOGIT_EPS))[:, None]
                lr = LogisticRegression(C=_PLATT_C).fit(x, yt.astype(int))
                params.append({"coef": float(lr.coef_[0, 0]), "intercept": float(lr.intercept_[0])})
            else:
                iso = IsotonicRegression(out_of_bounds="clip", y_min=0.0, y_max=1.0).fit(pt, yt)
                params.append(
                    {
                        "x": [float(v) for v in iso.X_thresholds_],
                        "y": [float(v) for v in iso.y_thresholds_],
                    }
                )
        self.params_ = params
        return self

    def apply(self, prob: ArrayLike) -> np.ndarray:
        """Calibrated probabilities, same shape as ``prob`` ([M, T], or [M] for one task)."""
        if self.params_ is None:
            raise NotFittedError("ProbabilityCalibrator is not fitted; call fit first")
        p = _as_2d(prob, "prob")
        _check_targets(p, len(self.params_), "prob")
        _check_probabilities(p, np.zeros(0))
        out = p.copy()
        for t, par in enumerate(self.params_):
            if par is None:
                continue
            if self.method == "platt":
                x = logit(np.clip(p[:, t], _LOGIT_EPS, 1 - _LOGIT_EPS))
                out[:, t] = expit(par["coef"] * x + par["intercept"])
            else:
                out[:, t] = np.interp(p[:, t], par["x"], par["y"])
        return _reshape_like(out, prob)

    def to_dict(self) -> dict:
        """``{"kind": "probability_calibrator", "method", "params": [per task]}``."""
        if self.params_ is None:
            raise NotFittedError("ProbabilityCalibrator is not fitted; call fit first")
        return {"kind": "probability_calibrator", "method": self.method, "params": self.params_}

    @classmethod
    def from_dict(cls, data: dict) -> ProbabilityCalibrator:
        """The fitted calibrator that :meth:`to_dict` wrote."""
        _check_kind(data, "probability_calibrator")
        obj = cls(method=data["method"])
        obj.params_ = [None if par is None else dict(par) for par in data["params"]]
        return obj

    def __repr__(self) -> str:
        tasks = "" if self.params_ is None else f", tasks={len(self.params_)}"
        return f"ProbabilityCalibrator(method={self.method!r}{tasks})"
