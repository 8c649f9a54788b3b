"""Per-molecule topology figures: descriptor curves, Betti curves, barcodes and diagrams.

Every function returns its figure and never shows it. Plotly functions return a
``plotly.graph_objects.Figure`` and take ``layout`` overrides (a dict passed to
``update_layout``); the ``*_mpl`` twins draw with matplotlib for print. Inputs are the plain
arrays of :mod:`mimoe_core.topology`: the descriptor dict of
:func:`~mimoe_core.topology.descriptor_curves` and the ``[n, 3]`` (birth, death, dim) diagram
of :func:`~mimoe_core.topology.persistence_diagram`. Radii and cutoffs are in Å.

Expert cutoffs are drawn in the colours of :func:`mimoe_viz._style.expert_colors`, so an
expert looks the same here as in the routing figures.
"""

from __future__ import annotations

import operator
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import ArrayLike

from mimoe_core.topology import DEFAULT_RADII, DESCRIPTOR_NAMES, descriptor_curves
from mimoe_viz._checks import check_cutoffs, check_grid
from mimoe_viz._deps import apply_layout, make_subplots, mpl_axes, mpl_figure, plotly_go
from mimoe_viz._style import DEFAULT_CUTOFFS, DESCRIPTOR_LABELS, expert_colors, expert_labels

if TYPE_CHECKING:
    import plotly.graph_objects as go
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = [
    "DEFAULT_CUTOFFS",
    "HOMOLOGY_COLORS",
    "barcode_figure",
    "barcode_mpl",
    "betti_curves_figure",
    "descriptor_curves_figure",
    "descriptor_curves_from_pos",
    "descriptor_curves_mpl",
    "persistence_diagram_figure",
    "persistence_diagram_mpl",
]


#: Colour per homology dimension (H0, H1, H2), chosen apart from the expert palette.
HOMOLOGY_COLORS: dict[int, str] = {0: "#2166ac", 1: "#b2182b", 2: "#4d4d4d"}

_RAW_COLOR = "#222222"
_NORM_COLOR = "#8c8c8c"


# --------------------------------------------------------------------------- validation


def _check_curves(curves: Mapping[str, ArrayLike], steps: int, what: str) -> list[str]:
    """Names of ``curves`` in DESCRIPTOR_NAMES order, after checking keys and shapes."""
    if not isinstance(curves, Mapping) or not curves:
        raise ValueError(f"{what} must be a non-empty dict of descriptor curves")
    unknown = sorted(set(curves) - set(DESCRIPTOR_NAMES))
    if unknown:
        raise ValueError(f"{what} has unknown descriptors {unknown}; known: {DESCRIPTOR_NAMES}")
    for name, values in curves.items():
        shape = np.shape(values)
        if shape != (steps,):
            raise ValueError(f"{what}[{name!r}] has shape {shape}, expected [T] = ({steps},)")
    return [name for name in DESCRIPTOR_NAMES if name in curves]


def _check_diagram(diagram: ArrayLike) -> np.ndarray:
    """Validated [n, 3] float array (birth, death, dim), sorted by dim, birth, death."""
    dgm = np.asarray(diagram, dtype=np.float64)
    if dgm.size == 0:
        return np.empty((0, 3))
    if dgm.ndim != 2 or dgm.shape[1] != 3:
        raise ValueError(f"diagram must have shape [n, 3] (birth, death, dim), got {dgm.shape}")
    birth, death, dim = dgm.T
    if not np.all(np.isfinite(birth)):
        raise ValueError("diagram has non-finite births")
    if np.any(np.isnan(death)) or np.any(death < birth):
        raise ValueError("diagram deaths must be >= births (inf for essential classes)")
    if np.any(dim < 0) or np.any(dim != np.round(dim)):
        raise ValueError(f"diagram dims must be integers >= 0, got {np.unique(dim).tolist()}")
    return dgm[np.lexsort((death, birth, dim))]


