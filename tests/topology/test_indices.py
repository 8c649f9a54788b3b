import networkx as nx
import numpy as np
import pytest
from conftest import nx_graph, nx_indices
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from mimoe_core.topology import (
    DEFAULT_RADII,
    _indices,
    descriptor_curves,
    descriptor_trajectories,
    pairwise_distances,
)

coords = st.floats(-3.0, 3.0, allow_nan=False, width=64)


def nx_wiener_normalized(graph):
    """The README's per-component normalized Wiener index, from networkx."""
    num = den = 0.0
    for comp in nx.connected_components(graph):
        m = len(comp)
        pairs = m * (m - 1) / 2
        den += pairs
        if m >= 3:
            w = nx.wiener_index(graph.subgraph(comp))
            num += pairs * (w - pairs) / ((m**3 - m) / 6 - pairs)
    return num / den if den else 0.0


def check_against_networkx(pos, radii):
    c = descriptor_curves(pos, radii)
    norm = descriptor_curves(pos, radii, normalize=True)
    for t, r in enumerate(radii):
        graph = nx_graph(pos, r)
        randic, wiener, eff = nx_indices(graph)
        assert c["randic"][t] == pytest.approx(randic, rel=1e-12, abs=1e-12)
        assert c["wiener"][t] == wiener
        assert c["efficiency"][t] == pytest.approx(eff, rel=1e-12, abs=1e-12)
        expected = nx_wiener_normalized(graph)
        assert norm["wiener"][t] == pytest.approx(expected, rel=1e-12, abs=1e-12)


@settings(max_examples=40, deadline=None)
@given(arrays(np.float64, st.tuples(st.integers(1, 16), st.just(3)), elements=coords))
def test_random_clouds_match_networkx(pos):
    check_against_networkx(pos, np.linspace(0.0, 5.0, 11))


@settings(max_examples=30, deadline=None)
@given(arrays(np.float64, st.tuples(st.integers(2, 12), st.just(3)), elements=coords))
def test_lattice_ties_match_networkx(pos):
    pos = np.round(pos * 2.0) / 2.0
    check_against_networkx(pos, np.arange(0.0, 4.01, 0.5))


def test_large_molecule_long_paths():
    # 70 atoms on a helix: at 1.0 Å a 69-hop path, the longest walk the search must follow.
    t = np.arange(70) * 0.6
    pos = np.stack([1.5 * np.cos(t), 1.5 * np.sin(t), 0.4 * t], axis=1)
    check_against_networkx(pos, np.array([0.5, 1.0, 1.2, 1.6, 2.5, 3.5, 6.0, 30.0]))


@pytest.mark.parametrize("name", ["water", "methane", "benzene"])
def test_known_molecules_match_networkx(molecules, name):
    check_against_networkx(molecules[name], DEFAULT_RADII)


def test_water_known_values(molecules):
    c = descriptor_curves(molecules["water"], [0.5, 1.0, 2.0])
    np.testing.assert_allclose(c["randic"], [0.0, 2 / np.sqrt(2), 1.5])
    np.testing.assert_array_equal(c["wiener"], [0, 4, 3])
    np.testing.assert_allclose(c["efficiency"], [0.0, 5 / 6, 1.0])


@pytest.mark.parametrize("name", ["water", "methane", "benzene"])
def test_above_diameter_is_complete(molecules, name):
    pos = molecules[name]
    n = len(pos)
    c = descriptor_curves(pos, [10.0])
    assert c["betti0"][0] == 1 and c["betti1"][0] == 0
    assert c["wiener"][0] == n * (n - 1) / 2
    assert c["efficiency"][0] == 1.0
    assert c["randic"][0] == pytest.approx(n / 2)


def test_below_shortest_bond_is_empty(molecules):
    pos = molecules["benzene"]
    c = descriptor_curves(pos, [0.0, 0.5, 1.0])
    np.testing.assert_array_equal(c["betti0"], [12, 12, 12])
    for key in ("betti1", "randic", "wiener", "efficiency"):
        np.testing.assert_array_equal(c[key], 0.0)


def test_collinear_chain_is_a_path():
    pos = np.zeros((6, 3))
    pos[:, 0] = np.arange(6) * 1.5
    c = descriptor_curves(pos, [1.5, 3.0])
    assert c["wiener"][0] == (6**3 - 6) / 6  # path graph
    assert c["betti0"][0] == 1 and c["betti1"][0] == 0
    np.testing.assert_array_equal(c["betti1"], [0, 0])


def test_trajectories_equal_single_curves(molecules):
    mols = [molecules["benzene"], np.zeros((1, 3)), molecules["water"], molecules["methane"]]
    for normalize in (False, True):
        traj = descriptor_trajectories(mols, normalize=normalize, dtype=np.float64)
        assert traj.shape == (4, len(DEFAULT_RADII), 5)
        for b, pos in enumerate(mols):
            c = descriptor_curves(pos, normalize=normalize)
            np.testing.assert_array_equal(traj[b], np.stack(list(c.values()), axis=1))
    assert descriptor_trajectories(mols).dtype == np.float32
    assert descriptor_trajectories([], radii=[1.0]).shape == (0, 1, 5)


def test_trajectories_progress_bar(molecules, capsys):
    traj = descriptor_trajectories([molecules["water"]] * 3, progress=True)
    assert traj.shape == (3, 41, 5)


def test_chunks_and_batch_composition_do_not_change_values(monkeypatch):
    # Many molecules of mixed sizes split over several chunks (a tiny budget) give exactly
    # the values of one molecule at a time, and those match networkx.
    rng = np.random.default_rng(7)
    mols = [rng.uniform(-2.5, 2.5, size=(n, 3)) for n in rng.integers(1, 24, size=25)]
    radii = np.linspace(0.4, 4.4, 9)
    monkeypatch.setattr(_indices, "_CHUNK_BUDGET", 20_000)
    batch = descriptor_trajectories(mols, radii, normalize=False, dtype=np.float64)
    for b, pos in enumerate(mols):
        single = descriptor_trajectories([pos], radii, normalize=False, dtype=np.float64)[0]
        np.testing.assert_array_equal(batch[b], single)
        for t, r in enumerate(radii):
            randic, wiener, eff = nx_indices(nx_graph(pos, r))
            assert batch[b, t, 3] == wiener
            assert batch[b, t, 2] == pytest.approx(randic, rel=1e-12, abs=1e-12)
            assert batch[b, t, 4] == pytest.approx(eff, rel=1e-12, abs=1e-12)


def test_fine_grid_of_more_than_255_radii(molecules):
    # Grid indices no longer fit in uint8: the search switches to uint16.
    pos = molecules["benzene"]
    radii = np.linspace(0.0, 6.0, 601)
    idx = _indices.graph_indices([pairwise_distances(pos)], radii)
    for t in range(0, 601, 37):
        randic, wiener, eff = nx_indices(nx_graph(pos, radii[t]))
        assert idx["wiener"][0, t] == wiener
        assert idx["randic"][0, t] == pytest.approx(randic, rel=1e-12, abs=1e-12)
        assert idx["efficiency"][0, t] == pytest.approx(eff, rel=1e-12, abs=1e-12)
        graph = nx_graph(pos, radii[t])
        assert idx["n_components"][0, t] == nx.number_connected_components(graph)
        assert idx["n_edges"][0, t] == graph.number_of_edges()
