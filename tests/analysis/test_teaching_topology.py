"""Rips simplices, connection radius and scale table of mimoe_core.analysis.topology."""

import numpy as np
import pytest

from mimoe_core.analysis.topology import connection_radius, rips_simplices, scale_table
from mimoe_core.topology import persistence_diagram


def _last_h0_death(pos: np.ndarray) -> float:
    dgm = persistence_diagram(pos)
    deaths = dgm[(dgm[:, 2] == 0) & np.isfinite(dgm[:, 1]), 1]
    return float(deaths.max()) if deaths.size else 0.0


@pytest.mark.parametrize("seed", range(8))
def test_connection_radius_is_the_last_h0_death(seed):
    rng = np.random.default_rng(seed)
    pos = rng.normal(0.0, 1.5, (int(rng.integers(2, 20)), 3))
    assert connection_radius(pos) == pytest.approx(_last_h0_death(pos))
    table = scale_table({"m": pos})
    assert table.loc["m", "connected_at"] == pytest.approx(_last_h0_death(pos))


def test_connection_radius_edge_cases():
    assert connection_radius([[0.0, 0.0, 0.0]]) == 0.0 == _last_h0_death(np.zeros((1, 3)))
    # coincident atoms: zero-length edges still connect
    twin = np.array([[0.0, 0, 0], [0.0, 0, 0], [2.0, 0, 0]])
    assert connection_radius(twin) == pytest.approx(2.0) == pytest.approx(_last_h0_death(twin))
    assert connection_radius(np.zeros((3, 3))) == 0.0 == _last_h0_death(np.zeros((3, 3)))
    # 2D points are read with z = 0
    assert connection_radius([[0.0, 0.0], [3.0, 4.0]]) == pytest.approx(5.0)


def test_rips_simplices_edges_are_the_graph_at_r():
    square = [[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 1.0]]
    s = rips_simplices(square, 1.0)
    assert s["edges"].tolist() == [[0, 1], [0, 3], [1, 2], [2, 3]]
    assert s["triangles"].shape == (0, 3)
    full = rips_simplices(square, 1.5)
    assert len(full["edges"]) == 6 and len(full["triangles"]) == 4
    with pytest.raises(ValueError, match="radius"):
        rips_simplices(square, -1.0)


def test_viz_teaching_reexports_the_core_functions():
    from mimoe_viz import teaching

    assert teaching.rips_simplices is rips_simplices
    assert teaching.scale_table is scale_table
