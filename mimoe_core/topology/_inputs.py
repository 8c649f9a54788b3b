"""Inputs of the topology functions: the default grid, descriptor names, input checks, distances."""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

#: Default filtration grid in Å: 1.0 to 5.0 in steps of 0.1 (T = 41), float64.
DEFAULT_RADII: np.ndarray = np.round(np.linspace(1.0, 5.0, 41), 10)
DEFAULT_RADII.setflags(write=False)

#: Descriptor names, in the order of the last axis of :func:`descriptor_trajectories`.
DESCRIPTOR_NAMES: tuple[str, ...] = ("betti0", "betti1", "randic", "wiener", "efficiency")


def check_positions(pos: ArrayLike, name: str = "pos") -> np.ndarray:
    """Validate atom coordinates and return them as a float64 array of shape [N, 3].

    Raises:
        ValueError: if ``pos`` is not [N, 3] with N >= 1 or holds NaN or inf.
    """
    arr = np.asarray(pos, dtype=np.float64)
    if arr.ndim != 2 or arr.shape[1] != 3:
        raise ValueError(f"{name} must have shape [num_atoms, 3], got {arr.shape}")
    if arr.shape[0] == 0:
        raise ValueError(f"{name} has no atoms (shape {arr.shape}); at least one is needed")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains NaN or infinite coordinates")
    return arr


def check_radii(radii: ArrayLike) -> np.ndarray:
    """Validate a filtration grid and return it as a 1-D float64 array.

    Raises:
        ValueError: if ``radii`` is empty, not 1-D, not finite, negative or not strictly
            increasing.
    """
    arr = np.asarray(radii, dtype=np.float64)
    if arr.ndim != 1:
        raise ValueError(f"radii must be a 1-D array, got shape {arr.shape}")
    if arr.size == 0:
        raise ValueError("radii is empty; give at least one radius")
    if not np.all(np.isfinite(arr)):
        raise ValueError("radii contains NaN or infinite values")
    if np.any(arr < 0):
        raise ValueError(f"radii must be non-negative, got minimum {arr.min()}")
    if np.any(np.diff(arr) <= 0):
        raise ValueError("radii must be strictly increasing (sorted, without repeats)")
    return arr


def pairwise_distances(pos: ArrayLike) -> np.ndarray:
    """Euclidean distance matrix of a point cloud.

    Args:
        pos: atom coordinates in Å, shape [num_atoms, 3].

    Returns:
        Symmetric float64 array of shape [num_atoms, num_atoms] with an exact zero diagonal.

    Raises:
        ValueError: for a wrong shape, no atoms, or non-finite coordinates.

    Example:
        >>> import numpy as np
        >>> pairwise_distances(np.array([[0.0, 0.0, 0.0], [3.0, 4.0, 0.0]]))
        array([[0., 5.],
               [5., 0.]])
    """
    arr = check_positions(pos)
    diff = arr[:, None, :] - arr[None, :, :]
    dist = np.sqrt(np.einsum("ijk,ijk->ij", diff, diff))
    np.fill_diagonal(dist, 0.0)
    return dist
