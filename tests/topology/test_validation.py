import numpy as np
import pytest

from mimoe_core.topology import (
    DEFAULT_RADII,
    DESCRIPTOR_NAMES,
    descriptor_curves,
    descriptor_trajectories,
    pairwise_distances,
)


def test_default_grid():
    assert DEFAULT_RADII.shape == (41,) and DEFAULT_RADII.dtype == np.float64
    assert DEFAULT_RADII[0] == 1.0 and DEFAULT_RADII[-1] == 5.0 and DEFAULT_RADII[13] == 2.3
    assert DESCRIPTOR_NAMES == ("betti0", "betti1", "randic", "wiener", "efficiency")


@pytest.mark.parametrize(
    ("pos", "match"),
    [
        (np.zeros((0, 3)), "no atoms"),
        (np.zeros((4, 2)), "shape"),
        (np.zeros(3), "shape"),
        (np.array([[0.0, np.nan, 0.0]]), "NaN"),
        (np.array([[0.0, np.inf, 0.0]]), "infinite"),
    ],
)
def test_bad_positions(pos, match):
    with pytest.raises(ValueError, match=match):
        descriptor_curves(pos)
    with pytest.raises(ValueError, match=match):
        pairwise_distances(pos)


def test_bad_molecule_in_batch_is_named():
    with pytest.raises(ValueError, match="molecule 1"):
        descriptor_trajectories([np.zeros((2, 3)), np.zeros((2, 4))])


@pytest.mark.parametrize(
    ("radii", "match"),
    [
        ([], "empty"),
        ([2.0, 1.0], "increasing"),
        ([1.0, 1.0], "increasing"),
        ([-1.0, 1.0], "non-negative"),
        ([1.0, np.nan], "NaN"),
        ([[1.0, 2.0]], "1-D"),
    ],
)
def test_bad_radii(radii, match):
    with pytest.raises(ValueError, match=match):
        descriptor_curves(np.zeros((2, 3)), radii)
