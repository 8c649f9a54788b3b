"""Input checks shared by the analysis functions and the figures (gtda ``utils/validation``).

Radii, cutoffs and single radii in Å, point clouds, and a :class:`PredictionResult`'s
routing arrays, entry indices and target indices. Every check raises ValueError with a
reason (TypeError for a target that is not an integer or a name).
"""

from __future__ import annotations

import operator
from collections.abc import Sequence

import numpy as np
from numpy.typing import ArrayLike

from mimoe_core.results import PredictionResult
from mimoe_core.topology._inputs import check_radii


def check_grid(radii: ArrayLike) -> np.ndarray:
    """A filtration grid [T]: non-empty, finite, >= 0 and strictly increasing (ValueError)."""
    return check_radii(radii)


def check_radius(radius: float, name: str = "radius") -> float:
    """One finite, non-negative distance in Å (ValueError naming ``name`` otherwise)."""
    value = float(radius)
    if not np.isfinite(value) or value < 0:
        raise ValueError(f"{name} must be a finite non-negative distance in Å, got {radius}")
    return value


def check_cutoffs(
    cutoffs: Sequence[float] | ArrayLike | None, allow_empty: bool = True
) -> np.ndarray:
    """Expert cutoffs [K] in Å: finite, > 0 and strictly increasing (ValueError).

    ``None`` or an empty sequence is allowed (no cutoffs to mark) unless ``allow_empty`` is
    False.
    """
    cuts = np.asarray([] if cutoffs is None else cutoffs, dtype=np.float64).reshape(-1)
    if cuts.size == 0 and not allow_empty:
        raise ValueError("cutoffs must be a non-empty 1-D sequence of distances in Å")
    if not np.all(np.isfinite(cuts)) or np.any(cuts <= 0):
        raise ValueError(f"cutoffs must be finite and > 0 (Å), got {cuts.tolist()}")
    if np.any(np.diff(cuts) <= 0):
        raise ValueError(f"cutoffs must be strictly increasing, got {cuts.tolist()}")
    return cuts


def check_points(points: ArrayLike) -> np.ndarray:
    """[n, 2] or [n, 3] finite float64 points, n >= 1."""
    arr = np.asarray(points, dtype=np.float64)
    if arr.ndim != 2 or arr.shape[1] not in (2, 3) or arr.shape[0] == 0:
        raise ValueError(f"points must have shape [n, 2] or [n, 3] with n >= 1, got {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError("points contain NaN or infinite coordinates")
    return arr


def as_3d(points: np.ndarray) -> np.ndarray:
    """2D points get z = 0, so the topology functions (which take [n, 3]) accept them."""
    if points.shape[1] == 3:
        return points
    return np.hstack([points, np.zeros((points.shape[0], 1))])


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
    """Indices of the ``ok`` entries; ValueError if there are none."""
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
    """The column of ``target`` in ``result.targets``: a name, or an index in ``0..T-1``.

    Negative indices are rejected (no Python-style counting from the end), so a typo such
    as ``-1`` for "the first" fails loudly instead of picking the last target.

    Raises:
        ValueError: for an unknown name or an index outside ``0..T-1``.
        TypeError: for a target that is neither a name nor an integer.
    """
    if isinstance(target, str):
        if target not in result.targets:
            raise ValueError(f"unknown target {target!r}; the result has {result.targets}")
        return result.targets.index(target)
    t = operator.index(target)
    if not 0 <= t < len(result.targets):
        raise ValueError(f"target {t} is out of range for {len(result.targets)} targets")
    return t
