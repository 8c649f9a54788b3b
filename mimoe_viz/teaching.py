"""Teaching figures: a point cloud, its Vietoris-Rips complex, and what the gate reads.

Written for the tutorial on persistent homology and routing. A Vietoris-Rips complex at
scale r has a vertex per point, an edge between points at most r apart (the graph G(r)
of :mod:`mimoe_core.topology`) and a triangle on every three points that are pairwise at
most r apart. Points may be 2D (a drawing on paper) or 3D (atoms, in Å).

Every function returns its figure (or table) and never shows it. Plotly functions take
``layout`` overrides (a dict passed to ``update_layout``). Expert cutoffs keep the colours of
:func:`mimoe_viz._style.expert_colors`. The numbers (:func:`rips_simplices`,
:func:`scale_table`) are computed in :mod:`mimoe_core.analysis.topology` and re-exported here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import ArrayLike

from mimoe_core.analysis.topology import rips_simplices, scale_table
from mimoe_core.analysis.validation import as_3d, check_points
from mimoe_core.topology import DEFAULT_RADII, DESCRIPTOR_NAMES, descriptor_curves
from mimoe_viz._checks import check_cutoffs, check_grid, check_radius
from mimoe_viz._deps import apply_layout, make_subplots, plotly_go
from mimoe_viz._marks import cutoff_vlines
from mimoe_viz._style import DEFAULT_CUTOFFS, DESCRIPTOR_LABELS, SERIES

if TYPE_CHECKING:
    import plotly.graph_objects as go

__all__ = [
    "compare_curves_figure",
    "rips_complex_figure",
    "rips_filtration_figure",
    "rips_simplices",
    "scale_table",
    "trajectory_heatmap_figure",
]

_POINT_COLOR = "#222222"
_EDGE_COLOR = "#2166ac"
_TRIANGLE_COLOR = "rgba(178, 24, 43, 0.25)"
_BALL_COLOR = "rgba(33, 102, 172, 0.08)"
# The fixed styling of each trace family; the calls below add data, names and sizes.
_BALL = {"type": "circle", "fillcolor": _BALL_COLOR, "line": {"color": "#9ecae1", "width": 1}}
_TRIANGLES_2D = {
    "mode": "lines",
    "fill": "toself",
    "fillcolor": _TRIANGLE_COLOR,
    "line": {"width": 0},
}
_TRIANGLES_3D = {"color": "#b2182b", "opacity": 0.25, "name": "triangles", "showlegend": True}
_EDGES = {"mode": "lines", "hoverinfo": "skip"}
_POINTS_2D = {
    "textposition": "top center",
    "marker": {"color": _POINT_COLOR, "size": 9},
    "hovertemplate": "(%{x:.2f}, %{y:.2f})<extra></extra>",
}
# Molecules in comparison figures: the first eight series colours (a ninth molecule reuses
# the first), apart from the expert palette.
_SERIES = SERIES[:8]


# --------------------------------------------------------------------------- validation


def _check_labels(labels: Sequence[str] | None, n: int) -> list[str] | None:
    if labels is None:
        return None
    out = [str(x) for x in labels]
    if len(out) != n:
        raise ValueError(f"labels has {len(out)} entries, expected one per point ({n})")
    return out


# --------------------------------------------------------------------------- Rips figures


def _segments(points: np.ndarray, pairs: np.ndarray, dims: int) -> list[list[float | None]]:
    """Coordinate lists of line segments separated by None, one list per axis."""
    axes: list[list[float | None]] = [[] for _ in range(dims)]
    for i, j in pairs:
        for d in range(dims):
            axes[d] += [float(points[i, d]), float(points[j, d]), None]
    return axes


def _add_complex_2d(
    fig: go.Figure,
    pts: np.ndarray,
    r: float,
    simplices: dict,
    labels: list[str] | None,
    balls: bool,
    row: int | None,
    col: int | None,
    legend: bool,
) -> None:
    go = plotly_go()
    where = {"row": row, "col": col} if row is not None else {}
    if balls and r > 0:
        for x, y in pts:
            h = r / 2
            fig.add_shape(x0=x - h, x1=x + h, y0=y - h, y1=y + h, layer="below", **_BALL, **where)

    def add(name: str, x: Any, y: Any, **style: Any) -> None:
        trace = go.Scatter(x=x, y=y, name=name, legendgroup=name, showlegend=legend, **style)
        fig.add_trace(trace, **where)

    tx: list[float | None] = []
    ty: list[float | None] = []
    for tri in simplices["triangles"]:
        corners = pts[list(tri) + [tri[0]]]
        tx += corners[:, 0].tolist() + [None]
        ty += corners[:, 1].tolist() + [None]
    add("triangles", tx, ty, hoverinfo="skip", **_TRIANGLES_2D)
    ex, ey = _segments(pts, simplices["edges"], 2)
    add("edges", ex, ey, line={"color": _EDGE_COLOR, "width": 2}, **_EDGES)
    mode = "markers+text" if labels else "markers"
    add("points", pts[:, 0], pts[:, 1], mode=mode, text=labels, **_POINTS_2D)


def _summary(pts: np.ndarray, r: float, simplices: dict) -> str:
    curves = descriptor_curves(as_3d(pts), [r])
    b0, b1 = int(curves["betti0"][0]), int(curves["betti1"][0])
    return (
        f"r = {r:g} · {len(simplices['edges'])} edges · {len(simplices['triangles'])} "
        f"triangles · β0 = {b0} · β1 = {b1}"
    )


def rips_complex_figure(
    points: ArrayLike,
    radius: float,
    labels: Sequence[str] | None = None,
    balls: bool = True,
    layout: Mapping[str, Any] | None = None,
) -> go.Figure:
    """A point cloud with its Vietoris-Rips complex at one scale: points, edges, triangles.

    2D points are drawn on equal axes with a disc of radius r/2 around each point (two discs
    touch exactly when their points are joined); 3D points as a rotatable scene with the
    triangles as a translucent mesh. The title gives the counts and Betti numbers of
    :func:`mimoe_core.topology.descriptor_curves` at r.

    Args:
        points: [n, 2] or [n, 3] coordinates (Å for atoms).
        radius: the scale r, finite and >= 0.
        labels: optional text per point (e.g. element symbols); default None.
        balls: draw the r/2 discs (2D only); default True.
        layout: overrides passed to ``Figure.update_layout``; default None.

    Returns:
        A plotly Figure with three traces in order: triangles (2D: one filled Scatter;
        3D: one Mesh3d), edges (one line trace, segments separated by None) and points.

    Raises:
        ValueError: as :func:`rips_simplices`, or labels of the wrong length.
        ImportError: if plotly is missing.
    """
    go = plotly_go()
    pts = check_points(points)
    r = check_radius(radius)
    names = _check_labels(labels, pts.shape[0])
    simplices = rips_simplices(pts, r)
    title = f"Vietoris-Rips complex · {_summary(pts, r, simplices)}"
    fig = go.Figure()
    if pts.shape[1] == 2:
        _add_complex_2d(fig, pts, r, simplices, names, balls, None, None, True)
        fig.update_yaxes(scaleanchor="x", scaleratio=1)
        fig.update_layout(title=title, template="plotly_white", width=560, height=520)
        return apply_layout(fig, layout)
    x, y, z = pts.T
    i, j, k = simplices["triangles"].T
    fig.add_trace(go.Mesh3d(x=x, y=y, z=z, i=i, j=j, k=k, hoverinfo="skip", **_TRIANGLES_3D))
    ex, ey, ez = _segments(pts, simplices["edges"], 3)
    line = {"color": _EDGE_COLOR, "width": 4}
    fig.add_trace(go.Scatter3d(x=ex, y=ey, z=ez, name="edges", line=line, **_EDGES))
    mode = "markers+text" if names else "markers"
    marker = {"color": _POINT_COLOR, "size": 5}
    fig.add_trace(go.Scatter3d(x=x, y=y, z=z, mode=mode, text=names, marker=marker, name="points"))
    hidden = {"visible": False}
    extent = np.ptp(pts, axis=0)
    box = np.maximum(extent, 0.1 * extent.max() + 1e-9) / (extent.max() + 1e-9)
    scene = {
        "aspectmode": "manual",
        "aspectratio": dict(zip("xyz", (1.8 * box).tolist(), strict=True)),
        "xaxis": hidden,
        "yaxis": hidden,
        "zaxis": hidden,
        # Seen from above (z), orthographic: a planar ring reads as on paper; drag to rotate.
        "camera": {
            "eye": {"x": 0.0, "y": 0.0, "z": 2.0},
            "up": {"x": 0, "y": 1, "z": 0},
            "projection": {"type": "orthographic"},
        },
    }
    fig.update_layout(
        title=title,
        template="plotly_white",
        height=520,
        scene=scene,
        margin={"t": 60, "b": 10, "l": 10, "r": 10},
    )
    return apply_layout(fig, layout)


def rips_filtration_figure(
    points: ArrayLike,
    radii: Sequence[float],
    labels: Sequence[str] | None = None,
    balls: bool = True,
    layout: Mapping[str, Any] | None = None,
) -> go.Figure:
    """The Vietoris-Rips filtration of a 2D point cloud: one panel per scale, side by side.

    Each panel is :func:`rips_complex_figure` at one radius, titled with its edge and
    triangle counts and Betti numbers, so the complex is seen to grow: components merge
    (β0 falls), a loop opens (β1 = 1) and is filled by triangles (β1 back to 0).

    Args:
        points: [n, 2] coordinates.
        radii: the scales, strictly increasing, at least one.
        labels: optional text per point; default None.
        balls: draw the r/2 discs; default True.
        layout: overrides passed to ``Figure.update_layout``; default None.

    Returns:
        A plotly Figure with one column per radius and three traces per panel
        (triangles, edges, points), in radius order.

    Raises:
        ValueError: for points that are not [n, 2] (use :func:`rips_complex_figure` or
            :func:`mimoe_viz.notebook.show_molecule` for 3D), invalid radii or labels.
        ImportError: if plotly is missing.
    """
    pts = check_points(points)
    if pts.shape[1] != 2:
        raise ValueError(
            "rips_filtration_figure draws 2D points [n, 2]; for 3D use "
            "rips_complex_figure or mimoe_viz.notebook.show_molecule"
        )
    grid = check_grid(radii)
    names = _check_labels(labels, pts.shape[0])
    all_simplices = [rips_simplices(pts, r) for r in grid]
    titles = [
        _summary(pts, r, s).replace(" · ", "<br>", 1)
        for r, s in zip(grid, all_simplices, strict=True)
    ]
    fig = make_subplots(rows=1, cols=len(grid), subplot_titles=titles, horizontal_spacing=0.03)
    for c, (r, simplices) in enumerate(zip(grid, all_simplices, strict=True), start=1):
        _add_complex_2d(fig, pts, float(r), simplices, names, balls, 1, c, c == len(grid))
        fig.update_xaxes(showticklabels=False, row=1, col=c)
        fig.update_yaxes(
            showticklabels=False, scaleanchor=f"x{'' if c == 1 else c}", scaleratio=1, row=1, col=c
        )
    pad = float(grid[-1]) / 2 + 0.2
    fig.update_xaxes(range=[pts[:, 0].min() - pad, pts[:, 0].max() + pad])
    fig.update_yaxes(range=[pts[:, 1].min() - pad, pts[:, 1].max() + pad])
    fig.update_annotations(font_size=11)
    fig.update_layout(
        title="Vietoris-Rips filtration",
        template="plotly_white",
        height=360,
        margin={"t": 110},
        legend={"orientation": "h", "y": -0.05},
    )
    return apply_layout(fig, layout)


# --------------------------------------------------------------------------- gate input


def trajectory_heatmap_figure(
    topo: ArrayLike,
    radii: ArrayLike = DEFAULT_RADII,
    names: Sequence[str] = DESCRIPTOR_NAMES,
    cutoffs: Sequence[float] = DEFAULT_CUTOFFS,
    title: str | None = None,
    layout: Mapping[str, Any] | None = None,
) -> go.Figure:
    """The gate's input for one molecule: its [T, D] descriptor trajectory as a heatmap.

    Rows are descriptors, columns radii; expert cutoffs are dotted vertical lines. For
    normalized trajectories (every value in [0, 1], as featurization stores them) the
    colour scale is fixed to [0, 1] so molecules compare by colour.

    Args:
        topo: [T, D] (or [1, T, D], e.g. ``data.topo``) values, last axis in ``names`` order.
        radii: the grid in Å, [T]; default :data:`~mimoe_core.topology.DEFAULT_RADII`.
        names: the D descriptor names; default :data:`~mimoe_core.topology.DESCRIPTOR_NAMES`.
        cutoffs: expert cutoffs in Å; default :data:`DEFAULT_CUTOFFS`. Empty: no lines.
        title: figure title; default "What the gate reads: T x D trajectory".
        layout: overrides passed to ``Figure.update_layout``; default None.

    Returns:
        A plotly Figure with one Heatmap trace: ``z`` of shape [D, T] (the transpose of
        ``topo``), ``x`` the radii, ``y`` the descriptor labels.

    Raises:
        ValueError: for a trajectory whose shape does not match [T, D], or invalid radii or
            cutoffs.
        ImportError: if plotly is missing.
    """
    go = plotly_go()
    grid = check_grid(radii)
    cuts = check_cutoffs(cutoffs)
    values = np.asarray(topo, dtype=np.float64)
    if values.ndim == 3 and values.shape[0] == 1:
        values = values[0]
    if values.shape != (len(grid), len(names)):
        raise ValueError(
            f"topo has shape {values.shape}, expected [T, D] = ({len(grid)}, {len(names)})"
        )
    unit = bool(np.all((values >= 0) & (values <= 1)))
    labels = [DESCRIPTOR_LABELS.get(n, n) for n in names]
    fig = go.Figure(
        go.Heatmap(
            z=values.T,
            x=grid,
            y=labels,
            colorscale="Viridis",
            zmin=0.0 if unit else None,
            zmax=1.0 if unit else None,
            colorbar={"title": "value"},
            hovertemplate="r = %{x:.2f} Å<br>%{y} = %{z:.3f}<extra></extra>",
        )
    )
    cutoff_vlines(fig, cuts)
    fig.update_layout(
        title=title or f"What the gate reads: {len(grid)} x {len(names)} trajectory",
        xaxis_title="radius r (Å)",
        yaxis={"autorange": "reversed"},
        template="plotly_white",
        height=320,
        margin={"t": 80},
    )
    return apply_layout(fig, layout)


def compare_curves_figure(
    positions: Mapping[str, ArrayLike],
    radii: ArrayLike = DEFAULT_RADII,
    descriptors: Sequence[str] = ("betti0", "betti1", "wiener", "efficiency"),
    normalize: bool = True,
    cutoffs: Sequence[float] = DEFAULT_CUTOFFS,
    layout: Mapping[str, Any] | None = None,
) -> go.Figure:
    """Descriptor curves of several molecules on shared axes, one row per descriptor.

    With ``normalize=True`` (default) the curves are the size-normalized forms the gate
    reads, so a 3-atom and a 40-atom molecule share one [0, 1] scale.

    Args:
        positions: molecule name -> coordinates [n, 3] in Å.
        radii: the grid in Å, [T]; default :data:`~mimoe_core.topology.DEFAULT_RADII`.
        descriptors: names from :data:`~mimoe_core.topology.DESCRIPTOR_NAMES`, one row each;
            default Betti-0, Betti-1, Wiener and efficiency.
        normalize: plot the normalized forms; default True.
        cutoffs: expert cutoffs in Å drawn as dotted lines; default :data:`DEFAULT_CUTOFFS`.
        layout: overrides passed to ``Figure.update_layout``; default None.

    Returns:
        A plotly Figure with len(positions) x len(descriptors) step-line traces, molecule
        by molecule in row order (one legend entry per molecule).

    Raises:
        ValueError: for no molecules or descriptors, an unknown descriptor, or invalid
            coordinates, radii or cutoffs.
        ImportError: if plotly is missing.
    """
    go = plotly_go()
    grid = check_grid(radii)
    cuts = check_cutoffs(cutoffs)
    if not positions or not descriptors:
        raise ValueError("compare_curves_figure needs at least one molecule and one descriptor")
    unknown = [d for d in descriptors if d not in DESCRIPTOR_NAMES]
    if unknown:
        raise ValueError(f"unknown descriptors {unknown}; known: {list(DESCRIPTOR_NAMES)}")
    rows = len(descriptors)
    fig = make_subplots(rows=rows, cols=1, shared_xaxes=True, vertical_spacing=0.1 / rows)
    for m, (name, pos) in enumerate(positions.items()):
        curves = descriptor_curves(pos, grid, normalize=normalize)
        color = _SERIES[m % len(_SERIES)]
        step = {
            "mode": "lines",
            "line": {"color": color, "shape": "hv", "width": 2},
            "name": str(name),
            "legendgroup": str(name),
            "hovertemplate": f"{name}<br>r = %{{x:.2f}} Å<br>%{{y:.3f}}<extra></extra>",
        }
        for row, desc in enumerate(descriptors, start=1):
            trace = go.Scatter(x=grid, y=curves[desc], showlegend=row == 1, **step)
            fig.add_trace(trace, row=row, col=1)
    for row, desc in enumerate(descriptors, start=1):
        label = DESCRIPTOR_LABELS.get(desc, desc)
        fig.update_yaxes(title_text=f"{label}{' (norm.)' if normalize else ''}", row=row, col=1)
    fig.update_xaxes(title_text="radius r (Å)", row=rows, col=1)
    cutoff_vlines(fig, cuts, rows=rows)
    kind = "normalized descriptor curves" if normalize else "descriptor curves"
    fig.update_layout(
        title=f"Molecules compared: {kind}",
        template="plotly_white",
        height=150 * rows + 140,
        hovermode="x unified",
        margin={"t": 90},
    )
    return apply_layout(fig, layout)
