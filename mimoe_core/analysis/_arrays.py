"""Input checks shared by the uncertainty metrics and the calibrators (private).

Used by :mod:`~mimoe_core.analysis.uncertainty` and :mod:`~mimoe_core.analysis.calibrators`:
every array is float64 ``[M, T]`` (a 1-D array counts as one target) with NaN in ``target``
for a missing label. Torch-free (numpy only).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike


def _as_2d(x: ArrayLike, name: str) -> np.ndarray:
    """float64 ``[M, T]``; a 1-D array becomes one target ``[M, 1]``."""
    arr = np.asarray(x, dtype=np.float64)
    if arr.ndim == 1:
        arr = arr[:, None]
    if arr.ndim != 2:
        raise ValueError(f"{name} must have shape [M, T] (or [M]), got {arr.shape}")
    return arr


def _check_same_shape(**arrays: np.ndarray) -> None:
    shapes = {name: a.shape for name, a in arrays.items()}
    if len(set(shapes.values())) > 1:
        listed = ", ".join(f"{name} {shape}" for name, shape in shapes.items())
        raise ValueError(f"shape mismatch: {listed}")


def _check_std(std: np.ndarray, strict: bool = False) -> None:
    """``std`` >= 0 (``strict``: > 0) wherever it is not NaN."""
    finite = std[~np.isnan(std)]
    if finite.size and (finite.min() <= 0 if strict else finite.min() < 0):
        bound = "positive" if strict else "non-negative"
        raise ValueError(f"std must be {bound}, got min {finite.min():g}")


def _check_coverage(coverage: float) -> float:
    value = float(coverage)
    if not 0.0 < value < 1.0:
        raise ValueError(f"coverage must be in (0, 1), got {coverage}")
    return value


def _labelled(target: np.ndarray, *others: tuple[str, np.ndarray]) -> np.ndarray:
    """[M, T] mask of present labels; the other arrays must be finite there (ValueError)."""
    keep = ~np.isnan(target)
    for name, arr in others:
        bad = keep & ~np.isfinite(arr)
        if bad.any():
            m, t = np.argwhere(bad)[0]
            raise ValueError(
                f"{name} is not finite where target has a label (row {m}, target {t}); "
                "drop skipped rows or set their target to NaN"
            )
    return keep


def _check_n_bins(n_bins: int) -> int:
    if int(n_bins) != n_bins or n_bins < 1:
        raise ValueError(f"n_bins must be a positive integer, got {n_bins}")
    return int(n_bins)


def _check_probabilities(prob: np.ndarray, target: np.ndarray) -> None:
    finite = prob[~np.isnan(prob)]
    if finite.size and (finite.min() < 0 or finite.max() > 1):
        raise ValueError(
            f"prob must be probabilities in [0, 1], got range [{finite.min():g}, {finite.max():g}]"
        )
    labels = target[~np.isnan(target)]
    if not np.isin(labels, (0.0, 1.0)).all():
        raise ValueError("target must hold 0/1 labels (NaN where missing)")


def _reshape_like(out: np.ndarray, like: ArrayLike) -> np.ndarray:
    """``out`` [M, T] back to 1-D when the caller passed one target as a 1-D array."""
    return out[:, 0] if np.ndim(like) == 1 else out
