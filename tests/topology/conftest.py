"""Known molecules and oracles (GUDHI, networkx) for the topology tests."""

import gudhi
import networkx as nx
import numpy as np
import pytest

from mimoe_core.topology import pairwise_distances


def water() -> np.ndarray:
    angle = np.deg2rad(104.5)
    return np.array([[0.0, 0, 0], [0.96, 0, 0], [0.96 * np.cos(angle), 0.96 * np.sin(angle), 0]])


def methane() -> np.ndarray:
    tet = np.array([[1, 1, 1], [1, -1, -1], [-1, 1, -1], [-1, -1, 1]]) / np.sqrt(3.0)
    return np.vstack([np.zeros(3), 1.09 * tet])


def benzene() -> np.ndarray:
    ang = np.arange(6) * np.pi / 3
    ring = np.stack([np.cos(ang), np.sin(ang), np.zeros(6)], axis=1)
    return np.vstack([1.39 * ring, (1.39 + 1.09) * ring])


@pytest.fixture
def molecules() -> dict[str, np.ndarray]:
    return {"water": water(), "methane": methane(), "benzene": benzene()}


def gudhi_betti(pos: np.ndarray, radii: np.ndarray) -> np.ndarray:
    """[2, T] Betti-0/1 from GUDHI's RipsComplex persistence (the specification)."""
    dist = pairwise_distances(pos)
    rips = gudhi.RipsComplex(distance_matrix=dist, max_edge_length=float(radii[-1]))
    # persistence_dim_max=True: otherwise GUDHI ignores H1 of a complex without triangles.
    pers = rips.create_simplex_tree(max_dimension=2).persistence(persistence_dim_max=True)
    out = np.zeros((2, len(radii)))
    for t, r in enumerate(radii):
        for dim in (0, 1):
            out[dim, t] = sum(1 for d, (b, e) in pers if d == dim and b <= r < e)
    return out


def nx_graph(pos: np.ndarray, r: float) -> nx.Graph:
    dist = pairwise_distances(pos)
    n = len(pos)
    graph = nx.Graph()
    graph.add_nodes_from(range(n))
    iu, ju = np.triu_indices(n, 1)
    keep = dist[iu, ju] <= r
    graph.add_edges_from(zip(iu[keep].tolist(), ju[keep].tolist(), strict=True))
    return graph


def nx_indices(graph: nx.Graph) -> tuple[float, float, float]:
    """Randić, Wiener (summed over components), global efficiency."""
    deg = dict(graph.degree())
    randic = sum(1.0 / np.sqrt(deg[u] * deg[v]) for u, v in graph.edges())
    wiener = sum(nx.wiener_index(graph.subgraph(c)) for c in nx.connected_components(graph))
    return randic, float(wiener), nx.global_efficiency(graph)