def _window(
    dgm: np.ndarray, max_radius: float | None, cutoffs: np.ndarray
) -> tuple[np.ndarray, float]:
    """The classes born by ``top`` and ``top``, where infinite deaths are drawn.

    ``top`` is ``max_radius``, or by default 1.1 times the largest of the finite values and
    the largest cutoff (1.0 if all are 0).
    """
    if max_radius is None:
        finite = dgm[:, :2][np.isfinite(dgm[:, :2])]
        top = max(float(finite.max()) if finite.size else 0.0, float(cutoffs.max(initial=0.0)))
        top = 1.1 * top if top > 0 else 1.0
    elif not np.isfinite(max_radius) or max_radius <= 0:
        raise ValueError(f"max_radius must be finite and > 0 (Å), got {max_radius}")
    else:
        top = float(max_radius)
    return dgm[dgm[:, 0] <= top], top


def _present_dims(dgm: np.ndarray) -> list[int]:
    return sorted({0, 1} | {int(d) for d in dgm[:, 2]})


def _select_dims(
    dgm: np.ndarray, homology_dimensions: Sequence[int] | None
) -> tuple[np.ndarray, list[int]]:
    """Rows of the kept dimensions and the dimensions to draw.

    None keeps H0 and H1 always (an empty one still gets a legend entry) and any higher
    dimension present.
    """
    if homology_dimensions is None:
        return dgm, _present_dims(dgm)
    try:
        dims = sorted({operator.index(d) for d in homology_dimensions})
    except TypeError:
        dims = []
    if not dims or dims[0] < 0:
        raise ValueError(
            f"homology_dimensions must be non-empty integers >= 0, got {homology_dimensions}"
        )
    return dgm[np.isin(dgm[:, 2], dims)], dims


def _dim_color(dim: int) -> str:
    return HOMOLOGY_COLORS.get(dim, "#000000")


def _interval_text(dim: int, birth: float, death: float) -> str:
    if np.isinf(death):
        return f"H{dim}: [{birth:.3f}, ∞) Å, essential"
    return f"H{dim}: [{birth:.3f}, {death:.3f}) Å, persistence {death - birth:.3f} Å"


def _dim_name(dim: int, count: int) -> str:
    return f"H{dim} ({count})" if count else f"H{dim}: no H{dim} classes"


# --------------------------------------------------------------------------- descriptor curves


def _cutoff_shapes(fig: go.Figure, cutoffs: np.ndarray, annotate: bool = True) -> None:
    """One thin vertical line per expert cutoff over the whole plot, in the expert colour."""
    colors, labels = expert_colors(len(cutoffs)), expert_labels(cutoffs)
    for e, cut in enumerate(cutoffs):
        fig.add_shape(
            type="line",
            x0=cut,
            x1=cut,
            xref="x",
            y0=0,
            y1=1,
            yref="paper",
            line={"color": colors[e], "width": 1.5, "dash": "dot"},
            name=labels[e],
            legendgroup="experts",
            legendgrouptitle_text="expert cutoffs" if e == 0 else None,
            showlegend=True,
            layer="below",
        )
        if annotate:
            fig.add_annotation(
                x=cut,
                xref="x",
                y=1.0,
                yref="paper",
                yanchor="bottom",
                text=f"E{e + 1}",
                showarrow=False,
                font={"color": colors[e], "size": 11},
            )


