import sys

import matplotlib
import numpy as np
import pytest
from conftest import CUTOFFS, benzene, water

from mimoe_core.topology import (
    DEFAULT_RADII,
    DESCRIPTOR_NAMES,
    descriptor_curves,
    persistence_diagram,
)
from mimoe_viz import curves
from mimoe_viz._style import DESCRIPTOR_LABELS, expert_colors, expert_labels

pytest.importorskip("plotly")
matplotlib.use("Agg")


@pytest.fixture
def benzene_curves():
    pos = benzene()[1]
    return descriptor_curves(pos), descriptor_curves(pos, normalize=True)


@pytest.fixture
def benzene_diagram():
    return persistence_diagram(benzene()[1])


def _cutoff_shapes(fig):
    return [s for s in fig.layout.shapes if s.yref == "paper" and s.x0 == s.x1]


# --------------------------------------------------------------------------- descriptor curves


def test_descriptor_curves_figure_traces(benzene_curves):
    raw, _ = benzene_curves
    fig = curves.descriptor_curves_figure(raw, DEFAULT_RADII, CUTOFFS)
    assert len(fig.data) == len(DESCRIPTOR_NAMES)
    for trace, name in zip(fig.data, DESCRIPTOR_NAMES, strict=True):
        np.testing.assert_array_equal(trace.x, DEFAULT_RADII)
        np.testing.assert_array_equal(trace.y, raw[name])
        assert trace.line.shape == "hv"
    titles = [fig.layout[f"yaxis{'' if r == 1 else r}"].title.text for r in range(1, 6)]
    assert titles == [DESCRIPTOR_LABELS[n] for n in DESCRIPTOR_NAMES]
    assert fig.layout.xaxis5.title.text == "radius r (Å)"


def test_descriptor_curves_cutoff_lines(benzene_curves):
    fig = curves.descriptor_curves_figure(benzene_curves[0], DEFAULT_RADII, CUTOFFS)
    shapes = _cutoff_shapes(fig)
    assert [s.x0 for s in shapes] == CUTOFFS
    assert [s.line.color for s in shapes] == expert_colors(len(CUTOFFS))
    assert [s.name for s in shapes] == expert_labels(CUTOFFS)
    assert all(s.y0 == 0 and s.y1 == 1 for s in shapes)
    assert [a.text for a in fig.layout.annotations] == [f"E{e + 1}" for e in range(5)]


def test_descriptor_curves_normalized_on_secondary_axis(benzene_curves):
    raw, norm = benzene_curves
    fig = curves.descriptor_curves_figure(raw, DEFAULT_RADII, CUTOFFS, normalized=norm)
    assert len(fig.data) == 2 * len(DESCRIPTOR_NAMES)
    normalized = [t for t in fig.data if t.legendgroup == "normalized"]
    assert len(normalized) == 5
    for trace, name in zip(normalized, DESCRIPTOR_NAMES, strict=True):
        np.testing.assert_array_equal(trace.y, norm[name])
        assert fig.layout[trace.yaxis.replace("y", "yaxis")].range == (-0.05, 1.05)
    assert sum(bool(t.showlegend) for t in fig.data) == 2


def test_descriptor_curves_subset_and_no_cutoffs(benzene_curves):
    raw = {k: benzene_curves[0][k] for k in ("wiener", "betti0")}
    fig = curves.descriptor_curves_figure(raw, DEFAULT_RADII, cutoffs=())
    assert len(fig.data) == 2
    np.testing.assert_array_equal(fig.data[0].y, raw["betti0"])  # DESCRIPTOR_NAMES order
    assert len(fig.layout.shapes) == 0


