"""Routing over a data set: which experts the gate chose for all the ``ok`` entries.

:func:`routing_map` (alpha of every molecule as a heatmap), :func:`expert_usage_figure`,
:func:`alpha_vs_size_figure` and :func:`alpha_vs_descriptor_figure` (the alpha-weighted
cutoff against size or a descriptor, with Spearman ρ), with ``*_mpl`` twins. The numbers
behind the figures (:func:`expected_cutoff`, :func:`dominant_expert`, :func:`expert_usage`,
:func:`routing_order`, ``SORT_BY``) are computed in :mod:`mimoe_core.analysis.routing` and
re-exported here. Everything is re-exported by :mod:`mimoe_viz.routing`.

Plotly functions return a ``plotly.graph_objects.Figure`` and take ``layout`` overrides;
``*_mpl`` twins return a matplotlib Axes. Experts keep the colours and labels of
:mod:`mimoe_viz._style` everywhere.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from mimoe_core.analysis.routing import (
    SORT_BY,
    descriptor_at,
    dominant_expert,
    expected_cutoff,
    expert_usage,
    routing_order,
)
from mimoe_core.results import PredictionResult
from mimoe_viz._deps import apply_layout, mpl_axes, plotly_go
from mimoe_viz._routing import (
    atom_counts,
    binned_trend,
    check_result,
    checked_experts,
    colored_ticks,
    dominant_groups,
    hover_entry,
    ok_indices,
    spearman,
)
from mimoe_viz._style import BOTTOM_LEGEND, DESCRIPTOR_LABELS, LEGEND_MARGIN

if TYPE_CHECKING:
    import plotly.graph_objects as go
    from matplotlib.axes import Axes

__all__ = [
    "SORT_BY",
    "alpha_vs_descriptor_figure",
    "alpha_vs_size_figure",
    "alpha_vs_size_mpl",
    "dominant_expert",
    "expected_cutoff",
    "expert_usage",
    "expert_usage_figure",
    "expert_usage_mpl",
    "routing_map",
    "routing_map_mpl",
    "routing_order",
]

_TREND_COLOR = "#222222"


# --------------------------------------------------------------------------- figures


def routing_map(
    result: PredictionResult, sort_by: str = "size", layout: Mapping[str, Any] | None = None
) -> go.Figure:
    """Heatmap of the routing weights [molecules x experts] of all ``ok`` entries.

    Args:
        result: a prediction result.
        sort_by: row order, as :func:`routing_order`: ``"size"`` (default), ``"dominant"``
            or ``"input"``; the first row is at the top.
        layout: overrides passed to ``Figure.update_layout``; default None.

    Returns:
        A plotly Figure with one Heatmap trace: ``z`` is alpha[routing_order(result,
        sort_by)], shape [num_ok, K], in [0, 1]; ``x`` the expert labels; ``y`` the row
        positions 0..num_ok-1; hover shows id, SMILES and atom count.

    Raises:
        ValueError: as :func:`routing_order`.
        ImportError: if plotly is missing.
    """
    go = plotly_go()
    alpha, cutoffs, labels, colors = checked_experts(result)
    order = routing_order(result, sort_by)
    z = alpha[order]
    hover = [
        [
            f"{hover_entry(result, m)}<br>{lab}: α = {a:.3f}"
            for lab, a in zip(labels, row, strict=True)
        ]
        for m, row in zip(order, z, strict=True)
    ]
    rows = np.arange(len(order))
    fig = go.Figure(
        go.Heatmap(
            z=z,
            x=labels,
            y=rows,
            zmin=0.0,
            zmax=1.0,
            colorscale="Viridis",
            colorbar={"title": "α"},
            hovertext=hover,
            hoverinfo="text",
        )
    )
    few = len(order) <= 40
    fig.update_layout(
        title=f"Routing map · {len(order)} molecules sorted by {sort_by}",
        xaxis={"tickvals": labels, "ticktext": colored_ticks(labels, colors), "side": "top"},
        yaxis={
            "autorange": "reversed",
            "title": "molecule",
            "tickvals": rows if few else None,
            "ticktext": [result.ids[m] for m in order] if few else None,
            "showticklabels": few,
        },
        template="plotly_white",
        height=int(np.clip(14 * len(order) + 160, 320, 900)),
    )
    return apply_layout(fig, layout)


def expert_usage_figure(
    result: PredictionResult, layout: Mapping[str, Any] | None = None
) -> go.Figure:
    """Per expert: share of molecules that selected it, and its mean routing weight.

    Args:
        result: a prediction result.
        layout: overrides passed to ``Figure.update_layout``; default None.

    Returns:
        A plotly Figure with two grouped Bar traces over the K expert labels, in expert
        colours: "selected by" (y = share of ok molecules with alpha_e > 0) and "mean α"
        (y = mean alpha_e over ok molecules, hatched), as :func:`expert_usage`.

    Raises:
        ValueError: if no entry is ok.
        ImportError: if plotly is missing.
    """
    go = plotly_go()
    _, cutoffs, labels, colors = checked_experts(result)
    share, mean_alpha = expert_usage(result)
    num_ok = int(result.ok.sum())
    fig = go.Figure()
    fig.add_trace(
        go.Bar(
            x=labels,
            y=share,
            name="selected by (share of molecules)",
            marker={"color": colors},
            text=[f"{s:.0%}" for s in share],
            textposition="outside",
            hovertemplate="%{x}<br>selected by %{y:.1%} of molecules<extra></extra>",
        )
    )
    fig.add_trace(
        go.Bar(
            x=labels,
            y=mean_alpha,
            name="mean α",
            marker={"color": colors, "opacity": 0.55, "pattern": {"shape": "/"}},
            text=[f"{a:.2f}" for a in mean_alpha],
            textposition="outside",
            hovertemplate="%{x}<br>mean α = %{y:.3f}<extra></extra>",
        )
    )
    fig.update_layout(
        title=f"Expert usage · {num_ok} molecules",
        barmode="group",
        xaxis_title="expert (cutoff)",
        yaxis={"title": "share / mean weight", "range": [0, 1.1]},
        template="plotly_white",
    )
    return apply_layout(fig, layout)


def _expected_cutoff_scatter(
    result: PredictionResult, x: np.ndarray, ok: np.ndarray, x_title: str, question: str
) -> go.Figure:
    """Expected cutoff of the ok entries against x [num_ok]: dots per dominant expert + trend."""
    go = plotly_go()
    _, cutoffs, labels, colors = checked_experts(result)
    y = expected_cutoff(result)[ok]
    dom = dominant_expert(result)[ok]
    fig = go.Figure()
    for e, mask in dominant_groups(dom, len(cutoffs)):
        fig.add_trace(
            go.Scatter(
                x=x[mask],
                y=y[mask],
                mode="markers",
                marker={"color": colors[e], "size": 7, "opacity": 0.75},
                name=f"dominant {labels[e]}",
                legendgroup="dominant",
                hovertext=[
                    f"{hover_entry(result, m)}<br>expected cutoff {c:.2f} Å"
                    for m, c in zip(ok[mask], y[mask], strict=True)
                ],
                hoverinfo="text",
            )
        )
    tx, ty = binned_trend(x, y)
    fig.add_trace(
        go.Scatter(
            x=tx,
            y=ty,
            mode="lines+markers",
            line={"color": _TREND_COLOR, "width": 2},
            marker={"symbol": "diamond", "size": 8},
            name="binned mean",
            hovertemplate="x = %{x:.3g}<br>mean expected cutoff %{y:.2f} Å<extra></extra>",
        )
    )
    for e, cut in enumerate(cutoffs):
        fig.add_hline(y=cut, line={"color": colors[e], "width": 1, "dash": "dot"}, layer="below")
    rho = spearman(x, y)
    stat = f"Spearman ρ = {rho:+.2f}" if np.isfinite(rho) else "Spearman ρ undefined"
    pad = 0.1 * (cutoffs.max() - cutoffs.min()) + 0.05
    fig.update_layout(
        title=f"{question}<br><sup>{stat}, n = {len(ok)}</sup>",
        xaxis_title=x_title,
        yaxis={
            "title": "expected cutoff Σ α_e c_e (Å)",
            "range": [cutoffs.min() - pad, cutoffs.max() + pad],
        },
        template="plotly_white",
        # plotly's default 450 px and 80 px bottom margin, plus room for the legend below
        height=450 + LEGEND_MARGIN - 80,
        margin={"b": LEGEND_MARGIN},
        legend=BOTTOM_LEGEND,
    )
    return fig


def alpha_vs_size_figure(
    result: PredictionResult, layout: Mapping[str, Any] | None = None
) -> go.Figure:
    r"""Does the gate pick longer cutoffs for larger molecules?

    Each ok molecule is a dot at (atom count, :math:`\sum_e \alpha_e c_e`), coloured by its
    dominant expert; a black line gives the mean expected cutoff per atom count (or per
    equal-count size bin when there are more than 12 distinct sizes); dotted horizontal
    lines mark the expert cutoffs; the subtitle gives the Spearman rank correlation. The
    legend lies below the x-axis title (:data:`mimoe_viz._style.BOTTOM_LEGEND`).

    Args:
        result: a prediction result that kept its structures (atom counts).
        layout: overrides passed to ``Figure.update_layout``; default None.

    Returns:
        A plotly Figure: one marker trace per dominant expert that occurs (x = atom counts,
        y = :func:`expected_cutoff`), then the trend trace ("binned mean").

    Raises:
        ValueError: if no entry is ok or the result kept no structures.
        ImportError: if plotly is missing.
    """
    ok = ok_indices(result)
    sizes = atom_counts(result, "alpha_vs_size_figure")[ok].astype(np.float64)
    fig = _expected_cutoff_scatter(
        result,
        sizes,
        ok,
        "atoms per molecule (with H)",
        "Does the gate pick longer cutoffs for larger molecules?",
    )
    return apply_layout(fig, layout)


def alpha_vs_descriptor_figure(
    result: PredictionResult,
    descriptor: str = "wiener",
    radius: float | None = None,
    layout: Mapping[str, Any] | None = None,
) -> go.Figure:
    r"""Expected cutoff :math:`\sum_e \alpha_e c_e` against one descriptor the gate read.

    The descriptor value is read from ``result.topo`` (the gate's input, normalized if the
    model used normalized curves) at the grid radius nearest to ``radius``. The figure is
    the same as :func:`alpha_vs_size_figure` with that value on x.

    Args:
        result: a prediction result with topo [M, T, D].
        descriptor: one of ``result.descriptor_names`` (default ``"wiener"``).
        radius: radius in Å inside the grid; default None: the middle expert cutoff
            (``sorted(cutoffs)[K // 2]``).
        layout: overrides passed to ``Figure.update_layout``; default None.

    Returns:
        A plotly Figure as :func:`alpha_vs_size_figure`; the x axis names the descriptor
        and the grid radius used.

    Raises:
        ValueError: for an unknown descriptor, a radius outside the grid, topo that is not
            [M, T, D], or no ok entry.
        ImportError: if plotly is missing.
    """
    check_result(result)
    column, used = descriptor_at(result, descriptor, radius)
    ok = ok_indices(result)
    values = column[ok]
    label = DESCRIPTOR_LABELS.get(descriptor, descriptor)
    fig = _expected_cutoff_scatter(
        result,
        values,
        ok,
        f"{label} at r = {used:g} Å (gate input)",
        f"Expected cutoff vs {label} at r = {used:g} Å",
    )
    return apply_layout(fig, layout)


# --------------------------------------------------------------------------- matplotlib


def routing_map_mpl(
    result: PredictionResult, sort_by: str = "size", ax: Axes | None = None
) -> Axes:
    """Matplotlib twin of :func:`routing_map`, for print.

    Args:
        result: a prediction result.
        sort_by: ``"size"`` (default), ``"dominant"`` or ``"input"``, as
            :func:`routing_order`.
        ax: Axes to draw on; default None creates a new Figure (without pyplot).

    Returns:
        The matplotlib Axes holding one image (alpha of the sorted ok entries,
        [num_ok, K], colour range [0, 1]) with a colorbar on its figure.

    Raises:
        ValueError: as :func:`routing_order`.
        ImportError: if matplotlib is missing.
    """
    alpha, cutoffs, labels, colors = checked_experts(result)
    order = routing_order(result, sort_by)
    ax = mpl_axes(ax, figsize=(4.5, 6.0))
    image = ax.imshow(
        alpha[order], aspect="auto", vmin=0.0, vmax=1.0, cmap="viridis", interpolation="nearest"
    )
    ax.set_xticks(np.arange(len(cutoffs)), labels, rotation=30, ha="right")
    for tick, color in zip(ax.get_xticklabels(), colors, strict=True):
        tick.set_color(color)
    if len(order) <= 40:
        ax.set_yticks(np.arange(len(order)), [result.ids[m] for m in order], fontsize=7)
    else:
        ax.set_yticks([])
    ax.set_ylabel(f"molecule (sorted by {sort_by})")
    ax.figure.colorbar(image, ax=ax, label="α")
    return ax


def expert_usage_mpl(result: PredictionResult, ax: Axes | None = None) -> Axes:
    """Matplotlib twin of :func:`expert_usage_figure`, for print.

    Returns:
        The matplotlib Axes with 2K bars: per expert the share of molecules that selected
        it and its mean alpha (:func:`expert_usage`).
    """
    _, cutoffs, labels, colors = checked_experts(result)
    share, mean_alpha = expert_usage(result)
    ax = mpl_axes(ax, figsize=(5.0, 3.2))
    x = np.arange(len(cutoffs))
    ax.bar(x - 0.2, share, width=0.4, color=colors, label="selected by (share)")
    ax.bar(x + 0.2, mean_alpha, width=0.4, color=colors, alpha=0.5, hatch="//", label="mean α")
    ax.set_xticks(x, labels, rotation=30, ha="right")
    ax.set_ylim(0, 1.05)
    ax.legend(fontsize=8)
    ax.set_title(f"Expert usage · {int(ok_indices(result).size)} molecules", fontsize="medium")
    return ax


def alpha_vs_size_mpl(result: PredictionResult, ax: Axes | None = None) -> Axes:
    """Matplotlib twin of :func:`alpha_vs_size_figure`, for print.

    Returns:
        The matplotlib Axes with one scatter per dominant expert (atom count, expected
        cutoff) and the binned-mean trend line.
    """
    _, cutoffs, labels, colors = checked_experts(result)
    ok = ok_indices(result)
    x = atom_counts(result, "alpha_vs_size_mpl")[ok].astype(np.float64)
    y = expected_cutoff(result)[ok]
    dom = dominant_expert(result)[ok]
    ax = mpl_axes(ax, figsize=(5.0, 3.6))
    for e, mask in dominant_groups(dom, len(cutoffs)):
        ax.scatter(
            x[mask], y[mask], s=14, color=colors[e], alpha=0.75, label=f"dominant {labels[e]}"
        )
    tx, ty = binned_trend(x, y)[:2]
    ax.plot(tx, ty, color="#222222", marker="D", markersize=4, label="binned mean")
    ax.set_xlabel("atoms per molecule")
    ax.set_ylabel("expected cutoff Σ α_e c_e (Å)")
    ax.set_title(f"Spearman ρ = {spearman(x, y):.2f}, n = {ok.size}", fontsize="medium")
    ax.legend(fontsize=7)
    return ax