def descriptor_curves_figure(
    curves: Mapping[str, ArrayLike],
    radii: ArrayLike,
    cutoffs: Sequence[float] = DEFAULT_CUTOFFS,
    normalized: Mapping[str, ArrayLike] | None = None,
    layout: Mapping[str, Any] | None = None,
) -> go.Figure:
    """Descriptor trajectories against radius, one subplot row per descriptor (shared x).

    Each row shows a raw curve of :func:`mimoe_core.topology.descriptor_curves` as a step
    line (G(r) only changes at atom-pair distances, so the value at a grid radius holds up
    to the next one). With ``normalized`` the normalized curve of the same descriptor is
    drawn in the same row as a dashed grey line on a secondary y axis fixed to [0, 1], so
    raw counts and the gate's [0, 1] input read side by side in static exports too. Expert
    cutoffs are thin dotted vertical lines across all rows in the expert colours, labelled
    ``E1``... above the plot and with their full label in the legend.

    Args:
        curves: raw descriptor curves keyed by names from
            :data:`~mimoe_core.topology.DESCRIPTOR_NAMES` (all five or a subset), each [T].
        radii: the filtration grid in Å, [T], strictly increasing.
        cutoffs: expert cutoffs in Å, [K]; default :data:`DEFAULT_CUTOFFS`. Empty: no lines.
        normalized: optional normalized curves (``normalize=True``) with the same keys,
            each [T]; default None.
        layout: overrides passed to ``Figure.update_layout``; default None.

    Returns:
        A plotly Figure with one raw trace per descriptor (plus one normalized trace each
        when ``normalized`` is given), rows in DESCRIPTOR_NAMES order, and one line shape
        per cutoff.

    Raises:
        ValueError: for unknown descriptor names, curves that are not [T], mismatched keys
            between ``curves`` and ``normalized``, or invalid radii or cutoffs.
        ImportError: if plotly is missing.
    """
    go = plotly_go()
    grid = check_grid(radii)
    cuts = check_cutoffs(cutoffs)
    names = _check_curves(curves, len(grid), "curves")
    if normalized is not None:
        norm_names = _check_curves(normalized, len(grid), "normalized")
        if norm_names != names:
            raise ValueError(
                f"normalized has descriptors {norm_names}, curves has {names}: they must match"
            )
    rows = len(names)
    fig = make_subplots(
        rows=rows,
        cols=1,
        shared_xaxes=True,
        vertical_spacing=0.12 / rows,
        specs=[[{"secondary_y": normalized is not None}] for _ in names],
    )
    for row, name in enumerate(names, start=1):
        label = DESCRIPTOR_LABELS.get(name, name)
        fig.add_trace(
            go.Scatter(
                x=grid,
                y=np.asarray(curves[name], dtype=np.float64),
                mode="lines",
                line={"color": _RAW_COLOR, "shape": "hv", "width": 2},
                name="raw",
                legendgroup="raw",
                showlegend=row == 1,
                hovertemplate=f"r = %{{x:.2f}} Å<br>{label} = %{{y:.4g}}<extra>raw</extra>",
            ),
            row=row,
            col=1,
            **({"secondary_y": False} if normalized is not None else {}),
        )
        fig.update_yaxes(title_text=label, row=row, col=1, secondary_y=False)
        if normalized is not None:
            fig.add_trace(
                go.Scatter(
                    x=grid,
                    y=np.asarray(normalized[name], dtype=np.float64),
                    mode="lines",
                    line={"color": _NORM_COLOR, "shape": "hv", "width": 1.5, "dash": "dash"},
                    name="normalized (right axis)",
                    legendgroup="normalized",
                    showlegend=row == 1,
                    hovertemplate=(
                        f"r = %{{x:.2f}} Å<br>{label} = %{{y:.3f}}<extra>normalized</extra>"
                    ),
                ),
                row=row,
                col=1,
                secondary_y=True,
            )
            fig.update_yaxes(
                range=[-0.05, 1.05], title_text="norm.", showgrid=False, row=row, col=1,
                secondary_y=True,
            )  # fmt: skip
    fig.update_xaxes(title_text="radius r (Å)", row=rows, col=1)
    _cutoff_shapes(fig, cuts)
    fig.update_layout(
        title="Descriptor curves of G(r)",
        height=140 * rows + 120,
        template="plotly_white",
        hovermode="x unified",
        margin={"t": 80},
    )
    return apply_layout(fig, layout)


def descriptor_curves_from_pos(
    pos: ArrayLike,
    radii: ArrayLike = DEFAULT_RADII,
    cutoffs: Sequence[float] = DEFAULT_CUTOFFS,
    layout: Mapping[str, Any] | None = None,
) -> go.Figure:
    """:func:`descriptor_curves_figure` of a point cloud: raw and normalized curves.

    Args:
        pos: atom coordinates in Å, [num_atoms, 3].
        radii: filtration grid in Å, [T]; default :data:`~mimoe_core.topology.DEFAULT_RADII`.
        cutoffs: expert cutoffs in Å, [K]; default :data:`DEFAULT_CUTOFFS`.
        layout: overrides passed to ``Figure.update_layout``; default None.

    Returns:
        The plotly Figure of :func:`descriptor_curves_figure` with ``normalized`` set.

    Raises:
        ValueError: for invalid coordinates or radii (from
            :func:`~mimoe_core.topology.descriptor_curves`) or invalid cutoffs.
    """
    raw = descriptor_curves(pos, radii)
    norm = descriptor_curves(pos, radii, normalize=True)
    return descriptor_curves_figure(raw, radii, cutoffs, normalized=norm, layout=layout)


