"""Vietoris-Rips persistence (GUDHI) and Betti curves on a filtration grid."""

from __future__ import annotations

from collections.abc import Sequence

import gudhi
import numpy as np
from numpy.typing import ArrayLike

from mimoe_core.topology._inputs import check_radii, pairwise_distances


def _rips_intervals(
    dist: np.ndarray, max_edge_length: float, with_h2: bool = False
) -> list[np.ndarray]:
    """Persistence intervals [birth, death] per dimension 0, 1, 2 of a Rips complex.

    ``dist`` is a validated [N, N] distance matrix with a zero diagonal. The complex is
    GUDHI's ``RipsComplex(distance_matrix=dist, max_edge_length=...)`` expanded to dimension 2, with
    GUDHI's default coefficient field Z/11Z. H2 is only computed when ``with_h2`` (it costs
    a reduction of the triangles). GUDHI reports nothing for a one-vertex complex, so that
    case gets its single essential H0 bar [0, inf) here.
    """
    if dist.shape[0] == 1:
        return [np.array([[0.0, np.inf]]), np.empty((0, 2)), np.empty((0, 2))]
    # Same complex as RipsComplex(distance_matrix=dist, max_edge_length=...) expanded to
    # dimension 2 (edges with d <= max_edge_length, vertices at 0), built without its
    # Python-side copy of the matrix.
    tree = gudhi.SimplexTree.create_from_array(dist, max_filtration=max_edge_length)
    tree.expansion(2)
    # GUDHI skips the top dimension unless persistence_dim_max: without triangles that would
    # drop H1 (and without edges H0), so the top dimension is kept whenever it is <= 1.
    tree.compute_persistence(persistence_dim_max=with_h2 or tree.dimension() < 2)
    out = []
    for dim in range(3):
        iv = np.asarray(tree.persistence_intervals_in_dimension(dim), dtype=np.float64)
        out.append(iv.reshape(-1, 2))
    return out


def _count_alive(intervals: np.ndarray, radii: np.ndarray) -> np.ndarray:
    """Number of intervals [b, d) with b <= r < d, for each r in ``radii`` -> [T]."""
    births = np.sort(intervals[:, 0])
    deaths = np.sort(intervals[:, 1])
    born = np.searchsorted(births, radii, side="right")
    dead = np.searchsorted(deaths, radii, side="right")
    return (born - dead).astype(np.float64)


def persistence_diagram(pos: ArrayLike, max_edge_length: float | None = None) -> np.ndarray:
    """Persistence diagram of the Vietoris-Rips filtration of a point cloud.

    The filtration is GUDHI's Rips complex on the Euclidean distance matrix, expanded to
    triangles (``max_dimension=2``), with coefficients in Z/11Z (GUDHI's default). An edge
    (i, j) enters at its length d_ij and a triangle at its longest edge. Zero-length
    intervals are not reported.

    Args:
        pos: atom coordinates in Å, shape [num_atoms, 3].
        max_edge_length: longest edge in Å kept in the complex (closed: an edge of exactly
            this length is kept). ``None`` (default) keeps every edge.

    Returns:
        Array of shape [n_pairs, 3] with rows (birth, death, dim), dim in {0, 1, 2}, sorted
        by dim then birth then death; ``death = inf`` for essential classes. A single atom
        gives one row (0, inf, 0). H2 classes are those of the 2-skeleton: with no
        tetrahedra, a closed surface of triangles is an essential H2 class.

    Raises:
        ValueError: for invalid ``pos`` or a negative or non-finite ``max_edge_length``.

    Example:
        >>> import numpy as np
        >>> square = np.array([[0.0, 0, 0], [1, 0, 0], [1, 1, 0], [0, 1, 0]])
        >>> dgm = persistence_diagram(square)
        >>> dgm[dgm[:, 2] == 1]  # one loop born at 1 Å, filled at sqrt(2) Å
        array([[1.        , 1.41421356, 1.        ]])
    """
    dist = pairwise_distances(pos)
    if max_edge_length is None:
        max_edge_length = np.inf
    elif not (np.isfinite(max_edge_length) and max_edge_length >= 0):
        raise ValueError(f"max_edge_length must be finite and >= 0, got {max_edge_length}")
    rows = []
    for dim, iv in enumerate(_rips_intervals(dist, float(max_edge_length), with_h2=True)):
        block = np.empty((len(iv), 3))
        block[:, :2] = iv
        block[:, 2] = dim
        rows.append(block[np.lexsort((block[:, 1], block[:, 0]))])
    return np.concatenate(rows, axis=0)


def betti_curves(
    diagram: ArrayLike, radii: ArrayLike, homology_dimensions: Sequence[int] = (0, 1)
) -> np.ndarray:
    """Betti numbers on a grid from a persistence diagram.

    ``betti_k(r)`` counts the intervals of dimension k with ``birth <= r < death``: the
    complex at scale r contains every simplex whose filtration value is <= r.

    Args:
        diagram: array of shape [n_pairs, 3] with rows (birth, death, dim), as returned by
            :func:`persistence_diagram`.
        radii: filtration grid in Å, shape [T], non-negative and strictly increasing.
        homology_dimensions: dimensions to count, default (0, 1).

    Returns:
        float64 array of shape [len(homology_dimensions), T].

    Example:
        >>> import numpy as np
        >>> diagram = np.array([[0.0, np.inf, 0], [0.0, 1.0, 0], [1.0, 1.5, 1]])
        >>> betti_curves(diagram, [0.5, 1.0, 1.2, 2.0])
        array([[2., 1., 1., 1.],
               [0., 1., 1., 0.]])
    """
    grid = check_radii(radii)
    dgm = np.asarray(diagram, dtype=np.float64).reshape(-1, 3)
    return np.stack([_count_alive(dgm[dgm[:, 2] == d, :2], grid) for d in homology_dimensions])


def betti_from_distances(dist: np.ndarray, radii: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Betti-0 and Betti-1 curves [T] of the Rips complex for a validated distance matrix.

    Only edges up to ``radii[-1]`` are built: larger ones cannot change the homology at any
    grid radius.
    """
    iv0, iv1, _ = _rips_intervals(dist, float(radii[-1]))
    return _count_alive(iv0, radii), _count_alive(iv1, radii)