def test_descriptor_curves_bad_input(benzene_curves):
    raw, norm = benzene_curves
    with pytest.raises(ValueError, match="unknown descriptors"):
        curves.descriptor_curves_figure({"foo": raw["betti0"]}, DEFAULT_RADII)
    with pytest.raises(ValueError, match="shape"):
        curves.descriptor_curves_figure({"betti0": raw["betti0"][:-1]}, DEFAULT_RADII)
    with pytest.raises(ValueError, match="must match"):
        curves.descriptor_curves_figure(raw, DEFAULT_RADII, normalized={"betti0": norm["betti0"]})
    with pytest.raises(ValueError, match="non-empty dict"):
        curves.descriptor_curves_figure({}, DEFAULT_RADII)
    with pytest.raises(ValueError, match="strictly increasing"):
        curves.descriptor_curves_figure(raw, DEFAULT_RADII[::-1])
    with pytest.raises(ValueError, match="cutoffs"):
        curves.descriptor_curves_figure(raw, DEFAULT_RADII, cutoffs=[-1.0])


def test_descriptor_curves_mpl(benzene_curves):
    from matplotlib.figure import Figure

    raw, norm = benzene_curves
    fig = curves.descriptor_curves_mpl(raw, DEFAULT_RADII, CUTOFFS)
    assert isinstance(fig, Figure)
    assert len(fig.axes) == 5
    for ax, name in zip(fig.axes, DESCRIPTOR_NAMES, strict=True):
        assert len(ax.lines) == 1 + len(CUTOFFS)  # the curve and one line per cutoff
        assert ax.get_ylabel() == DESCRIPTOR_LABELS[name]
        np.testing.assert_array_equal(ax.lines[0].get_ydata(), raw[name])
    colors = [matplotlib.colors.to_hex(line.get_color()) for line in fig.axes[0].lines[1:]]
    assert colors == expert_colors(5)

    target = Figure()
    out = curves.descriptor_curves_mpl(raw, DEFAULT_RADII, CUTOFFS, normalized=norm, fig=target)
    assert out is target
    assert len(target.axes) == 10  # five rows and their twin axes


def test_barcode_benzene(benzene_diagram):
    fig = curves.barcode_figure(benzene_diagram, homology_dimensions=(0, 1))
    bars = [t for t in fig.data if t.type == "bar"]
    assert [t.legendgroup for t in bars] == ["H0", "H1"]
    assert [t.marker.color for t in bars] == [curves.HOMOLOGY_COLORS[0], curves.HOMOLOGY_COLORS[1]]
    top = 1.1 * max(CUTOFFS)  # largest finite value 2.41 Å < largest cutoff
    h0, h1 = bars
    assert len(h0.x) == 12
    ends = np.asarray(h0.base, dtype=float) + np.asarray(h0.x, dtype=float)
    np.testing.assert_allclose(ends[-1], top)  # the essential class, drawn to max_radius
    np.testing.assert_allclose(ends[:-1], benzene_diagram[:11, 1])
    assert "∞" in h0.hovertext[-1]
    # one H1 bar born at the C-C bond
    np.testing.assert_allclose(np.asarray(h1.base, dtype=float), [1.39])
    marker = next(t for t in fig.data if t.type == "scatter")
    assert marker.marker.symbol == "triangle-right"
    np.testing.assert_allclose(marker.x, [top])
    assert "∞" in marker.hovertext[0]
    assert [s.x0 for s in _cutoff_shapes(fig)] == CUTOFFS


def test_barcode_h2_present_by_default(benzene_diagram):
    fig = curves.barcode_figure(benzene_diagram)
    groups = [t.legendgroup for t in fig.data if t.type == "bar"]
    assert groups == ["H0", "H1", "H2"]
    assert fig.layout.height <= 900


def test_barcode_empty_h1_water():
    fig = curves.barcode_figure(persistence_diagram(water()[1]))
    h1 = [t for t in fig.data if t.legendgroup == "H1"]
    assert len(h1) == 1 and len(h1[0].x) == 0
    assert "no H1 classes" in h1[0].name and h1[0].showlegend


def test_barcode_single_atom():
    dgm = persistence_diagram(np.zeros((1, 3)))
    fig = curves.barcode_figure(dgm, max_radius=3.0)
    h0 = fig.data[0]
    assert list(h0.base) == [0.0] and list(h0.x) == [3.0]
    assert fig.data[1].x == (3.0,)


