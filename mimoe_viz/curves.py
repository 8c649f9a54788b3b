"""Per-molecule topology figures: descriptor curves and Betti curves against radius.

Every function returns its figure and never shows it. Plotly functions return a
``plotly.graph_objects.Figure`` and take ``layout`` overrides (a dict passed to
``update_layout``); the ``*_mpl`` twins draw with matplotlib for print. Inputs are the plain
arrays of :mod:`mimoe_core.topology`: the descriptor dict of
:func:`~mimoe_core.topology.descriptor_curves` (or a
:func:`~mimoe_core.topology.betti_curves` array). Radii and cutoffs are in Å. Barcodes and
persistence diagrams live in :mod:`mimoe_viz.persistence`; they are re-exported here, so
``curves.barcode_figure`` keeps working.

Expert cutoffs are drawn in the colours of :func:`mimoe_viz._style.expert_colors`, so an
expert looks the same here as in the routing figures.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import ArrayLike

from mimoe_core.topology import DESCRIPTOR_NAMES
from mimoe_viz._checks import check_cutoffs, check_grid
from mimoe_viz._deps import apply_layout, make_subplots, mpl_figure, plotly_go
from mimoe_viz._marks import cutoff_lines_mpl, cutoff_shapes
from mimoe_viz._style import (
    BOTTOM_LEGEND,
    DEFAULT_CUTOFFS,
    DESCRIPTOR_LABELS,
    HOMOLOGY_COLORS,
    LEGEND_MARGIN,
)
from mimoe_viz.persistence import (
    barcode_figure,
    barcode_mpl,
    persistence_diagram_figure,
    persistence_diagram_mpl,
)

if TYPE_CHECKING:
    import plotly.graph_objects as go
    from matplotlib.figure import Figure

__all__ = [
    "DEFAULT_CUTOFFS",
    "HOMOLOGY_COLORS",
    "barcode_figure",
    "barcode_mpl",
    "descriptor_curves_figure",
    "descriptor_curves_mpl",
    "persistence_diagram_figure",
    "persistence_diagram_mpl",
]

_RAW_COLOR = "#222222"
_NORM_COLOR = "#8c8c8c"
#: Tick values of the normalized (right-hand) axes: even quarters of [0, 1].
NORMALIZED_TICKS = (0.0, 0.25, 0.5, 0.75, 1.0)


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


# --------------------------------------------------------------------------- descriptor curves


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
    ``E1``... above the plot and with their full label in the legend. The right axes tick
    at :data:`NORMALIZED_TICKS` (0, 0.25, ..., 1); the legend is laid out horizontally in
    the bottom margin, below the x-axis title, so it covers no axis title.

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
                range=[-0.05, 1.05],
                tickmode="array",
                tickvals=list(NORMALIZED_TICKS),
                title_text="norm.",
                showgrid=False,
                row=row,
                col=1,
                secondary_y=True,
            )
    fig.update_xaxes(title_text="radius r (Å)", row=rows, col=1)
    cutoff_shapes(fig, cuts)
    fig.update_layout(
        title="Descriptor curves of G(r)",
        height=140 * rows + 120 + LEGEND_MARGIN,
        template="plotly_white",
        hovermode="x unified",
        margin={"t": 80, "b": LEGEND_MARGIN},
        legend=BOTTOM_LEGEND,
    )
    return apply_layout(fig, layout)


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
    for ax, name in zip(axes, names, strict=True):
        ax.step(grid, np.asarray(curves[name], float), where="post", color=_RAW_COLOR, lw=1.5)
        ax.set_ylabel(DESCRIPTOR_LABELS.get(name, name))
        cutoff_lines_mpl(ax, cuts, label=True)
    if normalized is not None:
        for ax, name in zip(axes, names, strict=True):
            twin = ax.twinx()
            twin.step(
                grid,
                np.asarray(normalized[name], float),
                where="post",
                color=_NORM_COLOR,
                lw=1,
                ls="--",
            )
            twin.set_ylim(-0.05, 1.05)
            twin.set_yticks(NORMALIZED_TICKS)
            twin.set_ylabel("norm.", color=_NORM_COLOR)
    axes[-1].set_xlabel("radius r (Å)")
    if len(cuts):
        axes[0].legend(
            fontsize="x-small",
            ncols=min(len(cuts), 5),
            loc="lower left",
            bbox_to_anchor=(0, 1.02),
            frameon=False,
        )
    return fig
