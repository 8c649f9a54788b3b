r"""Routing analysis over a :class:`~mimoe_core.results.PredictionResult`: the numbers only.

Which expert the gate chose and how strongly: the expected (alpha-weighted) cutoff
:math:`\sum_e \alpha_e c_e`, the dominant expert (largest alpha, ties to the lower index),
expert usage, the display order of a routing map, the descriptor the gate read at one
radius, per-expert profiles and the disagreement of the selected experts. Torch-free;
:mod:`mimoe_viz` draws these numbers and computes none of them itself.

Example:
    >>> alpha = np.array([[0.7, 0.3, 0.0], [0.0, 0.4, 0.6]])
    >>> expected_cutoff_from_alpha(alpha, [2.0, 3.0, 4.0]).tolist()
    [2.3, 3.6]
    >>> dominant_from_alpha(alpha).tolist()
    [0, 2]
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike

from mimoe_core.analysis.validation import (
    atom_counts,
    check_result,
    ok_indices,
    target_index,
)
from mimoe_core.results import PredictionResult
from mimoe_core.topology import DESCRIPTOR_NAMES

__all__ = [
    "SORT_BY",
    "binned_trend",
    "descriptor_at",
    "descriptor_names",
    "dominant_expert",
    "dominant_from_alpha",
    "expected_cutoff",
    "expected_cutoff_from_alpha",
    "expert_disagreement",
    "expert_labels",
    "expert_profiles",
    "expert_usage",
    "routing_order",
    "selected_predictions",
    "spearman",
    "target_index",
]

#: Orders accepted by :func:`routing_order` (and ``mimoe_viz.routing_map``).
SORT_BY = ("size", "dominant", "input")


def expert_labels(cutoffs: Sequence[float]) -> list[str]:
    """``"E1 · 2 Å"``-style names, one per expert cutoff (table rows, columns and legends).

    Cutoffs show to 0.01 Å (learned cutoffs have many digits).

    Example:
        >>> expert_labels([2.0, 2.5, 3.14159])
        ['E1 · 2 Å', 'E2 · 2.5 Å', 'E3 · 3.14 Å']
    """
    return [f"E{e + 1} · {round(float(c), 2):g} Å" for e, c in enumerate(cutoffs)]


# --------------------------------------------------------------------------- on alpha arrays


def expected_cutoff_from_alpha(alpha: ArrayLike, cutoffs: ArrayLike) -> np.ndarray:
    r"""Routing-weighted cutoff :math:`\sum_e \alpha_e c_e` in Å of every row of ``alpha``.

    Args:
        alpha: [M, K] routing weights (rows sum to 1).
        cutoffs: [K] expert cutoffs in Å.

    Returns:
        float64 array [M] (NaN where a row holds NaN).
    """
    return np.asarray(alpha, dtype=np.float64) @ np.asarray(cutoffs, dtype=np.float64)


def dominant_from_alpha(alpha: ArrayLike) -> np.ndarray:
    """Index of the largest weight of every row of ``alpha`` (ties: the lower index).

    NaN weights count as -1, below every real weight.

    Args:
        alpha: [M, K] routing weights.

    Returns:
        int array [M] with values in 0..K-1.
    """
    return np.argmax(np.nan_to_num(np.asarray(alpha, dtype=np.float64), nan=-1.0), axis=1)


# --------------------------------------------------------------------------- on results


def expected_cutoff(result: PredictionResult) -> np.ndarray:
    r"""Routing-weighted cutoff of every entry, :math:`\sum_e \alpha_e c_e` in Å.

    Because alpha sums to 1, this is the cutoff the gate "means" for the molecule: between
    the smallest and the largest expert cutoff.

    Args:
        result: a prediction result with alpha [M, K] and cutoffs [K] in Å.

    Returns:
        float64 array [M]; NaN for skipped entries.

    Raises:
        ValueError: if alpha is not [M, K] for the result's M entries and K cutoffs.
    """
    alpha, cutoffs = check_result(result)
    out = expected_cutoff_from_alpha(alpha, cutoffs)
    out[~result.ok] = np.nan
    return out


def dominant_expert(result: PredictionResult) -> np.ndarray:
    """Index of the expert with the largest routing weight for every entry.

    Args:
        result: a prediction result with alpha [M, K].

    Returns:
        int array [M] with values in 0..K-1 (ties: the lower index); -1 for skipped entries.

    Raises:
        ValueError: if alpha is not [M, K].
    """
    alpha, _ = check_result(result)
    out = dominant_from_alpha(alpha)
    out[~result.ok] = -1
    return out


def expert_usage(result: PredictionResult) -> tuple[np.ndarray, np.ndarray]:
    """How often and how strongly each expert is used over the ``ok`` entries.

    Args:
        result: a prediction result with alpha [M, K].

    Returns:
        ``(share, mean_alpha)``, each float64 [K]: the fraction of ok molecules with
        alpha_e > 0 (selected by Top-k), and the mean of alpha_e over all ok molecules
        (0 where not selected), so ``mean_alpha`` sums to 1.

    Raises:
        ValueError: if alpha is not [M, K] or no entry is ok.
    """
    alpha, _ = check_result(result)
    ok_alpha = alpha[ok_indices(result)]
    return (ok_alpha > 0).mean(axis=0), ok_alpha.mean(axis=0)


def routing_order(result: PredictionResult, sort_by: str = "size") -> np.ndarray:
    """Indices of the ``ok`` entries in the display order of a routing map.

    Args:
        result: a prediction result.
        sort_by: ``"size"`` (atom count ascending, default), ``"dominant"`` (dominant expert
            ascending, then its weight descending) or ``"input"`` (input order). Ties keep
            the input order.

    Returns:
        int array [num_ok] of indices into the result.

    Raises:
        ValueError: for an unknown ``sort_by``, no ok entry, or ``"size"`` on a result
            that kept no structures.
    """
    if sort_by not in SORT_BY:
        raise ValueError(f"sort_by must be one of {SORT_BY}, got {sort_by!r}")
    alpha, _ = check_result(result)
    ok = ok_indices(result)
    if sort_by == "input":
        return ok
    if sort_by == "size":
        return ok[np.argsort(atom_counts(result, "sort_by='size'")[ok], kind="stable")]
    dom = dominant_expert(result)[ok]
    weight = alpha[ok, dom]
    return ok[np.lexsort((np.arange(ok.size), -weight, dom))]


# --------------------------------------------------------------------------- descriptors


def descriptor_names(result: PredictionResult) -> list[str]:
    """The descriptor names of ``result.topo`` (default :data:`DESCRIPTOR_NAMES`)."""
    return list(result.descriptor_names) or list(DESCRIPTOR_NAMES)


def _middle_cutoff(cutoffs: np.ndarray) -> float:
    """The default radius of the descriptor views: ``sorted(cutoffs)[K // 2]`` in Å."""
    return float(np.sort(cutoffs)[len(cutoffs) // 2])


def _radius_index(result: PredictionResult, radius: float | None) -> int:
    """Grid index nearest to ``radius`` (default: the middle expert cutoff)."""
    _, cutoffs = check_result(result)
    radii = np.asarray(result.radii, dtype=np.float64)
    if radii.size == 0:
        raise ValueError("the result has no filtration grid (radii)")
    if radius is None:
        radius = _middle_cutoff(cutoffs)
    step = float(np.min(np.diff(radii))) if len(radii) > 1 else 0.0
    if not (radii[0] - step / 2 <= radius <= radii[-1] + step / 2):
        raise ValueError(f"radius {radius} Å is outside the grid [{radii[0]:g}, {radii[-1]:g}] Å")
    return int(np.argmin(np.abs(radii - radius)))


def descriptor_at(
    result: PredictionResult, descriptor: str, radius: float | None = None
) -> tuple[np.ndarray, float]:
    """One descriptor of every entry at one radius of the filtration grid (the gate's input).

    Args:
        result: a prediction result with topo [M, T, D].
        descriptor: one of ``result.descriptor_names`` (e.g. ``"wiener"``).
        radius: radius in Å inside the grid; default None: the middle expert cutoff
            (``sorted(cutoffs)[K // 2]``). The nearest grid radius is used.

    Returns:
        ``(values [M], grid radius used in Å)``; NaN for skipped entries.

    Raises:
        ValueError: for an unknown descriptor, a radius outside the grid, or topo that is
            not [M, T, D].
    """
    names = descriptor_names(result)
    if descriptor not in names:
        raise ValueError(f"unknown descriptor {descriptor!r}; the result has {names}")
    topo = np.asarray(result.topo, dtype=np.float64)
    expected = (len(result), len(result.radii), len(names))
    if topo.shape != expected:
        raise ValueError(f"result.topo has shape {topo.shape}, expected [M, T, D] = {expected}")
    t = _radius_index(result, radius)
    values = topo[:, t, names.index(descriptor)].copy()
    values[~result.ok] = np.nan
    return values, float(result.radii[t])


# --------------------------------------------------------------------------- statistics


def spearman(x: np.ndarray, y: np.ndarray) -> float:
    """Spearman rank correlation (average ranks for ties); NaN if undefined.

    Example:
        >>> spearman(np.array([1.0, 2.0, 3.0]), np.array([10.0, 30.0, 20.0]))
        0.5
    """
    if x.size < 3:
        return float("nan")
    rx = pd.Series(x).rank().to_numpy()
    ry = pd.Series(y).rank().to_numpy()
    if rx.std() == 0 or ry.std() == 0:
        return float("nan")
    return float(np.corrcoef(rx, ry)[0, 1])


def binned_trend(x: np.ndarray, y: np.ndarray, max_bins: int = 12) -> tuple[np.ndarray, ...]:
    """Mean of y per value of x (few distinct x) or per equal-count bin: (x_mean, y_mean)."""
    values = np.unique(x)
    if values.size <= max_bins:
        means = np.array([y[x == v].mean() for v in values])
        return values.astype(np.float64), means
    order = np.argsort(x, kind="stable")
    groups = np.array_split(order, max_bins)
    return (
        np.array([x[g].mean() for g in groups]),
        np.array([y[g].mean() for g in groups]),
    )


# --------------------------------------------------------------------------- specialization


def selected_predictions(result: PredictionResult, t: int) -> tuple[np.ndarray, np.ndarray]:
    """(alpha [M, K] with NaN -> 0, expert predictions [M, K] of target t, unselected -> NaN).

    Raises:
        ValueError: if alpha is not [M, K] or expert_predictions is not [M, K, targets].
    """
    alpha, _ = check_result(result)
    alpha = np.nan_to_num(alpha, nan=0.0)
    experts = np.asarray(result.expert_predictions, dtype=np.float64)
    if experts.ndim != 3 or experts.shape[:2] != alpha.shape:
        raise ValueError(
            f"result.expert_predictions has shape {experts.shape}, expected [M, K, targets] "
            f"with [M, K] = {alpha.shape}"
        )
    preds = np.where(alpha > 0, experts[:, :, t], np.nan)
    return alpha, preds


def expert_profiles(
    result: PredictionResult, target: int | str = 0, radius: float | None = None
) -> pd.DataFrame:
    """Which molecules each expert takes: one row per expert.

    A molecule belongs to the expert with its largest routing weight (its dominant expert,
    ties to the lower index). Columns:

    - ``cutoff`` (Å); ``selected``: share of ok molecules that route to the expert at all
      (alpha > 0); ``mean_alpha``: mean weight over all ok molecules (sums to 1);
    - ``dominant``: number of molecules it dominates, and over those molecules:
      ``atoms_mean``, ``atoms_median`` (atoms with H), the mean of each descriptor the gate
      read at ``radius`` (columns named after the descriptors), ``prediction_mean`` and
      ``label_mean`` of ``target`` (NaN where there are no labels or no molecules).

    Args:
        result: a prediction result (atom counts need its structures; without them the
            ``atoms_*`` columns are NaN).
        target: target index or name for the prediction and label means; default 0.
        radius: radius in Å for the descriptor columns; default None: the middle expert
            cutoff.

    Returns:
        A DataFrame indexed by the expert labels (``"E1 · 2 Å"``...); ``attrs["radius"]`` is
        the grid radius of the descriptor columns.

    Raises:
        ValueError: if no entry is ok, or for an unknown target or a radius outside the grid.
    """
    _, cutoffs = check_result(result)
    ok = ok_indices(result)
    t = target_index(result, target)
    share, mean_alpha = expert_usage(result)
    dom = dominant_expert(result)
    sizes = result.num_atoms.astype(np.float64) if result.atomic_numbers else None
    labels = None if result.labels is None else np.asarray(result.labels, dtype=np.float64)[:, t]
    pred = np.asarray(result.prediction, dtype=np.float64)[:, t]
    names = descriptor_names(result)
    columns = {name: descriptor_at(result, name, radius) for name in names}
    rows = []
    for e, cut in enumerate(cutoffs):
        members = ok[dom[ok] == e]
        row: dict[str, Any] = {
            "cutoff": float(cut),
            "selected": float(share[e]),
            "mean_alpha": float(mean_alpha[e]),
            "dominant": int(members.size),
        }
        row["atoms_mean"] = _mean(sizes, members)
        row["atoms_median"] = (
            float(np.median(sizes[members])) if sizes is not None and members.size else np.nan
        )
        for name in names:
            row[name] = _mean(columns[name][0], members)
        row["prediction_mean"] = _mean(pred, members)
        row["label_mean"] = _mean(labels, members)
        rows.append(row)
    frame = pd.DataFrame(rows, index=pd.Index(expert_labels(cutoffs), name="expert"))
    frame.attrs["radius"] = columns[names[0]][1] if names else float("nan")
    return frame


def _mean(values: np.ndarray | None, members: np.ndarray) -> float:
    if values is None or members.size == 0:
        return float("nan")
    chosen = values[members]
    chosen = chosen[np.isfinite(chosen)]
    return float(chosen.mean()) if chosen.size else float("nan")


# --------------------------------------------------------------------------- disagreement


def expert_disagreement(result: PredictionResult, target: int | str = 0) -> pd.DataFrame:
    r"""How far apart the selected experts' predictions are, per ok molecule.

    With :math:`S` the selected experts (alpha > 0), :math:`\hat y_e` their predictions and
    :math:`\bar y = \sum_{e \in S} \alpha_e \hat y_e` the mixture:

    .. math::
        \mathrm{spread} = \max_{e \in S} \hat y_e - \min_{e \in S} \hat y_e, \qquad
        \mathrm{weighted\_std} = \sqrt{\textstyle\sum_{e \in S} \alpha_e (\hat y_e - \bar y)^2}

    (for k = 2, weighted_std = sqrt(α1 α2) · spread). Regression: original units, and
    :math:`\bar y` is the prediction. Classification: logits, the space the head mixes in.

    Args:
        result: a prediction result.
        target: target index or name; default 0.

    Returns:
        One row per ok entry, largest spread first (ties in input order): ``index`` (entry
        index into ``result``), ``id``, ``smiles``, ``atoms`` (0 without structures),
        ``experts`` (selected expert labels), ``k``, ``spread``, ``weighted_std``,
        ``prediction`` (probability for classification), ``label`` and ``abs_error``
        (absolute difference of prediction and label; NaN without a label).

    Raises:
        ValueError: if no entry is ok, for an unknown target, or if expert_predictions is
            not [M, K, targets].
    """
    _, cutoffs = check_result(result)
    ok = ok_indices(result)
    t = target_index(result, target)
    alpha, preds = selected_predictions(result, t)
    names = expert_labels(cutoffs)
    spread = np.zeros(len(result))
    wstd = np.zeros(len(result))
    for m in ok:
        sel = np.flatnonzero(alpha[m] > 0)
        values = preds[m, sel]
        finite = np.isfinite(values)
        if finite.sum() >= 2:
            spread[m] = values[finite].max() - values[finite].min()
            w = alpha[m, sel][finite] / alpha[m, sel][finite].sum()
            mix = float(np.sum(w * values[finite]))
            wstd[m] = float(np.sqrt(np.sum(w * (values[finite] - mix) ** 2)))
    prediction = np.asarray(result.prediction, dtype=np.float64)[:, t]
    labels = (
        np.full(len(result), np.nan)
        if result.labels is None
        else np.asarray(result.labels, dtype=np.float64)[:, t]
    )
    frame = pd.DataFrame(
        {
            "index": ok,
            "id": [result.ids[m] for m in ok],
            "smiles": [result.smiles[m] for m in ok],
            "atoms": result.num_atoms[ok],
            "experts": [", ".join(names[e] for e in np.flatnonzero(alpha[m] > 0)) for m in ok],
            "k": (alpha[ok] > 0).sum(axis=1),
            "spread": spread[ok],
            "weighted_std": wstd[ok],
            "prediction": prediction[ok],
            "label": labels[ok],
            "abs_error": np.abs(prediction[ok] - labels[ok]),
        }
    )
    order = np.lexsort((np.arange(len(frame)), -frame["spread"].to_numpy()))
    return frame.iloc[order].reset_index(drop=True)
