import itertools

import numpy as np
import pytest
from conftest import CUTOFFS, benzene, chain, water

from mimoe_core.topology import (
    DEFAULT_RADII,
    DESCRIPTOR_NAMES,
    descriptor_curves,
    descriptor_trajectories,
    pairwise_distances,
)
from mimoe_viz import teaching
from mimoe_viz._style import DESCRIPTOR_LABELS, expert_labels

pytest.importorskip("plotly")

HEXAGON = 1.4 * np.c_[np.cos(np.arange(6) * np.pi / 3), np.sin(np.arange(6) * np.pi / 3)]


def _brute_force(points, radius):
    pts = np.asarray(points, float)
    pts = np.hstack([pts, np.zeros((len(pts), 3 - pts.shape[1]))])
    dist = pairwise_distances(pts)
    n = len(pts)
    edges = [(i, j) for i, j in itertools.combinations(range(n), 2) if dist[i, j] <= radius]
    tris = [
        t
        for t in itertools.combinations(range(n), 3)
        if all(dist[a, b] <= radius for a, b in itertools.combinations(t, 2))
    ]
    return edges, tris


def _segment_count(trace) -> int:
    return sum(v is None for v in trace.x)


# --------------------------------------------------------------------------- rips_simplices


@pytest.mark.parametrize("dims", [2, 3])
@pytest.mark.parametrize("radius", [0.0, 0.5, 1.0, 1.7, 10.0])
def test_rips_simplices_match_brute_force(dims, radius):
    points = np.random.default_rng(dims).uniform(0, 2, size=(9, dims))
    simplices = teaching.rips_simplices(points, radius)
    edges, tris = _brute_force(points, radius)
    assert simplices["edges"].tolist() == [list(e) for e in edges]
    assert simplices["triangles"].tolist() == [list(t) for t in tris]
    assert simplices["edges"].dtype == np.int64 and simplices["triangles"].shape[1] == 3


def test_rips_simplices_are_closed_and_agree_with_betti():
    pts = [[0.0, 0.0], [1.0, 0.0], [2.0, 0.0]]
    assert teaching.rips_simplices(pts, 1.0)["edges"].tolist() == [[0, 1], [1, 2]]
    assert len(teaching.rips_simplices(pts, 0.999)["edges"]) == 0
    # Hexagon: a loop once the sides are in, filled once the short diagonals are.
    for r, b1 in [(1.5, 1), (2.5, 0)]:
        s = teaching.rips_simplices(HEXAGON, r)
        n, e = len(HEXAGON), len(s["edges"])
        betti = descriptor_curves(np.c_[HEXAGON, np.zeros(6)], [r])
        assert betti["betti1"][0] == b1
        assert e - n + 1 >= b1  # cycle rank bounds Betti-1
    assert len(teaching.rips_simplices(HEXAGON, 1.5)["triangles"]) == 0


def test_rips_simplices_single_point():
    s = teaching.rips_simplices([[0.0, 0.0, 0.0]], 3.0)
    assert s["edges"].shape == (0, 2) and s["triangles"].shape == (0, 3)


@pytest.mark.parametrize(
    "points, radius",
    [
        (np.zeros((3, 4)), 1.0),
        (np.zeros((0, 2)), 1.0),
        ([[0.0, np.nan]], 1.0),
        ([[0.0, 0.0]], -1.0),
        ([[0.0, 0.0]], np.inf),
    ],
)
def test_rips_simplices_rejects_bad_input(points, radius):
    with pytest.raises(ValueError):
        teaching.rips_simplices(points, radius)


# --------------------------------------------------------------------------- Rips figures


def test_rips_complex_figure_2d():
    fig = teaching.rips_complex_figure(HEXAGON, 1.5, labels=list("abcdef"))
    names = [t.name for t in fig.data]
    assert names == ["triangles", "edges", "points"]
    assert _segment_count(fig.data[1]) == 6
    assert _segment_count(fig.data[0]) == 0
    assert len([s for s in fig.layout.shapes if s.type == "circle"]) == 6
    circle = fig.layout.shapes[0]
    assert circle.x1 - circle.x0 == pytest.approx(1.5)  # diameter r: radius r/2
    assert list(fig.data[2].text) == list("abcdef")
    assert "β0 = 1" in fig.layout.title.text and "β1 = 1" in fig.layout.title.text
    assert fig.layout.yaxis.scaleanchor == "x"
    assert teaching.rips_complex_figure(HEXAGON, 1.5, balls=False).layout.shapes == ()


def test_rips_complex_figure_3d():
    z, pos = benzene()
    fig = teaching.rips_complex_figure(pos, 2.6, layout={"height": 400})
    mesh, edges, points = fig.data
    simplices = teaching.rips_simplices(pos, 2.6)
    assert mesh.type == "mesh3d" and points.type == "scatter3d"
    np.testing.assert_array_equal(np.c_[mesh.i, mesh.j, mesh.k], simplices["triangles"])
    assert _segment_count(edges) == len(simplices["edges"])
    assert fig.layout.height == 400
    assert f"{len(simplices['edges'])} edges" in fig.layout.title.text


