"""Input checks shared by the figure modules: radii, cutoffs and a single radius in Å."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import ArrayLike

from mimoe_core.topology._filtration import check_radii


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
