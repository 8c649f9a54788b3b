import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from mimoe_core.topology import descriptor_curves
from mimoe_core.topology._descriptors import _raw_parts
from mimoe_core.topology._normalize import normalized_ratios

coords = st.floats(-3.0, 3.0, allow_nan=False, width=64)


@settings(max_examples=80, deadline=None)
@given(arrays(np.float64, st.tuples(st.integers(1, 16), st.just(3)), elements=coords))
def test_unclipped_normalized_ratios_lie_in_the_unit_interval(pos):
    # The ratios before normalize() clips them: the bounds must hold up to round-off.
    if pos.shape[0] > 3:
        pos = np.round(pos, 0)  # many ties and coincident atoms
    raw, sizes, idx = _raw_parts([pos], np.linspace(0.0, 6.0, 13))
    ratios = normalized_ratios(raw, sizes, idx["n_edges"], idx["wiener_norm"])
    for key, val in ratios.items():
        assert np.all((val >= -1e-12) & (val <= 1 + 1e-12)), (key, val)
    # and the clipped forms differ from them by round-off only
    clipped = descriptor_curves(pos, np.linspace(0.0, 6.0, 13), normalize=True)
    for key, val in ratios.items():
        np.testing.assert_allclose(clipped[key], val[0], atol=1e-12, rtol=0)


def test_known_normalized_values():
    path = np.zeros((5, 3))
    path[:, 0] = np.arange(5) * 1.5
    c = descriptor_curves(path, [1.0, 1.5, 100.0], normalize=True)
    np.testing.assert_allclose(c["wiener"], [0.0, 1.0, 0.0])  # empty, path, complete
    np.testing.assert_allclose(c["betti0"], [1.0, 0.2, 0.2])
    np.testing.assert_allclose(c["randic"][2], 1.0)  # regular graph: R = n/2
    np.testing.assert_allclose(c["efficiency"][2], 1.0)


def test_wiener_norm_weights_components():
    # A 4-atom path (w = 1, 6 pairs) and a far-away pair (w = 0, 1 pair): 6 / 7.
    pos = np.zeros((6, 3))
    pos[:4, 0] = np.arange(4) * 1.5
    pos[4:, 0] = [50.0, 51.0]
    c = descriptor_curves(pos, [1.5], normalize=True)
    assert c["wiener"][0] == pytest.approx(6 / 7)


def test_betti1_normalized_by_cycle_rank(molecules):
    c = descriptor_curves(molecules["benzene"], [1.4], normalize=True)
    assert c["betti1"][0] == 1.0  # the ring is the only cycle and it is unfilled
    square = np.array([[0.0, 0, 0], [1, 0, 0], [1, 1, 0], [0, 1, 0]])
    c = descriptor_curves(square, [1.0, 2.0], normalize=True)
    np.testing.assert_array_equal(c["betti1"], [1.0, 0.0])
