"""Graph indices of G(r) for many molecules and all radii at once (minimax path lengths).

G(r_t) has an edge between atoms i != j with d_ij <= r_t. Instead of one breadth-first
search per radius, every radius is handled together through the *k-hop minimax distance*

    M_k(i, j) = min over walks i -> j of at most k edges of the longest edge on the walk,

in units of grid steps: M_1(i, j) is the first grid index t with d_ij <= r_t (0 on the
diagonal), and M_{k+1} = M_k (min, max) M_1, a matrix product in the (min, max) semiring.
Atom j is within k hops of i in G(r_t) exactly when M_k(i, j) <= t, so the hop distance at
radius index t is the smallest such k. Per-atom counts c_k(i, t) = #{j : M_k(i, j) <= t}
(self included) are cumulative histograms of the rows of M_k, and with K the number of
products until M_k stops changing:

    component size        m(i, t)      = c_K(i, t)
    sum of hop distances  H(i, t)      = K c_K - 1 - sum_{k=1}^{K-1} c_k
    sum of 1 / hop        F(i, t)      = sum_{k=1}^{K} c_k (1/k - 1/(k+1)) + c_K / (K+1) - 1

(telescoping sums over the hop ranges). The Wiener index is sum_i H / 2, the global
efficiency sum_i F / (n(n - 1)). The cost is O(K n^3) per molecule for all T radii, on
small integers, with the molecules on the innermost (contiguous) axis so that each
elementwise step is one long vector operation.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from mimoe_core.topology._normalize import wiener_component_weight

#: Cap on the elements (n_max^2 * max(n_max, T) * C) of the arrays held for a chunk of C
#: molecules; the largest is a float64 [n, T, C] array per accumulator.
_CHUNK_BUDGET = 4_000_000

INDEX_KEYS = ("randic", "wiener", "efficiency", "wiener_norm", "n_edges", "n_components")


def graph_indices(dists: Sequence[np.ndarray], radii: np.ndarray) -> dict[str, np.ndarray]:
    """Randić, Wiener, efficiency and more for G(r_t) of each molecule.

    Args:
        dists: B validated distance matrices, each [n_b, n_b] in Å.
        radii: validated grid, shape [T].

    Returns:
        Dict with keys ``INDEX_KEYS``, each float64 [B, T]: Randić index, Wiener index
        (summed over components), global efficiency, normalized Wiener index (see
        :func:`mimoe_core.topology.descriptor_curves`), number of edges and number of
        connected components.
    """
    num, steps = len(dists), len(radii)
    out = {key: np.zeros((num, steps)) for key in INDEX_KEYS}
    if num == 0:
        return out
    sizes = np.array([d.shape[0] for d in dists])
    order = np.argsort(sizes, kind="stable")  # similar sizes share a chunk: little padding
    start = 0
    while start < num:
        stop = start + 1
        while stop < num:
            n = int(sizes[order[stop]])
            if (stop + 1 - start) * n * n * max(n, steps) > _CHUNK_BUDGET:
                break
            stop += 1
        idx = order[start:stop]
        chunk = _chunk_indices([dists[i] for i in idx], sizes[idx], radii)
        for key in INDEX_KEYS:
            out[key][idx] = chunk[key].T
        start = stop
    return out


def _first_level(dists: list[np.ndarray], sizes: np.ndarray, radii: np.ndarray) -> np.ndarray:
    """M_1 as [n, n, C] small integers: first grid index t with d_ij <= r_t, T if none.

    Padding atoms (beyond a molecule's size) are isolated: level T to everything but
    themselves.
    """
    num, nmax = len(dists), int(sizes.max())
    dist = np.full((num, nmax, nmax), np.inf)
    for c, d in enumerate(dists):
        dist[c, : d.shape[0], : d.shape[0]] = d
    dtype = np.uint8 if len(radii) < 255 else np.uint16
    level = np.searchsorted(radii, dist, side="left").astype(dtype)
    diag = np.arange(nmax)
    level[:, diag, diag] = 0
    return np.ascontiguousarray(level.transpose(1, 2, 0))


def _sum_atoms(x: np.ndarray) -> np.ndarray:
    """Sum [T, n, C] over atoms in atom order -> [T, C].

    A fixed order (padding atoms, all zero, last) makes a molecule's values independent of
    the chunk it is computed in; numpy's own reduction switches to pairwise summation when
    C = 1 and rounds differently.
    """
    out = x[:, 0].copy()
    for i in range(1, x.shape[1]):
        out += x[:, i]
    return out


def _bins(level: np.ndarray, columns: np.ndarray, num: int) -> np.ndarray:
    """Flat histogram bins of the rows of ``level`` [n, n, C'] for chunk molecules ``columns``.

    Bin (value, i, c) is value * n * num + i * num + c, so cumulative sums over values run
    along the outermost axis of the [T + 1, n, num] histogram: one long vector add per step.
    """
    n = level.shape[0]
    offset = np.arange(n)[:, None, None] * num + columns[None, None, :]
    return (level.astype(np.intp) * (n * num) + offset).ravel()


def _row_counts(
    bins: np.ndarray, steps: int, n: int, num: int, weights: np.ndarray | None = None
) -> np.ndarray:
    """(Weighted) c(t, i, c) = #{j : level[i, j, c] <= t} from :func:`_bins`, float64 [T, n, C]."""
    hist = np.bincount(bins, weights=weights, minlength=(steps + 1) * n * num)
    return np.cumsum(hist.reshape(steps + 1, n, num)[:steps], axis=0, dtype=np.float64)


def _minmax_step(walk: np.ndarray, level: np.ndarray) -> np.ndarray:
    """One (min, max) product: min over l of max(walk[i, l], level[l, j]), [n, n, C]."""
    out = walk.copy()
    tmp = np.empty_like(walk)
    for mid in range(walk.shape[0]):
        # walk is symmetric, so walk[:, mid] == walk[mid]: a contiguous row.
        np.maximum(walk[mid][:, None, :], level[mid][None, :, :], out=tmp)
        np.minimum(out, tmp, out=out)
    return out


def _randic(level: np.ndarray, inv_sqrt_deg: np.ndarray) -> np.ndarray:
    """Randić index [T, C] from levels [n, n, C] and 1/sqrt(degree) [T, n, C] (0 if isolated)."""
    steps = inv_sqrt_deg.shape[0]
    grid = np.arange(steps, dtype=level.dtype)[:, None, None]
    neighbour_sum = np.zeros_like(inv_sqrt_deg)
    for j in range(level.shape[0]):
        adjacent = level[None, :, j, :] <= grid  # [T, n, C], self included for j == i
        neighbour_sum += adjacent * inv_sqrt_deg[:, j, None, :]
    neighbour_sum -= inv_sqrt_deg  # drop the self term
    return 0.5 * _sum_atoms(inv_sqrt_deg * neighbour_sum)


def _chunk_indices(
    dists: list[np.ndarray], sizes: np.ndarray, radii: np.ndarray
) -> dict[str, np.ndarray]:
    """Indices for one chunk of molecules, each [T, C]."""
    steps = len(radii)
    level = _first_level(dists, sizes, radii)
    nmax, _, num = level.shape
    real = np.arange(nmax)[:, None] < sizes[None, :]  # [n, C]

    first_bins = _bins(level, np.arange(num), num)
    counts = _row_counts(first_bins, steps, nmax, num)  # c_1: closed-neighbourhood sizes
    deg = counts - 1.0
    inv_sqrt_deg = np.zeros_like(deg)
    np.divide(1.0, np.sqrt(deg), out=inv_sqrt_deg, where=deg > 0)
    randic = _randic(level, inv_sqrt_deg)
    n_edges = _sum_atoms(np.where(real, deg, 0.0)) / 2.0

    # Walk to convergence, one product per hop; a molecule leaves once M_k stops changing.
    # The sums over k are linear in the histograms of M_k, so the bins of every M_k are
    # collected and counted once at the end.
    all_bins, all_weights = [first_bins], [np.full(first_bins.size, 0.5)]
    hops = np.ones(num)  # K per molecule
    converged = level.copy()  # M_K
    active = np.arange(num)
    walk, act_level = level, level
    k = 1
    while True:
        nxt = _minmax_step(walk, act_level)
        changed = (nxt != walk).reshape(-1, active.size).any(axis=0)
        done = active[~changed]
        hops[done] = k
        converged[..., done] = walk[..., ~changed]
        if not changed.any():
            break
        active = active[changed]
        walk = np.ascontiguousarray(nxt[..., changed])
        act_level = np.ascontiguousarray(act_level[..., changed])
        k += 1
        all_bins.append(_bins(walk, active, num))
        all_weights.append(np.full(all_bins[-1].size, 1.0 / k - 1.0 / (k + 1)))

    flat = np.concatenate(all_bins)
    final = _row_counts(_bins(converged, np.arange(num), num), steps, nmax, num)  # c_K
    sum_counts = _row_counts(flat, steps, nmax, num) - final  # sum_{k=1}^{K-1} c_k
    # sum_{k=1}^{K} c_k (1/k - 1/(k+1))
    sum_inverse = _row_counts(flat, steps, nmax, num, np.concatenate(all_weights))
    hop_sum = hops * final - 1.0 - sum_counts  # H(i, t)
    inv_hop_sum = sum_inverse + final / (hops + 1.0) - 1.0  # F(i, t)

    def per_molecule(x: np.ndarray) -> np.ndarray:
        return _sum_atoms(np.where(real, x, 0.0))

    n_f = sizes.astype(np.float64)
    pairs = np.maximum(n_f * (n_f - 1.0), 1.0)  # efficiency is 0 for one atom
    weight = wiener_component_weight(final)
    num_w = per_molecule(weight * (hop_sum - final + 1.0))
    den_w = per_molecule(final - 1.0)
    wnorm = np.zeros_like(num_w)
    np.divide(num_w, den_w, out=wnorm, where=den_w > 0)
    return {
        "randic": randic,
        "wiener": per_molecule(hop_sum) / 2.0,
        "efficiency": per_molecule(inv_hop_sum) / pairs,
        "wiener_norm": np.clip(wnorm, 0.0, 1.0),
        "n_edges": n_edges,
        "n_components": np.rint(per_molecule(1.0 / final)),
    }
