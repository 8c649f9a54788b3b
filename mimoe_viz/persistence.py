"""Persistence figures of one molecule: barcodes and persistence diagrams.

The input is the ``[n, 3]`` (birth, death, dim) diagram of
:func:`~mimoe_core.topology.persistence_diagram`, in Å. Every function returns its figure
and never shows it: plotly functions return a ``plotly.graph_objects.Figure`` and take
``layout`` overrides; the ``*_mpl`` twins draw with matplotlib for print. Essential classes
(death = inf) are drawn to the edge of the view and marked ∞; an empty diagram is said, not
an error. Homology dimensions keep the colours of :data:`mimoe_viz._style.HOMOLOGY_COLORS`,
expert cutoffs those of :func:`mimoe_viz._style.expert_colors`.
"""

from __future__ import annotations

import operator
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import ArrayLike

from mimoe_viz._checks import check_cutoffs
from mimoe_viz._deps import apply_layout, mpl_axes, plotly_go
from mimoe_viz._marks import cutoff_lines_mpl, cutoff_shapes
from mimoe_viz._style import DEFAULT_CUTOFFS, homology_color

if TYPE_CHECKING:
    import plotly.graph_objects as go
    from matplotlib.axes import Axes

__all__ = [
    "barcode_figure",
    "barcode_mpl",
    "persistence_diagram_figure",
    "persistence_diagram_mpl",
]


# --------------------------------------------------------------------------- validation


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


def _interval_text(dim: int, birth: float, death: float) -> str:
    if np.isinf(death):
        return f"H{dim}: [{birth:.3f}, ∞) Å, essential"
    return f"H{dim}: [{birth:.3f}, {death:.3f}) Å, persistence {death - birth:.3f} Å"


def _dim_name(dim: int, count: int) -> str:
    return f"H{dim} ({count})" if count else f"H{dim}: no H{dim} classes"


def _view(
    diagram: ArrayLike,
    max_radius: float | None,
    cutoffs: Sequence[float],
    homology_dimensions: Sequence[int] | None,
) -> tuple[np.ndarray, list[int], float, np.ndarray]:
    """The checked classes in view, the dimensions to draw, ``top`` and the cutoffs [K]."""
    dgm, dims = _select_dims(_check_diagram(diagram), homology_dimensions)
    cuts = check_cutoffs(cutoffs)
    dgm, top = _window(dgm, max_radius, cuts)
    if homology_dimensions is None:
        dims = _present_dims(dgm)  # after the window: no entry for classes out of view
    return dgm, dims, top, cuts


def _note_empty(fig: go.Figure) -> None:
    fig.add_annotation(
        text="empty diagram", x=0.5, y=0.5, xref="paper", yref="paper", showarrow=False
    )


def _note_empty_mpl(ax: Axes) -> None:
    ax.text(0.5, 0.5, "empty diagram", ha="center", va="center", transform=ax.transAxes)


# --------------------------------------------------------------------------- figures


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
    dgm, dims, top, cuts = _view(diagram, max_radius, cutoffs, homology_dimensions)
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
                marker={"color": homology_color(dim)},
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
                    marker={"symbol": "triangle-right", "size": 10, "color": homology_color(dim)},
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
        _note_empty(fig)
    cutoff_shapes(fig, cuts, annotate=False)
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
    dgm, dims, top, _ = _view(diagram, max_radius, cutoffs, homology_dimensions)
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
        color = homology_color(dim)
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
        type="line",
        x0=0,
        x1=top,
        y0=top,
        y1=top,
        line={"color": "#999999", "width": 1, "dash": "dash"},
    )
    fig.add_annotation(
        x=1, xref="paper", y=top, text="∞", showarrow=False, xanchor="left", xshift=4
    )
    if len(dgm) == 0:
        _note_empty(fig)
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
    dgm, dims, top, cuts = _view(diagram, max_radius, cutoffs, homology_dimensions)
    ax = mpl_axes(ax)
    row = 0
    for dim in dims:
        block = dgm[dgm[:, 2] == dim]
        ys = np.arange(row, row + len(block))
        row += len(block)
        ends = np.minimum(block[:, 1], top)
        ax.hlines(
            ys,
            block[:, 0],
            ends,
            colors=homology_color(dim),
            lw=3,
            label=_dim_name(dim, len(block)),
        )
        beyond = block[:, 1] > top
        if beyond.any():
            ax.plot(
                np.full(int(beyond.sum()), top), ys[beyond], ">", color=homology_color(dim), ms=6
            )
    cutoff_lines_mpl(ax, cuts)
    if len(dgm) == 0:
        _note_empty_mpl(ax)
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
    dgm, dims, top, _ = _view(diagram, max_radius, cutoffs, homology_dimensions)
    ax = mpl_axes(ax, figsize=(4.5, 4.5))
    ax.plot([0, top], [0, top], color="#999999", lw=1)
    ax.axhline(top, color="#999999", lw=1, ls="--")
    ax.text(1.01, top, "∞", ha="left", va="center", transform=ax.get_yaxis_transform())
    for dim in dims:
        block = dgm[dgm[:, 2] == dim]
        finite = block[:, 1] <= top
        ax.scatter(
            block[finite, 0],
            block[finite, 1],
            color=homology_color(dim),
            s=20,
            label=_dim_name(dim, len(block)),
        )
        if (~finite).any():
            ax.scatter(
                block[~finite, 0],
                np.full(int((~finite).sum()), top),
                marker="^",
                color=homology_color(dim),
                s=40,
            )
    if len(dgm) == 0:
        _note_empty_mpl(ax)
    pad = 0.04 * top
    ax.set_xlim(-pad, top + pad)
    ax.set_ylim(-pad, top + 2 * pad)
    ax.set_aspect("equal")
    ax.set_xlabel("birth (Å)")
    ax.set_ylabel("death (Å)")
    ax.set_title("Persistence diagram")
    ax.legend(fontsize="small", loc="lower right")
    return ax