def descriptor_curves_mpl(
    curves: Mapping[str, ArrayLike],
    radii: ArrayLike,
    cutoffs: Sequence[float] = DEFAULT_CUTOFFS,
    normalized: Mapping[str, ArrayLike] | None = None,
    fig: Figure | None = None,
) -> Figure:
    """Matplotlib twin of :func:`descriptor_curves_figure`, for print.

    One row of axes per descriptor with a shared x axis; raw curves as black steps on the
    left axis, normalized ones (if given) as dashed grey steps on a right twin axis in
    [0, 1]; expert cutoffs as dotted vertical lines in the expert colours, in the legend
    of the top row.

    Args:
        curves: raw descriptor curves keyed by descriptor name, each [T].
        radii: the filtration grid in Å, [T].
        cutoffs: expert cutoffs in Å, [K]; default :data:`DEFAULT_CUTOFFS`.
        normalized: optional normalized curves with the same keys, each [T]; default None.
        fig: a matplotlib Figure to draw into (it gets one subplot per descriptor); default
            None creates a new Figure without pyplot.

    Returns:
        The matplotlib Figure. Its first ``len(curves)`` axes are the descriptor rows (raw
        curves), followed by the twin axes of the normalized curves if any.

    Raises:
        ValueError: as :func:`descriptor_curves_figure`.
        ImportError: if matplotlib is missing.
    """
    grid = check_grid(radii)
    cuts = check_cutoffs(cutoffs)
    names = _check_curves(curves, len(grid), "curves")
    if normalized is not None and _check_curves(normalized, len(grid), "normalized") != names:
        raise ValueError("normalized must have the same descriptors as curves")
    if fig is None:
        fig = mpl_figure(figsize=(6.0, 1.6 * len(names) + 0.8), layout="constrained")
    axes = np.atleast_1d(fig.subplots(len(names), 1, sharex=True, squeeze=False)[:, 0])
    colors, labels = expert_colors(len(cuts)), expert_labels(cuts)
    for ax, name in zip(axes, names, strict=True):
        ax.step(grid, np.asarray(curves[name], float), where="post", color=_RAW_COLOR, lw=1.5)
        ax.set_ylabel(DESCRIPTOR_LABELS.get(name, name))
        for e, cut in enumerate(cuts):
            ax.axvline(cut, color=colors[e], lw=1, ls=":", label=labels[e])
    if normalized is not None:
        for ax, name in zip(axes, names, strict=True):
            twin = ax.twinx()
            twin.step(grid, np.asarray(normalized[name], float), where="post",
                      color=_NORM_COLOR, lw=1, ls="--")  # fmt: skip
            twin.set_ylim(-0.05, 1.05)
            twin.set_ylabel("norm.", color=_NORM_COLOR)
    axes[-1].set_xlabel("radius r (Å)")
    if len(cuts):
        axes[0].legend(fontsize="x-small", ncols=min(len(cuts), 5), loc="lower left",
                       bbox_to_anchor=(0, 1.02), frameon=False)  # fmt: skip
    return fig


def _betti_rows(curves: Mapping[str, ArrayLike] | ArrayLike, steps: int) -> np.ndarray:
    """[2, T] Betti-0 and Betti-1 from a descriptor dict or a ``betti_curves`` array."""
    if isinstance(curves, Mapping):
        missing = [k for k in ("betti0", "betti1") if k not in curves]
        if missing:
            raise ValueError(f"curves lacks {missing}; pass descriptor_curves(...) output")
        rows = np.stack([np.asarray(curves["betti0"], float), np.asarray(curves["betti1"], float)])
    else:
        rows = np.asarray(curves, dtype=np.float64)
        if rows.ndim != 2 or rows.shape[0] < 2:
            raise ValueError(f"curves must be a dict or a [2, T] array, got shape {rows.shape}")
        rows = rows[:2]
    if rows.shape != (2, steps):
        raise ValueError(f"Betti curves have shape {rows.shape}, expected (2, T={steps})")
    return rows


