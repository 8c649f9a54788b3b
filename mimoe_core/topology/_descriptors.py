"""Descriptor curves of the dense filtration: Betti numbers and graph indices per radius."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import ArrayLike, DTypeLike

from mimoe_core.topology._indices import graph_indices
from mimoe_core.topology._inputs import (
    DEFAULT_RADII,
    DESCRIPTOR_NAMES,
    check_positions,
    check_radii,
    pairwise_distances,
)
from mimoe_core.topology._normalize import normalize as _normalize
from mimoe_core.topology._persistence import betti_from_distances


def descriptor_curves(
    pos: ArrayLike, radii: ArrayLike = DEFAULT_RADII, normalize: bool = False
) -> dict[str, np.ndarray]:
    r"""Five topological descriptors of G(r) at every radius of a grid.

    G(r) has an edge between atoms i != j with distance d_ij <= r (closed: a distance equal
    to r is an edge). With n atoms and E(r) edges:

    - ``betti0``, ``betti1``: Betti numbers of the Vietoris-Rips complex at scale r, equal
      to GUDHI's ``RipsComplex(distance_matrix=D).create_simplex_tree(max_dimension=2)``
      persistence over Z/11Z, counting intervals with birth <= r < death. Betti-1 counts the
      1-cycles of G(r) not filled by triangles. One atom gives betti0 = 1 (GUDHI itself
      reports no interval for a one-vertex complex).
    - ``randic``: :math:`R = \sum_{(u,v) \in E} (d_u d_v)^{-1/2}`; isolated atoms add 0.
    - ``wiener``: :math:`W = \sum_{c} \sum_{\{u,v\} \subseteq c} \mathrm{hop}(u, v)` over the
      connected components c (the sum of ``networkx.wiener_index`` over components).
    - ``efficiency``: :math:`E_g = \frac{1}{n(n-1)} \sum_{u \ne v} 1/\mathrm{hop}(u, v)`,
      0 for disconnected pairs and for n < 2 (``networkx.global_efficiency``).

    With ``normalize=True`` each curve is mapped into [0, 1] for every graph:

    .. math::

        b_0 = \beta_0 / n, \qquad
        b_1 = \beta_1 / \max(1,\ E - n + \beta_0), \qquad
        R_n = R / (n / 2), \qquad E_g \text{ unchanged},

        W_n = \frac{\sum_{c:\,m_c \ge 3} P_c\, w_c}{\sum_{c:\,m_c \ge 2} P_c}, \quad
        w_c = \frac{W_c - P_c}{(m_c^3 - m_c)/6 - P_c}, \quad P_c = \frac{m_c(m_c - 1)}{2},

    with :math:`W_n = 0` when no component has two atoms. Bounds: E - n + beta_0 is the
    cycle rank dim Z_1 of G(r) and beta_1 = dim Z_1 - rank(boundary_2) <= dim Z_1, so b_1 is
    the fraction of independent graph cycles that triangles leave unfilled (beta_1 / n is
    not bounded by 1 in general, hence this form). For Randić, AM-GM gives
    (d_u d_v)^{-1/2} <= (1/d_u + 1/d_v) / 2, and summing over edges gives R <= (number of
    non-isolated atoms) / 2 <= n / 2. A connected component of m atoms has
    P_c <= W_c <= (m^3 - m)/6 (complete graph, path), so w_c is in [0, 1]: 0 for a complete
    component, 1 for a path. Components of <= 2 atoms count with w_c = 0 and weight P_c.

    Args:
        pos: atom coordinates in Å, shape [num_atoms, 3].
        radii: filtration grid in Å, shape [T], non-negative and strictly increasing;
            default :data:`DEFAULT_RADII` (1.0 to 5.0 by 0.1).
        normalize: return the normalized forms above instead of the raw values; default
            False.

    Returns:
        Dict keyed by :data:`DESCRIPTOR_NAMES`, each a float64 array of shape [T].

    Raises:
        ValueError: for coordinates that are not [N, 3] with N >= 1 and finite, or radii
            that are empty, negative, non-finite or not strictly increasing.

    Example:
        >>> import numpy as np
        >>> water = np.array([[0.0, 0.0, 0.0], [0.9572, 0.0, 0.0], [-0.2400, 0.9266, 0.0]])
        >>> curves = descriptor_curves(water, radii=[0.5, 1.0, 2.0])
        >>> curves["betti0"], curves["wiener"], curves["efficiency"]
        (array([3., 1., 1.]), array([0., 4., 3.]), array([0.        , 0.83333333, 1.        ]))
    """
    traj = descriptor_trajectories([pos], radii, normalize=normalize, dtype=np.float64)
    return {name: traj[0, :, d] for d, name in enumerate(DESCRIPTOR_NAMES)}


def descriptor_trajectories(
    positions: Sequence[ArrayLike],
    radii: ArrayLike = DEFAULT_RADII,
    normalize: bool = True,
    progress: bool = False,
    dtype: DTypeLike = np.float32,
) -> np.ndarray:
    """Descriptor curves for a whole data set, the gate's input.

    The batched form of :func:`descriptor_curves`: the graph indices of all molecules and
    radii are computed together (see ``_indices``), Betti numbers by one GUDHI Rips complex
    per molecule truncated at ``radii[-1]``.

    Args:
        positions: B coordinate arrays, each [n_b, 3] in Å.
        radii: filtration grid in Å, shape [T]; default :data:`DEFAULT_RADII`.
        normalize: normalized forms in [0, 1] (default True), as in :func:`descriptor_curves`.
        progress: show a tqdm progress bar over molecules; default False.
        dtype: output dtype, default float32 (raw values are integers or sums that float32
            holds to ~1e-7 relative precision; pass float64 for exact comparisons).

    Returns:
        Array of shape [B, T, D], D = len(DESCRIPTOR_NAMES), last axis in
        :data:`DESCRIPTOR_NAMES` order.

    Raises:
        ValueError: as :func:`descriptor_curves`; the message names the molecule index.

    Example:
        >>> import numpy as np
        >>> mols = [np.zeros((1, 3)), np.array([[0.0, 0, 0], [1.5, 0, 0], [3.0, 0, 0]])]
        >>> traj = descriptor_trajectories(mols, radii=[1.0, 2.0, 3.0], normalize=False)
        >>> traj.shape, traj.dtype
        ((2, 3, 5), dtype('float32'))
        >>> traj[1, :, 3]  # Wiener index of the 3-atom chain: none, path, triangle
        array([0., 4., 3.], dtype=float32)
    """
    raw, sizes, idx = _raw_parts(positions, radii, progress)
    num, steps = len(sizes), len(check_radii(radii))
    out = np.zeros((num, steps, len(DESCRIPTOR_NAMES)), dtype=np.float64)
    if num == 0:
        return out.astype(dtype)
    if normalize:
        raw = _normalize(raw, sizes, idx["n_edges"], idx["wiener_norm"])
    for d, name in enumerate(DESCRIPTOR_NAMES):
        out[:, :, d] = raw[name]
    return out.astype(dtype)


def _raw_parts(positions, radii, progress: bool = False) -> tuple[dict, np.ndarray, dict]:
    """Raw curves [B, T] by name, atom counts [B] and the graph indices of a batch."""
    grid = check_radii(radii)
    dists = []
    for b, pos in enumerate(positions):
        try:
            dists.append(pairwise_distances(check_positions(pos, name=f"positions[{b}]")))
        except ValueError as err:
            raise ValueError(f"molecule {b}: {err}") from None
    num, steps = len(dists), len(grid)
    sizes = np.array([d.shape[0] for d in dists], dtype=np.int64)
    if num == 0:
        return {}, sizes, {}
    betti0 = np.zeros((num, steps))
    betti1 = np.zeros((num, steps))
    iterator = range(num)
    if progress:
        from tqdm.auto import tqdm

        iterator = tqdm(iterator, desc="Rips persistence", unit="mol")
    for b in iterator:
        betti0[b], betti1[b] = betti_from_distances(dists[b], grid)
    idx = graph_indices(dists, grid)
    raw = {
        "betti0": betti0,
        "betti1": betti1,
        "randic": idx["randic"],
        "wiener": idx["wiener"],
        "efficiency": idx["efficiency"],
    }
    return raw, sizes, idx
