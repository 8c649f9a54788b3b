"""Size-normalized descriptors, each in [0, 1] for every graph.

The formulas and the proofs of the bounds are in :func:`mimoe_core.topology.descriptor_curves`.
"""

from __future__ import annotations

import numpy as np


def wiener_component_weight(m: np.ndarray) -> np.ndarray:
    """Per-vertex weight 3 / (m - 2) of a component of m >= 3 atoms, 0 for m <= 2.

    A component of m atoms has P = m(m-1)/2 pairs and P <= W_c <= (m^3 - m)/6 (complete
    graph, path). Its normalized index (W_c - P) / ((m^3 - m)/6 - P) times its weight P is
    (W_c - P) * 3 / (m - 2), since (m^3 - m)/6 - P = m(m-1)(m-2)/6.
    """
    m = np.asarray(m, dtype=np.float64)
    out = np.zeros_like(m)
    np.divide(3.0, m - 2.0, out=out, where=m >= 3)
    return out


def normalized_ratios(
    raw: dict[str, np.ndarray], n_atoms: np.ndarray, n_edges: np.ndarray, wiener_norm: np.ndarray
) -> dict[str, np.ndarray]:
    """The normalized forms before any clipping, in [0, 1] up to round-off.

    Arguments as in :func:`normalize`. Tests check the bounds on these values.
    """
    n = np.asarray(n_atoms, dtype=np.float64)[:, None]
    cycle_rank = n_edges - n + raw["betti0"]
    return {
        "betti0": raw["betti0"] / n,
        "betti1": raw["betti1"] / np.maximum(cycle_rank, 1.0),
        "randic": raw["randic"] / (n / 2.0),
        "wiener": wiener_norm,
        "efficiency": raw["efficiency"],
    }


def normalize(
    raw: dict[str, np.ndarray], n_atoms: np.ndarray, n_edges: np.ndarray, wiener_norm: np.ndarray
) -> dict[str, np.ndarray]:
    """Normalized descriptor curves from raw ones.

    Args:
        raw: raw curves keyed by descriptor name, each [B, T].
        n_atoms: atom counts, [B].
        n_edges: edge counts of G(r_t), [B, T].
        wiener_norm: pair-weighted per-component Wiener normalization, [B, T].

    Returns:
        Dict with the same keys, each [B, T] in [0, 1].
    """
    out = normalized_ratios(raw, n_atoms, n_edges, wiener_norm)
    # The bounds hold exactly; clipping only removes round-off (e.g. R = n/2 + 1 ulp).
    return {key: np.clip(val, 0.0, 1.0) for key, val in out.items()}
