import numpy as np
import pytest
from conftest import nx_graph, nx_indices
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from mimoe_core.topology import DEFAULT_RADII, descriptor_curves, descriptor_trajectories

coords = st.floats(-3.0, 3.0, allow_nan=False, width=64)


def check_against_networkx(pos, radii):
    c = descriptor_curves(pos, radii)
    for t, r in enumerate(radii):
        graph = nx_graph(pos, r)
        randic, wiener, eff = nx_indices(graph)
        assert c["randic"][t] == pytest.approx(randic, rel=1e-12, abs=1e-12)
        assert c["wiener"][t] == wiener
        assert c["efficiency"][t] == pytest.approx(eff, rel=1e-12, abs=1e-12)


@settings(max_examples=40, deadline=None)
@given(arrays(np.float64, st.tuples(st.integers(1, 16), st.just(3)), elements=coords))
def test_random_clouds_match_networkx(pos):
    check_against_networkx(pos, np.linspace(0.0, 5.0, 11))


@settings(max_examples=30, deadline=None)
@given(arrays(np.float64, st.tuples(st.integers(2, 12), st.just(3)), elements=coords))
def test_lattice_ties_match_networkx(pos):
    pos = np.round(pos * 2.0) / 2.0
    check_against_networkx(pos, np.arange(0.0, 4.01, 0.5))


def test_large_molecule_multiword_bitsets():
    # 70 atoms on a helix: more than 64 atoms per molecule uses two uint64 words.
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