def betti_curves_figure(
    curves: Mapping[str, ArrayLike] | ArrayLike,
    radii: ArrayLike,
    cutoffs: Sequence[float] = DEFAULT_CUTOFFS,
    layout: Mapping[str, Any] | None = None,
) -> go.Figure:
    """Betti-0 and Betti-1 against radius as step lines on one axis, for the dashboard.

    Args:
        curves: a dict with ``"betti0"`` and ``"betti1"`` (each [T], e.g. from
            :func:`~mimoe_core.topology.descriptor_curves`) or an array [2, T] from
            :func:`~mimoe_core.topology.betti_curves` (rows beyond the second are ignored).
        radii: the filtration grid in Å, [T].
        cutoffs: expert cutoffs in Å, [K]; default :data:`DEFAULT_CUTOFFS`.
        layout: overrides passed to ``Figure.update_layout``; default None.

    Returns:
        A plotly Figure with two traces (Betti-0, Betti-1; ``line_shape="hv"``) in the
        colours of :data:`HOMOLOGY_COLORS` and one line shape per cutoff.

    Raises:
        ValueError: for missing Betti curves, shapes other than [T], invalid radii/cutoffs.
        ImportError: if plotly is missing.
    """
    go = plotly_go()
    grid = check_grid(radii)
    cuts = check_cutoffs(cutoffs)
    rows = _betti_rows(curves, len(grid))
    fig = go.Figure()
    for dim in (0, 1):
        fig.add_trace(
            go.Scatter(
                x=grid,
                y=rows[dim],
                mode="lines",
                line_shape="hv",
                line={"color": _dim_color(dim), "width": 2},
                name=f"Betti-{dim}",
                hovertemplate=f"r = %{{x:.2f}} Å<br>β{dim} = %{{y:g}}<extra></extra>",
            )
        )
    _cutoff_shapes(fig, cuts)
    fig.update_layout(
        title="Betti curves",
        xaxis_title="radius r (Å)",
        yaxis_title="Betti number",
        yaxis_rangemode="tozero",
        template="plotly_white",
        hovermode="x unified",
    )
    return apply_layout(fig, layout)


# --------------------------------------------------------------------------- persistence