@pytest.mark.parametrize("empty", [np.empty((0, 3)), np.array([]), []])
def test_barcode_and_diagram_empty(empty):
    for fig in (curves.barcode_figure(empty), curves.persistence_diagram_figure(empty)):
        named = [t.name for t in fig.data if t.name != "diagonal"]
        assert named == ["H0: no H0 classes", "H1: no H1 classes"]
        assert "empty diagram" in [a.text for a in fig.layout.annotations]


def test_default_max_radius_beyond_finite_values():
    dgm = np.array([[0.0, 6.0, 0], [0.0, np.inf, 0]])
    fig = curves.barcode_figure(dgm)
    np.testing.assert_allclose(fig.data[1].x, [6.6])
    fig = curves.barcode_figure(dgm, cutoffs=())
    np.testing.assert_allclose(fig.data[1].x, [6.6])


def test_diagram_bad_input():
    with pytest.raises(ValueError, match=r"\[n, 3\]"):
        curves.barcode_figure(np.zeros((4, 2)))
    with pytest.raises(ValueError, match="deaths"):
        curves.persistence_diagram_figure(np.array([[2.0, 1.0, 0]]))
    with pytest.raises(ValueError, match="dims"):
        curves.barcode_mpl(np.array([[0.0, 1.0, 0.5]]))
    with pytest.raises(ValueError, match="max_radius"):
        curves.barcode_figure(np.array([[0.0, 5.0, 0]]), max_radius=np.inf)
    with pytest.raises(ValueError, match="homology_dimensions"):
        curves.barcode_figure(np.array([[0.0, 5.0, 0]]), homology_dimensions=[])


def test_max_radius_below_finite_values_cuts_the_view(benzene_diagram):
    # the dashboard passes the end of the filtration grid; benzene has H2 births up to 4.96 Å
    fig = curves.barcode_figure(benzene_diagram, max_radius=2.0)
    bars = {t.legendgroup: t for t in fig.data if t.type == "bar"}
    h1 = bars["H1"]  # [1.39, 2.41) cut at 2.0 and marked
    np.testing.assert_allclose(np.asarray(h1.base, float) + np.asarray(h1.x, float), [2.0])
    assert "H2" not in bars  # every H2 class is born after 2.0 Å
    marker = next(t for t in fig.data if t.type == "scatter" and t.legendgroup == "H1")
    assert "2.408" in marker.hovertext[0]
    dfig = curves.persistence_diagram_figure(benzene_diagram, max_radius=2.0)
    h1 = [t for t in dfig.data if t.legendgroup == "H1"]
    assert len(h1[0].x) == 0 and list(h1[1].y) == [2.0]
    ax = curves.barcode_mpl(benzene_diagram, max_radius=2.0)
    assert [len(c.get_segments()) for c in ax.collections] == [12, 1]


def test_persistence_diagram_figure(benzene_diagram):
    fig = curves.persistence_diagram_figure(benzene_diagram, max_radius=5.0)
    diag = fig.data[0]
    assert diag.name == "diagonal" and list(diag.x) == [0, 5.0] == list(diag.y)
    h1 = next(t for t in fig.data if t.legendgroup == "H1")
    np.testing.assert_allclose(h1.x, [1.39])
    np.testing.assert_allclose(h1.y, benzene_diagram[benzene_diagram[:, 2] == 1, 1])
    essential = [t for t in fig.data if "essential" in (t.name or "")]
    assert [t.legendgroup for t in essential] == ["H0", "H2"]
    assert all(np.all(np.asarray(t.y) == 5.0) for t in essential)
    assert all("∞" in text for t in essential for text in t.hovertext)
    assert "∞" in [a.text for a in fig.layout.annotations]