def test_rips_complex_figure_rejects_wrong_labels():
    with pytest.raises(ValueError, match="labels"):
        teaching.rips_complex_figure(HEXAGON, 1.0, labels=["a"])


def test_rips_filtration_figure_panels():
    radii = [1.0, 1.5, 2.5]
    fig = teaching.rips_filtration_figure(HEXAGON, radii)
    assert len(fig.data) == 3 * len(radii)
    edges = [t for t in fig.data if t.name == "edges"]
    assert [_segment_count(t) for t in edges] == [
        len(teaching.rips_simplices(HEXAGON, r)["edges"]) for r in radii
    ]
    titles = [a.text for a in fig.layout.annotations]
    assert titles[0].startswith("r = 1<br>") and "β1 = 1" in titles[1]
    assert sum(t.showlegend is True for t in fig.data) == 3


def test_rips_filtration_figure_rejects_3d_and_bad_radii():
    with pytest.raises(ValueError, match="2D"):
        teaching.rips_filtration_figure(benzene()[1], [1.0])
    with pytest.raises(ValueError, match="increasing"):
        teaching.rips_filtration_figure(HEXAGON, [2.0, 1.0])


# --------------------------------------------------------------------------- scale_table


def test_scale_table_values():
    table = teaching.scale_table(
        {"water": water()[1], "benzene": benzene()[1], "chain": chain(8)[1]}, CUTOFFS
    )
    assert list(table.columns) == ["atoms", "connected_at", "diameter", *expert_labels(CUTOFFS)]
    assert table.index.tolist() == ["water", "benzene", "chain"]
    for name, pos in [("water", water()[1]), ("benzene", benzene()[1]), ("chain", chain(8)[1])]:
        dist = pairwise_distances(pos)[np.triu_indices(len(pos), k=1)]
        row = table.loc[name]
        assert row["atoms"] == len(pos)
        assert row["diameter"] == pytest.approx(dist.max())
        for label, cut in zip(expert_labels(CUTOFFS), CUTOFFS, strict=True):
            assert row[label] == pytest.approx(np.mean(dist <= cut))
        # G(r) is connected from connected_at on, and not just below it.
        at = row["connected_at"]
        assert descriptor_curves(pos, [at])["betti0"][0] == 1
        assert descriptor_curves(pos, [at - 1e-6])["betti0"][0] > 1
    assert table.loc["water", expert_labels(CUTOFFS)[0]] == 1.0


def test_scale_table_single_atom_and_errors():
    table = teaching.scale_table({"he": [[0.0, 0.0, 0.0]]}, [2.0])
    assert table.iloc[0].tolist() == [1, 0.0, 0.0, 1.0]
    with pytest.raises(ValueError, match="at least one"):
        teaching.scale_table({})
    with pytest.raises(ValueError, match=r"\[n, 3\]"):
        teaching.scale_table({"flat": [[0.0, 0.0], [1.0, 0.0]]})
    with pytest.raises(ValueError, match="cutoffs"):
        teaching.scale_table({"water": water()[1]}, [-1.0])


# --------------------------------------------------------------------------- gate input


def test_trajectory_heatmap_figure():
    topo = descriptor_trajectories([benzene()[1]], DEFAULT_RADII)  # [1, T, D], normalized
    fig = teaching.trajectory_heatmap_figure(topo)
    heat = fig.data[0]
    np.testing.assert_allclose(np.asarray(heat.z), topo[0].T)
    assert list(heat.y) == [DESCRIPTOR_LABELS[n] for n in DESCRIPTOR_NAMES]
    assert (heat.zmin, heat.zmax) == (0.0, 1.0)
    assert [s.x0 for s in fig.layout.shapes] == CUTOFFS
    raw = np.stack([descriptor_curves(benzene()[1])[n] for n in DESCRIPTOR_NAMES], axis=1)
    assert teaching.trajectory_heatmap_figure(raw, title="raw").data[0].zmax is None
    with pytest.raises(ValueError, match=r"\[T, D\]"):
        teaching.trajectory_heatmap_figure(raw[:, :3])


def test_compare_curves_figure():
    mols = {"water": water()[1], "chain": chain(10)[1]}
    descriptors = ("betti0", "efficiency")
    fig = teaching.compare_curves_figure(mols, descriptors=descriptors)
    assert len(fig.data) == len(mols) * len(descriptors)
    norm = descriptor_curves(chain(10)[1], DEFAULT_RADII, normalize=True)
    np.testing.assert_allclose(fig.data[3].y, norm["efficiency"])
    assert [t.name for t in fig.data if t.showlegend] == ["water", "chain"]
    raw = teaching.compare_curves_figure(mols, descriptors=("wiener",), normalize=False)
    np.testing.assert_allclose(raw.data[1].y, descriptor_curves(chain(10)[1])["wiener"])
    vlines = [s for s in fig.layout.shapes if s.x0 == s.x1]
    assert sorted({s.x0 for s in vlines}) == CUTOFFS
    with pytest.raises(ValueError, match="unknown"):
        teaching.compare_curves_figure(mols, descriptors=("betti2",))
    with pytest.raises(ValueError, match="at least one"):
        teaching.compare_curves_figure({})