def barcode_figure(
    diagram: ArrayLike,
    max_radius: float | None = None,
    layout: Mapping[str, Any] | None = None,
    cutoffs: Sequence[float] = DEFAULT_CUTOFFS,
    homology_dimensions: Sequence[int] | None = None,
) -> go.Figure:
    """Persistence barcode: one horizontal bar [birth, death) per class, grouped by dimension.

    Bars are sorted by dimension, then birth, then death, and drawn top to bottom. An
    essential class (death = inf) is drawn up to ``max_radius`` and ends in a right-pointing
    triangle whose hover text reads "∞". H0 and H1 always have a legend entry; an empty one
    is named e.g. "H1: no H1 classes". Expert cutoffs are dotted vertical lines.

    Args:
        diagram: [n, 3] rows (birth, death, dim) in Å, as returned by
            :func:`~mimoe_core.topology.persistence_diagram`; may be empty.
        max_radius: right end of the view in Å, where infinite deaths are drawn; default
            None: 1.1 times the largest of the finite births/deaths and the largest cutoff
            (1.0 if all are 0). With a smaller value (e.g. the end of the filtration grid)
            classes born after it are left out and bars dying after it are cut at it and
            get the end marker; their hover text keeps the true death.
        layout: overrides passed to ``Figure.update_layout``; default None.
        cutoffs: expert cutoffs in Å drawn as vertical lines, [K]; default
            :data:`DEFAULT_CUTOFFS`; empty for none.
        homology_dimensions: dimensions to draw; default None draws H0, H1 and any higher
            dimension present. The 2-skeleton's H2 classes are mostly essential artefacts
            (no tetrahedra fill them) and number in the hundreds for 12 atoms, so a
            dashboard passes ``(0, 1)``.

    Returns:
        A plotly Figure with, per dimension, one horizontal ``go.Bar`` trace (``base`` =
        births, ``x`` = drawn lengths) and, where bars reach past ``max_radius`` (essential
        classes), one marker trace at ``max_radius``.

    Raises:
        ValueError: for a diagram that is not [n, 3], deaths before births, non-integer
            dims, a ``max_radius`` that is not finite and > 0, or empty
            ``homology_dimensions``.
        ImportError: if plotly is missing.
    """
    go = plotly_go()
    dgm, dims = _select_dims(_check_diagram(diagram), homology_dimensions)
    cuts = check_cutoffs(cutoffs)
    dgm, top = _window(dgm, max_radius, cuts)
    if homology_dimensions is None:
        dims = _present_dims(dgm)  # after the window: no entry for classes out of view
    fig = go.Figure()
    row = 0
    for dim in dims:
        block = dgm[dgm[:, 2] == dim]
        births, deaths = block[:, 0], block[:, 1]
        ends = np.minimum(deaths, top)
        ys = np.arange(row, row + len(block))
        row += len(block)
        texts = [_interval_text(dim, b, d) for b, d in zip(births, deaths, strict=True)]
        fig.add_trace(
            go.Bar(
                x=ends - births,
                base=births,
                y=ys,
                orientation="h",
                marker={"color": _dim_color(dim)},
                width=0.7,
                name=_dim_name(dim, len(block)),
                legendgroup=f"H{dim}",
                hovertext=texts,
                hoverinfo="text",
                showlegend=True,
            )
        )
        beyond = deaths > top
        if beyond.any():
            fig.add_trace(
                go.Scatter(
                    x=np.full(int(beyond.sum()), top),
                    y=ys[beyond],
                    mode="markers",
                    marker={"symbol": "triangle-right", "size": 10, "color": _dim_color(dim)},
                    name=f"H{dim} essential (∞)",
                    legendgroup=f"H{dim}",
                    showlegend=False,
                    hovertext=[
                        f"{text} (drawn to {top:.2f} Å)"
                        for text, b in zip(texts, beyond, strict=True)
                        if b
                    ],
                    hoverinfo="text",
                )
            )
    if len(dgm) == 0:
        fig.add_annotation(
            text="empty diagram", x=0.5, y=0.5, xref="paper", yref="paper", showarrow=False
        )
    _cutoff_shapes(fig, cuts, annotate=False)
    fig.update_layout(
        title="Persistence barcode",
        xaxis={"title": "radius r (Å)", "range": [0, top * 1.04]},
        yaxis={"autorange": "reversed", "showticklabels": False, "title": "class"},
        bargap=0.2,
        template="plotly_white",
        height=int(np.clip(16 * len(dgm) + 160, 300, 900)),
    )
    return apply_layout(fig, layout)