def test_persistence_diagram_figure_empty_h1():
    fig = curves.persistence_diagram_figure(persistence_diagram(water()[1]), layout={"width": 300})
    assert fig.layout.width == 300
    h1 = next(t for t in fig.data if t.legendgroup == "H1")
    assert "no H1 classes" in h1.name and len(h1.x) == 0


def test_barcode_mpl(benzene_diagram):
    from matplotlib.axes import Axes

    ax = curves.barcode_mpl(benzene_diagram, homology_dimensions=(0, 1))
    assert isinstance(ax, Axes)
    segments = [len(c.get_segments()) for c in ax.collections]
    assert segments == [12, 1]
    assert len(ax.lines) == 1 + len(CUTOFFS)  # essential markers, cutoff lines
    labels = ax.get_legend_handles_labels()[1]
    assert labels == ["H0 (12)", "H1 (1)"]


def test_barcode_mpl_empty_h1_and_given_ax():
    from matplotlib.figure import Figure

    ax = Figure().add_subplot()
    out = curves.barcode_mpl(persistence_diagram(water()[1]), ax=ax, cutoffs=())
    assert out is ax
    assert [len(c.get_segments()) for c in ax.collections] == [3, 0]
    assert "H1: no H1 classes" in ax.get_legend_handles_labels()[1]
    empty = curves.barcode_mpl(np.empty((0, 3)))
    assert [len(c.get_segments()) for c in empty.collections] == [0, 0]


def test_persistence_diagram_mpl(benzene_diagram):
    ax = curves.persistence_diagram_mpl(benzene_diagram, max_radius=6.0)
    # H0 finite + essential, H1 finite, H2 finite (none) + essential
    sizes = [len(c.get_offsets()) for c in ax.collections]
    assert sizes == [11, 1, 1, 0, 165]
    assert np.all(ax.collections[4].get_offsets()[:, 1] == 6.0)
    single = curves.persistence_diagram_mpl(persistence_diagram(np.zeros((1, 3))))
    assert [len(c.get_offsets()) for c in single.collections] == [0, 1, 0]


@pytest.mark.parametrize(
    ("module", "call"),
    [
        ("plotly.graph_objects", lambda: curves.barcode_figure(np.empty((0, 3)))),
        ("matplotlib.figure", lambda: curves.barcode_mpl(np.empty((0, 3)))),
    ],
)
def test_missing_extra_names_it(monkeypatch, module, call):
    monkeypatch.setitem(sys.modules, module, None)
    with pytest.raises(ImportError, match=r'pip install "mimoe\[viz\]"'):
        call()


def assert_legend_below_the_axes(fig):
    """The legend lies in the bottom margin, under the x-axis title: it covers no axis."""
    legend, margin = fig.layout.legend, fig.layout.margin
    assert legend.orientation == "h" and legend.yref == "container"
    assert legend.yanchor == "bottom" and legend.y == 0
    # tick labels + x title take ~55 px under the plot; three legend rows ~ 3 x 25 px
    assert margin.b >= 55 + 3 * 25
    assert fig.layout.height - margin.b - (margin.t or 100) >= 250  # the plots keep their room


def test_descriptor_curves_legend_below_and_even_normalized_ticks(benzene_curves):
    raw, norm = benzene_curves
    fig = curves.descriptor_curves_figure(raw, DEFAULT_RADII, CUTOFFS, normalized=norm)
    assert_legend_below_the_axes(fig)
    right = [
        fig.layout[a] for a in fig.layout if a.startswith("yaxis") and fig.layout[a].overlaying
    ]
    assert len(right) == 5
    for axis in right:
        assert axis.side == "right" and axis.tickmode == "array"
        assert list(axis.tickvals) == [0, 0.25, 0.5, 0.75, 1]
        assert axis.range == (-0.05, 1.05)
    mpl = curves.descriptor_curves_mpl(raw, DEFAULT_RADII, CUTOFFS, normalized=norm)
    twins = mpl.axes[len(raw) :]
    assert [list(t.get_yticks()) for t in twins] == [[0, 0.25, 0.5, 0.75, 1]] * 5
