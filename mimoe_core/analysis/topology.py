"""Teaching-scale topology of point clouds: Vietoris-Rips simplices and the scale table.

A Vietoris-Rips complex at scale r has a vertex per point, an edge between points at most r
apart (the graph G(r) of :mod:`mimoe_core.topology`) and a triangle on every three points
that are pairwise at most r apart. Points may be 2D (a drawing on paper) or 3D (atoms, in
Å). Torch-free; :mod:`mimoe_viz.teaching` draws these numbers.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike

from mimoe_core.analysis.routing import expert_labels
from mimoe_core.analysis.validation import as_3d, check_cutoffs, check_points, check_radius
from mimoe_core.constants import DEFAULT_CUTOFFS
from mimoe_core.topology import pairwise_distances

__all__ = ["connection_radius", "rips_simplices", "scale_table"]


def rips_simplices(points: ArrayLike, radius: float) -> dict[str, np.ndarray]:
    """The edges and triangles of the Vietoris-Rips complex at scale ``radius``.

    An edge joins two points at distance <= radius (closed, as G(r) in
    :mod:`mimoe_core.topology`); a triangle spans three points that are pairwise joined.

    Args:
        points: [n, 2] or [n, 3] coordinates (Å for atoms).
        radius: the scale r, finite and >= 0.

    Returns:
        Dict with ``edges``: int64 [E, 2] rows (i, j), i < j, sorted; ``triangles``: int64
        [F, 3] rows (i, j, k), i < j < k, sorted.

    Raises:
        ValueError: for points that are not [n, 2] or [n, 3] and finite, or a negative or
            non-finite radius.

    Example:
        >>> tri = [[0.0, 0.0], [1.0, 0.0], [0.5, 0.8]]
        >>> s = rips_simplices(tri, 1.0)
        >>> s["edges"].tolist(), s["triangles"].tolist()
        ([[0, 1], [0, 2], [1, 2]], [[0, 1, 2]])
        >>> len(rips_simplices(tri, 0.95)["triangles"])
        0
    """
    arr = check_points(points)
    r = check_radius(radius)
    adj = pairwise_distances(as_3d(arr)) <= r
    np.fill_diagonal(adj, False)
    i, j = np.nonzero(np.triu(adj, k=1))
    edges = np.stack([i, j], axis=1).astype(np.int64)
    tris = [(a, b, c) for a, b in edges for c in np.flatnonzero(adj[a] & adj[b]) if c > b]
    triangles = np.array(tris, dtype=np.int64).reshape(-1, 3)
    return {"edges": edges, "triangles": triangles}


def connection_radius(points: ArrayLike) -> float:
    """The smallest r at which G(r) is connected, in the units of ``points`` (Å for atoms).

    This is the longest edge of a minimum spanning tree, which is also the last finite H0
    death of :func:`mimoe_core.topology.persistence_diagram` (0.0 for a single point or for
    points that all coincide).

    Args:
        points: [n, 2] or [n, 3] coordinates.

    Returns:
        The connection radius as a float >= 0.

    Raises:
        ValueError: for points that are not [n, 2] or [n, 3] and finite.

    Example:
        >>> connection_radius([[0.0, 0, 0], [1.5, 0, 0], [4.0, 0, 0]])
        2.5
    """
    return _connection_radius(pairwise_distances(as_3d(check_points(points))))


def _connection_radius(dist: np.ndarray) -> float:
    """The longest edge of a minimum spanning tree of a distance matrix [n, n]."""
    if dist.shape[0] < 2:
        return 0.0
    from scipy.sparse.csgraph import minimum_spanning_tree

    # Coincident atoms (distance 0) would be read as missing edges: shift every weight by 1.
    i, j = minimum_spanning_tree(dist + 1.0 - np.eye(dist.shape[0])).nonzero()
    return float(dist[i, j].max())


def scale_table(
    positions: Mapping[str, ArrayLike], cutoffs: Sequence[float] = DEFAULT_CUTOFFS
) -> pd.DataFrame:
    """Where each molecule's graph G(r) connects and completes, against the expert cutoffs.

    ``connected_at`` is the smallest r at which G(r) is connected (:func:`connection_radius`,
    the last H0 death of the filtration); ``diameter`` is the largest atom-atom distance,
    the r at which G(r) becomes the complete graph. Per expert, the share of atom pairs that
    are edges of G(cutoff): 1.0 means that expert sees every pair at once.

    Args:
        positions: molecule name -> coordinates [n, 3] in Å.
        cutoffs: expert cutoffs in Å; default :data:`~mimoe_core.constants.DEFAULT_CUTOFFS`.

    Returns:
        A DataFrame indexed by name with columns ``atoms``, ``connected_at`` (Å),
        ``diameter`` (Å) and one column per expert, named by
        :func:`~mimoe_core.analysis.routing.expert_labels` (``"E1 · 2 Å"``...), holding the
        share of pairs in [0, 1].

    Raises:
        ValueError: for an empty mapping, invalid coordinates or cutoffs.

    Example:
        >>> line = [[0.0, 0, 0], [1.5, 0, 0], [3.0, 0, 0]]
        >>> scale_table({"line": line}, cutoffs=[2.0, 3.0]).round(3).iloc[0].tolist()
        [3.0, 1.5, 3.0, 0.667, 1.0]
    """
    if not positions:
        raise ValueError("positions must name at least one molecule")
    cuts = check_cutoffs(cutoffs)
    rows = []
    for name, pos in positions.items():
        arr = check_points(pos)
        if arr.shape[1] != 3:
            raise ValueError(f"{name}: positions must be [n, 3] in Å, got {arr.shape}")
        n = arr.shape[0]
        matrix = pairwise_distances(arr)
        dist = matrix[np.triu_indices(n, k=1)]
        row: dict[str, Any] = {
            "atoms": n,
            "connected_at": _connection_radius(matrix),
            "diameter": float(dist.max()) if dist.size else 0.0,
        }
        for label, cut in zip(expert_labels(cuts), cuts, strict=True):
            row[label] = float(np.mean(dist <= cut)) if dist.size else 1.0
        rows.append(row)
    return pd.DataFrame(rows, index=pd.Index(list(positions), name="molecule"))
