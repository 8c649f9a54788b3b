import numpy as np
import pytest
from conftest import gudhi_betti
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from mimoe_core.topology import (
    DEFAULT_RADII,
    betti_curves,
    descriptor_curves,
    pairwise_distances,
    persistence_diagram,
)

coords = st.floats(-3.0, 3.0, allow_nan=False, width=64)


def lattice_points(draw_pts: np.ndarray) -> np.ndarray:
    # Points on a 0.5 Å lattice: many equal distances, so many ties with the grid.
    return np.round(draw_pts * 2.0) / 2.0


@settings(max_examples=50, deadline=None)
@given(arrays(np.float64, st.tuples(st.integers(1, 12), st.just(3)), elements=coords))
def test_betti_equals_gudhi_random(pos):
    radii = np.linspace(0.0, 4.0, 17)
    curves = descriptor_curves(pos, radii)
    ref = gudhi_betti(pos, radii)
    if len(pos) == 1:
        ref[0] = 1  # GUDHI reports no bar for a one-vertex complex
    np.testing.assert_array_equal(curves["betti0"], ref[0])
    np.testing.assert_array_equal(curves["betti1"], ref[1])


@settings(max_examples=50, deadline=None)
@given(arrays(np.float64, st.tuples(st.integers(2, 14), st.just(3)), elements=coords))
def test_betti_equals_gudhi_ties(pos):
    pos = lattice_points(pos)  # includes coincident atoms
    dist = pairwise_distances(pos)
    radii = np.unique(np.concatenate([[0.0], dist[np.triu_indices(len(pos), 1)]]))
    curves = descriptor_curves(pos, radii)  # every radius is exactly an edge length
    ref = gudhi_betti(pos, radii)
    np.testing.assert_array_equal(curves["betti0"], ref[0])
    np.testing.assert_array_equal(curves["betti1"], ref[1])


@settings(max_examples=50, deadline=None)
@given(
    arrays(np.float64, st.tuples(st.integers(1, 10), st.just(3)), elements=coords),
    st.one_of(st.just(0.0), st.floats(0.01, 2.5)),
)
def test_betti_equals_gudhi_short_grids(pos, stop):
    # Grids that end before triangles (or edges) appear: GUDHI's top dimension is 0 or 1.
    radii = np.linspace(0.0, stop, 5) if stop > 0 else np.array([0.0])
    curves = descriptor_curves(pos, radii)
    ref = gudhi_betti(pos, radii)
    if len(pos) == 1:
        ref[0] = 1
    np.testing.assert_array_equal(curves["betti0"], ref[0])
    np.testing.assert_array_equal(curves["betti1"], ref[1])
    edges = (pairwise_distances(pos)[np.triu_indices(len(pos), 1)][:, None] <= radii).sum(0)
    cycle_rank = edges - len(pos) + curves["betti0"]
    assert np.all(curves["betti1"] <= cycle_rank)


def test_square_and_octahedron_ties():
    square = np.array([[0.0, 0, 0], [1, 0, 0], [1, 1, 0], [0, 1, 0]])
    c = descriptor_curves(square, [0.999, 1.0, 1.4, np.sqrt(2.0)])
    np.testing.assert_array_equal(c["betti0"], [4, 1, 1, 1])
    np.testing.assert_array_equal(c["betti1"], [0, 1, 1, 0])
    # Octahedron: at r in [sqrt 2, 2) its flag complex is a sphere, b1 = 0 though the graph
    # has cycle rank 12 - 6 + 1 = 7.
    octa = np.vstack([np.eye(3), -np.eye(3)])
    c = descriptor_curves(octa, [1.0, 1.5, 2.0])
    np.testing.assert_array_equal(c["betti1"], [0, 0, 0])
    c = descriptor_curves(octa, [1.5])  # grid ends where the octahedron is complete
    np.testing.assert_array_equal(c["betti1"], [0])
    dgm = persistence_diagram(octa)
    assert (dgm[:, 2] == 2).sum() >= 1  # the sphere's H2 class


def test_benzene_ring(molecules):
    pos = molecules["benzene"]
    dgm = persistence_diagram(pos)
    h1 = dgm[dgm[:, 2] == 1]
    long = h1[h1[:, 1] - h1[:, 0] > 0.5]
    assert len(long) == 1
    assert long[0, 0] == pytest.approx(1.39)
    c = descriptor_curves(pos, [1.0, 1.3901, 2.0, 2.3])  # C-C is 1.39 up to round-off
    np.testing.assert_array_equal(c["betti1"], [0, 1, 1, 1])
    np.testing.assert_array_equal(c["betti0"], [12, 1, 1, 1])


@pytest.mark.parametrize("name", ["water", "methane", "benzene"])
def test_betti0_monotone(molecules, name):
    pos = molecules[name]
    c = descriptor_curves(pos, np.concatenate([[0.5], DEFAULT_RADII]))
    assert c["betti0"][0] == len(pos)
    assert np.all(np.diff(c["betti0"]) <= 0)


def test_one_and_two_atoms_and_coincident():
    one = descriptor_curves(np.zeros((1, 3)), [0.0, 1.0])
    np.testing.assert_array_equal(one["betti0"], [1, 1])
    np.testing.assert_array_equal(persistence_diagram(np.zeros((1, 3))), [[0.0, np.inf, 0.0]])
    two = descriptor_curves([[0.0, 0, 0], [1.0, 0, 0]], [0.5, 1.0])
    np.testing.assert_array_equal(two["betti0"], [2, 1])
    same = descriptor_curves(np.zeros((3, 3)), [0.0, 1.0])
    np.testing.assert_array_equal(same["betti0"], [1, 1])
    np.testing.assert_array_equal(same["betti1"], [0, 0])


def test_persistence_diagram_format(molecules):
    dgm = persistence_diagram(molecules["methane"])
    assert dgm.shape[1] == 3
    h0 = dgm[dgm[:, 2] == 0]
    assert len(h0) == 5 and np.isinf(h0[:, 1]).sum() == 1
    np.testing.assert_array_equal(betti_curves(dgm, [0.5, 1.5]), [[5, 1], [0, 0]])
    capped = persistence_diagram(molecules["methane"], max_edge_length=1.0)
    assert np.isinf(capped[capped[:, 2] == 0, 1]).sum() == 5
    with pytest.raises(ValueError, match="max_edge_length"):
        persistence_diagram(molecules["methane"], max_edge_length=-1.0)
