"""Checks and statistics shared by the routing and analysis figures (no plotting here)."""

from __future__ import annotations

import operator
from collections.abc import Iterator

import numpy as np

from mimoe_core.results import PredictionResult


def check_result(result: PredictionResult) -> tuple[np.ndarray, np.ndarray]:
    """``(alpha [M, K] float, cutoffs [K])`` after checking that the shapes agree."""
    if not isinstance(result, PredictionResult):
        raise ValueError(f"expected a PredictionResult, got {type(result).__name__}")
    alpha = np.asarray(result.alpha, dtype=np.float64)
    cutoffs = np.asarray(result.cutoffs, dtype=np.float64)
    num = len(result)
    if alpha.shape != (num, len(cutoffs)):
        raise ValueError(
            f"result.alpha has shape {alpha.shape}, expected [M, K] = ({num}, {len(cutoffs)}) "
            "from its ids and cutoffs"
        )
    if len(result.status) != num:
        raise ValueError(f"result.status has {len(result.status)} entries, expected {num}")
    return alpha, cutoffs


def check_index(result: PredictionResult, index: int) -> int:
    """``index`` as an int, if it is in range and names an ``ok`` entry."""
    try:
        i = operator.index(index)
    except TypeError:
        raise ValueError(f"index must be an integer, got {index!r}") from None
    if not 0 <= i < len(result):
        raise ValueError(f"index {i} is out of range for a result of {len(result)} entries")
    if result.status[i] != "ok":
        raise ValueError(f"entry {i} ({result.ids[i]}) was skipped: {result.reason[i]}")
    return i


def ok_indices(result: PredictionResult) -> np.ndarray:
    ok = np.flatnonzero(result.ok)
    if ok.size == 0:
        raise ValueError("the result has no 'ok' entries to plot (all were skipped)")
    return ok


def atom_counts(result: PredictionResult, what: str) -> np.ndarray:
    """[M] atom counts; ValueError if the result kept no structures."""
    if not result.atomic_numbers:
        raise ValueError(f"{what} needs atom counts, but this result kept no 3D structures")
    return result.num_atoms


def target_index(result: PredictionResult, target: int | str) -> int:
    if isinstance(target, str):
        if target not in result.targets:
            raise ValueError(f"unknown target {target!r}; the result has {result.targets}")
        return result.targets.index(target)
    t = operator.index(target)
    if not 0 <= t < len(result.targets):
        raise ValueError(f"target {t} is out of range for {len(result.targets)} targets")
    return t


def entry_title(result: PredictionResult, i: int) -> str:
    name, smiles = result.ids[i], result.smiles[i]
    return name if not smiles or smiles == name else f"{name} · {smiles}"


def hover_entry(result: PredictionResult, i: int) -> str:
    size = f"{result.num_atoms[i]} atoms" if result.atomic_numbers else "size unknown"
    return f"{result.ids[i]}<br>{result.smiles[i]}<br>{size}"


def colored_ticks(labels: list[str], colors: list[str]) -> list[str]:
    return [f'<span style="color:{c}">{lab}</span>' for lab, c in zip(labels, colors, strict=True)]


def spearman(x: np.ndarray, y: np.ndarray) -> float:
    """Spearman rank correlation (average ranks for ties); NaN if undefined."""
    import pandas as pd

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


def dominant_groups(dominant: np.ndarray, num_experts: int) -> Iterator[tuple[int, np.ndarray]]:
    """``(e, mask)`` for every expert e dominant for at least one entry, in expert order.

    Figures draw one trace per such expert, so an expert that never dominates gets none.
    """
    for e in range(num_experts):
        mask = dominant == e
        if mask.any():
            yield e, mask
