"""Graph indices of G(r) for many molecules and radii at once (bit-parallel BFS).

For every molecule and every radius r_t, G(r_t) has an edge between atoms i != j with
d_ij <= r_t. Hop distances are found by a breadth-first search run on all graphs together:
each atom holds the set of atoms it reaches within k hops as a bitset (uint64 words), and
one round ORs the bitsets of its closed neighbourhood, ``np.bitwise_or.reduceat`` over a
flat neighbour list. Round k finds exactly the pairs at hop distance k, which gives the
Wiener index, the global efficiency and the components. Graphs equal to the one at the
previous radius (no distance in between), empty graphs and complete graphs are not
searched, and graphs drop out of the search once their bitsets stop changing.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from mimoe_core.topology._normalize import wiener_component_weight

#: Cap on C * T * n_max^2 booleans held at once for a chunk of C molecules.
_CHUNK_BUDGET = 2_000_000

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
    order = np.argsort(sizes, kind="stable")
    start = 0
    while start < num:
        stop = start + 1
        while stop < num and (stop + 1 - start) * steps * sizes[order[stop]] ** 2 <= _CHUNK_BUDGET:
            stop += 1
        idx = order[start:stop]
        chunk = _chunk_indices([dists[i] for i in idx], sizes[idx], radii)
        for key in INDEX_KEYS:
            out[key][idx] = chunk[key]
        start = stop
    return out


def _chunk_indices(
    dists: list[np.ndarray], sizes: np.ndarray, radii: np.ndarray
) -> dict[str, np.ndarray]:
    num, steps, nmax = len(dists), len(radii), int(sizes.max())
    dist = np.full((num, nmax, nmax), np.inf)  # padding atoms are infinitely far away
    for c, d in enumerate(dists):
        dist[c, : d.shape[0], : d.shape[0]] = d
    closed = dist[:, None] <= radii[None, :, None, None]  # [C, T, n, n], self included
    kcl = closed.sum(-1)  # closed-neighbourhood sizes, 0 for padding
    edges = (kcl.sum(-1) - sizes[:, None]) // 2  # [C, T]

    n_f = sizes.astype(np.float64)[:, None]
    pairs = sizes * (sizes - 1) // 2
    complete = (edges == pairs[:, None]) & (sizes[:, None] >= 2)
    empty = edges == 0
    randic = np.where(complete, n_f / 2.0, 0.0)
    wiener = np.where(complete, pairs[:, None].astype(np.float64), 0.0)
    eff = np.where(complete, 1.0, 0.0)
    wnorm = np.zeros((num, steps))
    ncomp = np.where(complete, 1.0, np.broadcast_to(n_f, (num, steps)))

    new = np.ones((num, steps), dtype=bool)
    new[:, 1:] = edges[:, 1:] != edges[:, :-1]  # graphs are nested: same count, same graph
    search = new & ~complete & ~empty
    if search.any():
        gc, gt = np.nonzero(search)
        res = _search(closed[gc, gt], kcl[gc, gt], sizes[gc])
        randic[gc, gt], wiener[gc, gt], eff[gc, gt], wnorm[gc, gt], ncomp[gc, gt] = res
    rep = np.maximum.accumulate(np.where(new, np.arange(steps)[None, :], 0), axis=1)

    def take(a: np.ndarray) -> np.ndarray:
        return np.take_along_axis(a, rep, axis=1)

    return {
        "randic": take(randic),
        "wiener": take(wiener),
        "efficiency": take(eff),
        "wiener_norm": take(wnorm),
        "n_edges": edges.astype(np.float64),
        "n_components": take(ncomp),
    }


def _search(
    closed: np.ndarray, kcl: np.ndarray, n_g: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Indices of G graphs given their closed adjacency [G, n, n] and degrees + 1 [G, n].

    Returns Randić index, Wiener index, global efficiency, normalized Wiener index and
    number of components, each [G].
    """
    num_g, nmax = kcl.shape
    real = np.arange(nmax)[None, :] < n_g[:, None]
    # Atom v of graph g is vertex g * nmax + v. Padding atoms get a self-loop, so that every
    # vertex has a non-empty closed neighbourhood (a reduceat segment), and are masked out.
    closed[:, np.arange(nmax), np.arange(nmax)] = True
    seglen = np.where(real, kcl, 1).reshape(-1)
    flat = np.flatnonzero(closed)  # (graph, atom, neighbour) order: segments of reduceat
    row = np.arange(num_g * nmax)
    src = flat - np.repeat(row * nmax - (row // nmax) * nmax, seglen)  # g * nmax + neighbour
    starts = np.concatenate(([0], np.cumsum(seglen)[:-1]))

    def per_graph(x: np.ndarray) -> np.ndarray:
        return np.where(real, x.reshape(num_g, nmax), 0.0).sum(axis=1)

    deg = (seglen - 1).astype(np.float64)
    inv = np.zeros(deg.shape)
    np.divide(1.0, np.sqrt(deg), out=inv, where=deg > 0)
    randic = 0.5 * per_graph(inv * (np.add.reduceat(inv[src], starts) - inv))

    # Hop 1 is the closed neighbourhood itself: start from its bitsets, packed little-endian.
    words = (nmax + 63) // 64
    bits = np.zeros((num_g, nmax, words * 64), dtype=bool)
    bits[:, :, :nmax] = closed
    packed = np.packbits(bits, axis=-1, bitorder="little").view(np.uint64).reshape(-1, words)
    reach = [np.ascontiguousarray(packed[:, w]) for w in range(words)]
    count = seglen.astype(np.int64)
    hop_sum = count - 1
    inv_sum = deg.copy()

    # An atom is done once a round adds nothing: BFS layers are contiguous. Atoms that are
    # isolated or adjacent to the whole molecule are done from the start.
    going = (real & (kcl > 1) & (kcl < n_g[:, None])).reshape(-1)
    act_v = np.arange(going.size)
    act_src, act_starts = src, starts
    hop = 1
    while True:
        if going.mean() < 0.8:  # drop the neighbour lists of finished atoms
            act_src = act_src[np.repeat(going, seglen[act_v])]
            act_v = act_v[going]
            act_starts = np.concatenate(([0], np.cumsum(seglen[act_v])[:-1]))
        if act_v.size == 0:
            break
        hop += 1
        nxt = [np.bitwise_or.reduceat(r[act_src], act_starts) for r in reach]
        cnt = sum(np.bitwise_count(x).astype(np.int64) for x in nxt)
        gained = cnt - count[act_v]
        if not gained.any():
            break
        hop_sum[act_v] += hop * gained
        inv_sum[act_v] += gained / hop
        for r, x in zip(reach, nxt, strict=True):
            r[act_v] = x
        count[act_v] = cnt
        going = gained > 0

    m = count.astype(np.float64)  # size of the atom's component
    weight = wiener_component_weight(count)
    wiener = per_graph(hop_sum) / 2.0
    nf = n_g.astype(np.float64)
    eff = per_graph(inv_sum) / (nf * (nf - 1.0))
    num = per_graph(weight * (hop_sum - m + 1.0)) / 2.0
    den = per_graph(m - 1.0) / 2.0
    wnorm = np.clip(num / den, 0.0, 1.0)
    ncomp = np.rint(per_graph(1.0 / m))
    return randic, wiener, eff, wnorm, ncomp