def persistence_diagram_figure(
    diagram: ArrayLike,
    max_radius: float | None = None,
    layout: Mapping[str, Any] | None = None,
    cutoffs: Sequence[float] = DEFAULT_CUTOFFS,
    homology_dimensions: Sequence[int] | None = None,
) -> go.Figure:
    """Persistence diagram: (birth, death) points per dimension above the diagonal.

    Essential classes (death = inf) sit on a dashed line at ``death = max_radius`` labelled
    "∞", drawn as upward triangles with hover text "∞" (a finite death beyond
    ``max_radius`` sits there too, its hover text keeps the value). H0 and H1 always have a legend
    entry (an empty one is named e.g. "H1: no H1 classes").

    Args:
        diagram: [n, 3] rows (birth, death, dim) in Å; may be empty.
        max_radius: the height of the "∞" line in Å; default as :func:`barcode_figure`;
            classes born after it are left out.
        layout: overrides passed to ``Figure.update_layout``; default None.
        cutoffs: expert cutoffs in Å, only used for the default ``max_radius``; default
            :data:`DEFAULT_CUTOFFS`.
        homology_dimensions: dimensions to draw; default None as :func:`barcode_figure`.

    Returns:
        A plotly Figure: the first trace is the diagonal from 0 to ``max_radius``, then per
        dimension one marker trace of finite points and, if any, one of essential points.

    Raises:
        ValueError: as :func:`barcode_figure`.
        ImportError: if plotly is missing.
    """
    go = plotly_go()
    dgm, dims = _select_dims(_check_diagram(diagram), homology_dimensions)
    dgm, top = _window(dgm, max_radius, check_cutoffs(cutoffs))
    if homology_dimensions is None:
        dims = _present_dims(dgm)  # after the window: no entry for classes out of view
    fig = go.Figure()
    fig.add_trace(
        go.Scatter(
            x=[0, top],
            y=[0, top],
            mode="lines",
            line={"color": "#999999", "width": 1},
            name="diagonal",
            hoverinfo="skip",
            showlegend=False,
        )
    )
    for dim in dims:
        block = dgm[dgm[:, 2] == dim]
        finite = block[:, 1] <= top
        color = _dim_color(dim)
        fig.add_trace(
            go.Scatter(
                x=block[finite, 0],
                y=block[finite, 1],
                mode="markers",
                marker={"color": color, "size": 8, "opacity": 0.85},
                name=_dim_name(dim, len(block)),
                legendgroup=f"H{dim}",
                hovertext=[_interval_text(dim, b, d) for b, d in block[finite, :2]],
                hoverinfo="text",
            )
        )
        if (~finite).any():
            fig.add_trace(
                go.Scatter(
                    x=block[~finite, 0],
                    y=np.full(int((~finite).sum()), top),
                    mode="markers",
                    marker={"color": color, "size": 11, "symbol": "triangle-up"},
                    name=f"H{dim} essential (∞)",
                    legendgroup=f"H{dim}",
                    showlegend=False,
                    hovertext=[_interval_text(dim, b, d) for b, d in block[~finite, :2]],
                    hoverinfo="text",
                )
            )
    fig.add_shape(
        type="line", x0=0, x1=top, y0=top, y1=top,
        line={"color": "#999999", "width": 1, "dash": "dash"},
    )  # fmt: skip
    fig.add_annotation(
        x=1, xref="paper", y=top, text="∞", showarrow=False, xanchor="left", xshift=4
    )
    if len(dgm) == 0:
        fig.add_annotation(
            text="empty diagram", x=0.5, y=0.5, xref="paper", yref="paper", showarrow=False
        )
    pad = 0.04 * top
    fig.update_layout(
        title="Persistence diagram",
        xaxis={"title": "birth (Å)", "range": [-pad, top + pad]},
        yaxis={"title": "death (Å)", "range": [-pad, top + 2 * pad], "scaleanchor": "x"},
        template="plotly_white",
        width=520,
        height=500,
    )
    return apply_layout(fig, layout)


def barcode_mpl(
    diagram: ArrayLike,
    ax: Axes | None = None,
    max_radius: float | None = None,
    cutoffs: Sequence[float] = DEFAULT_CUTOFFS,
    homology_dimensions: Sequence[int] | None = None,
) -> Axes:
    """Matplotlib twin of :func:`barcode_figure`, for print.

    Args:
        diagram: [n, 3] rows (birth, death, dim) in Å; may be empty.
        ax: Axes to draw on; default None creates a new Figure (without pyplot).
        max_radius: where infinite deaths end, in Å; default as :func:`barcode_figure`.
        cutoffs: expert cutoffs in Å drawn as dotted vertical lines; default
            :data:`DEFAULT_CUTOFFS`.
        homology_dimensions: dimensions to draw; default None as :func:`barcode_figure`.

    Returns:
        The matplotlib Axes: one ``hlines`` collection per dimension (one segment per
        bar), ``">"`` markers at ``max_radius`` for essential classes, one ``axvline`` per
        cutoff.

    Raises:
        ValueError: as :func:`barcode_figure`.
        ImportError: if matplotlib is missing.
    """
    dgm, dims = _select_dims(_check_diagram(diagram), homology_dimensions)
    cuts = check_cutoffs(cutoffs)
    dgm, top = _window(dgm, max_radius, cuts)
    if homology_dimensions is None:
        dims = _present_dims(dgm)  # after the window: no entry for classes out of view
    ax = mpl_axes(ax)
    row = 0
    for dim in dims:
        block = dgm[dgm[:, 2] == dim]
        ys = np.arange(row, row + len(block))
        row += len(block)
        ends = np.minimum(block[:, 1], top)
        ax.hlines(ys, block[:, 0], ends, colors=_dim_color(dim), lw=3,
                  label=_dim_name(dim, len(block)))  # fmt: skip
        beyond = block[:, 1] > top
        if beyond.any():
            ax.plot(np.full(int(beyond.sum()), top), ys[beyond], ">",
                    color=_dim_color(dim), ms=6)  # fmt: skip
    for cut, color in zip(cuts, expert_colors(len(cuts)), strict=True):
        ax.axvline(cut, color=color, lw=1, ls=":")
    if len(dgm) == 0:
        ax.text(0.5, 0.5, "empty diagram", ha="center", va="center", transform=ax.transAxes)
    ax.set_xlim(0, top * 1.04)
    ax.set_ylim(max(row, 1) - 0.5, -0.5)
    ax.set_yticks([])
    ax.set_xlabel("radius r (Å)")
    ax.set_title("Persistence barcode")
    ax.legend(fontsize="small", loc="best")
    return ax


def persistence_diagram_mpl(
    diagram: ArrayLike,
    ax: Axes | None = None,
    max_radius: float | None = None,
    cutoffs: Sequence[float] = DEFAULT_CUTOFFS,
    homology_dimensions: Sequence[int] | None = None,
) -> Axes:
    """Matplotlib twin of :func:`persistence_diagram_figure`, for print.

    Args:
        diagram: [n, 3] rows (birth, death, dim) in Å; may be empty.
        ax: Axes to draw on; default None creates a new Figure (without pyplot).
        max_radius: height of the "∞" line in Å; default as :func:`barcode_figure`.
        cutoffs: expert cutoffs in Å, only used for the default ``max_radius``.
        homology_dimensions: dimensions to draw; default None as :func:`barcode_figure`.

    Returns:
        The matplotlib Axes: the diagonal and the "∞" line (2 lines), then per dimension one
        scatter collection of finite points and, if any, one of essential points (``^``).

    Raises:
        ValueError: as :func:`barcode_figure`.
        ImportError: if matplotlib is missing.
    """
    dgm, dims = _select_dims(_check_diagram(diagram), homology_dimensions)
    dgm, top = _window(dgm, max_radius, check_cutoffs(cutoffs))
    if homology_dimensions is None:
        dims = _present_dims(dgm)  # after the window: no entry for classes out of view
    ax = mpl_axes(ax, figsize=(4.5, 4.5))
    ax.plot([0, top], [0, top], color="#999999", lw=1)
    ax.axhline(top, color="#999999", lw=1, ls="--")
    ax.text(1.01, top, "∞", ha="left", va="center", transform=ax.get_yaxis_transform())
    for dim in dims:
        block = dgm[dgm[:, 2] == dim]
        finite = block[:, 1] <= top
        ax.scatter(block[finite, 0], block[finite, 1], color=_dim_color(dim), s=20,
                   label=_dim_name(dim, len(block)))  # fmt: skip
        if (~finite).any():
            ax.scatter(block[~finite, 0], np.full(int((~finite).sum()), top), marker="^",
                       color=_dim_color(dim), s=40)  # fmt: skip
    if len(dgm) == 0:
        ax.text(0.5, 0.5, "empty diagram", ha="center", va="center", transform=ax.transAxes)
    pad = 0.04 * top
    ax.set_xlim(-pad, top + pad)
    ax.set_ylim(-pad, top + 2 * pad)
    ax.set_aspect("equal")
    ax.set_xlabel("birth (Å)")
    ax.set_ylabel("death (Å)")
    ax.set_title("Persistence diagram")
    ax.legend(fontsize="small", loc="lower right")
    return ax
