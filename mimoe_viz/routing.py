"""Routing of one molecule: which experts the gate chose, with what weight, what they added.

:func:`alpha_figure` and :func:`contribution_waterfall`, with their ``*_mpl`` twins, read
one entry of a :class:`~mimoe_core.results.PredictionResult` (no model, no torch); a skipped
entry raises ValueError with its reason. Plotly functions take ``layout`` overrides, twins
return a matplotlib Axes, and experts keep their colours from :mod:`mimoe_viz._style`.

The data-set figures (:func:`routing_map`, :func:`expert_usage_figure`,
:func:`alpha_vs_size_figure`, :func:`alpha_vs_descriptor_figure`) live in
:mod:`mimoe_viz.dataset_routing` and the numbers behind them (:func:`expected_cutoff`,
:func:`dominant_expert`, :func:`expert_usage`, :func:`routing_order`) in
:mod:`mimoe_core.analysis.routing`; both are re-exported here, so ``routing.routing_map``
keeps working.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from mimoe_core.results import PredictionResult
from mimoe_viz import dataset_routing
from mimoe_viz._deps import apply_layout, mpl_axes, plotly_go
from mimoe_viz._routing import (
    check_index,
    check_result,
    checked_experts,
    colored_ticks,
    entry_title,
    target_index,
)
from mimoe_viz.dataset_routing import *  # noqa: F403 (re-exported, see the docstring)

if TYPE_CHECKING:
    import plotly.graph_objects as go
    from matplotlib.axes import Axes

__all__ = [
    "alpha_figure",
    "alpha_mpl",
    "contribution_waterfall",
    "contribution_waterfall_mpl",
    *dataset_routing.__all__,
]


# --------------------------------------------------------------------------- per molecule


def alpha_figure(
    result: PredictionResult, index: int, layout: Mapping[str, Any] | None = None
) -> go.Figure:
    """Routing weights of one molecule: a bar per expert, unselected experts at 0.

    Args:
        result: a prediction result.
        index: entry index in ``[0, len(result))``.
        layout: overrides passed to ``Figure.update_layout``; default None.

    Returns:
        A plotly Figure with one ``go.Bar`` trace: x the K expert labels (with cutoffs),
        y alpha [K] of the entry, one expert colour per bar; the title names the entry.

    Raises:
        ValueError: for an index out of range or a skipped entry (with its reason).
        ImportError: if plotly is missing.
    """
    go = plotly_go()
    alpha, cutoffs, labels, colors = checked_experts(result)
    i = check_index(result, index)
    weights = alpha[i]
    fig = go.Figure(
        go.Bar(
            x=labels,
            y=weights,
            marker={"color": colors, "opacity": [1.0 if a > 0 else 0.35 for a in weights]},
            text=[f"{a:.2f}" if a > 0 else "not selected" for a in weights],
            textposition="outside",
            hovertemplate="%{x}<br>α = %{y:.3f}<extra></extra>",
            showlegend=False,
        )
    )
    fig.update_layout(
        title=f"Routing weights · {entry_title(result, i)}",
        xaxis_title="expert (cutoff)",
        yaxis={"title": "routing weight α", "range": [0, 1.1]},
        template="plotly_white",
    )
    return apply_layout(fig, layout)


def _waterfall_steps(
    result: PredictionResult, i: int, t: int
) -> tuple[float, np.ndarray, np.ndarray, float]:
    """(baseline, selected experts [S], their contributions [S], baseline + sum)."""
    alpha, _ = check_result(result)
    baseline = float(result.baseline[t]) if result.baseline else 0.0
    selected = np.flatnonzero(alpha[i] > 0)
    steps = result.contributions_from_baseline()[i, selected, t]
    if not np.all(np.isfinite(steps)):
        bad = [int(e) + 1 for e in selected[~np.isfinite(steps)]]
        raise ValueError(f"entry {i}: selected experts E{bad} have no finite prediction")
    total = baseline + float(steps.sum())
    pred = float(result.prediction[i, t])
    if result.task == "classification":
        ok = np.isclose(1.0 / (1.0 + np.exp(-total)), pred, rtol=1e-4, atol=1e-6)
    else:
        ok = np.isclose(total, pred, rtol=1e-4, atol=1e-6)
    if not ok:
        warnings.warn(
            f"entry {i}: baseline + contributions = {total:.6g} does not reproduce the "
            f"stored prediction {pred:.6g}; the waterfall shows the sum",
            RuntimeWarning,
            stacklevel=3,
        )
    return baseline, selected, steps, total


def contribution_waterfall(
    result: PredictionResult,
    index: int,
    target: int | str = 0,
    layout: Mapping[str, Any] | None = None,
) -> go.Figure:
    r"""How the selected experts move one prediction away from the baseline.

    A ``go.Waterfall`` from ``result.baseline[target]`` through one step per selected
    expert, :math:`\alpha_e (\hat y_e - b)` from
    :meth:`~mimoe_core.results.PredictionResult.contributions_from_baseline`, to the total.
    Because alpha sums to 1, baseline + steps is the prediction (regression, original units)
    or its logit (classification: the axis is the logit and the title states the
    probability). A mismatch with the stored prediction beyond 1e-4 relative warns.

    Args:
        result: a prediction result.
        index: entry index in ``[0, len(result))``.
        target: target index or name; default 0.
        layout: overrides passed to ``Figure.update_layout``; default None.

    Returns:
        A plotly Figure with one Waterfall trace: ``measure`` is ``["absolute",
        "relative" x S, "total"]``, ``y`` is ``[baseline, contributions..., total]`` with
        the total equal to ``y[0] + sum(y[1:-1])``; step bars are labelled with the selected
        experts' labels (tick labels in the expert colours).

    Raises:
        ValueError: for an index or target out of range, a skipped entry, or a selected
            expert without a prediction.
        ImportError: if plotly is missing.
    """
    go = plotly_go()
    _, cutoffs, labels, colors = checked_experts(result)
    i = check_index(result, index)
    t = target_index(result, target)
    baseline, selected, steps, total = _waterfall_steps(result, i, t)
    classification = result.task == "classification"
    name = result.targets[t]
    end = f"logit P({name})" if classification else "prediction"
    x = ["baseline", *[labels[e] for e in selected], end]
    alpha = np.asarray(result.alpha[i], dtype=np.float64)
    hover = [f"baseline b = {baseline:.4g}"]
    hover += [
        f"{labels[e]}<br>α = {alpha[e]:.3f}, expert output {result.expert_predictions[i, e, t]:.4g}"
        f"<br>α (ŷ − b) = {c:+.4g}"
        for e, c in zip(selected, steps, strict=True)
    ]
    hover.append(f"{end} = {total:.4g}")
    fig = go.Figure(
        go.Waterfall(
            x=x,
            y=[baseline, *steps.tolist(), total],
            measure=["absolute", *["relative"] * len(selected), "total"],
            text=[f"{baseline:.3g}", *[f"{c:+.3g}" for c in steps], f"{total:.3g}"],
            textposition="outside",
            hovertext=hover,
            hoverinfo="text",
            connector={"line": {"color": "#999999", "width": 1}},
            totals={"marker": {"color": "#444444"}},
            showlegend=False,
        )
    )
    ticks = [
        "baseline",
        *colored_ticks([labels[e] for e in selected], [colors[e] for e in selected]),
        end,
    ]
    if classification:
        prob = float(result.prediction[i, t])
        title = f"P({name}) = {prob:.3f} (logit {total:+.3f}) · {entry_title(result, i)}"
        ytitle = f"logit P({name})"
    else:
        title = f"{name} = {total:.4g} · {entry_title(result, i)}"
        ytitle = name
    fig.update_layout(
        title=title,
        xaxis={"tickvals": x, "ticktext": ticks, "title": "selected experts"},
        yaxis_title=ytitle,
        template="plotly_white",
    )
    return apply_layout(fig, layout)


# --------------------------------------------------------------------------- matplotlib


def alpha_mpl(result: PredictionResult, index: int, ax: Axes | None = None) -> Axes:
    """Matplotlib twin of :func:`alpha_figure`, for print.

    Args:
        result: a prediction result.
        index: entry index in ``[0, len(result))``.
        ax: Axes to draw on; default None creates a new Figure (without pyplot).

    Returns:
        The matplotlib Axes with K bars (heights alpha [K], expert colours).

    Raises:
        ValueError: for an index out of range or a skipped entry.
        ImportError: if matplotlib is missing.
    """
    alpha, cutoffs, labels, colors = checked_experts(result)
    i = check_index(result, index)
    ax = mpl_axes(ax, figsize=(5.0, 3.2))
    bars = ax.bar(np.arange(len(cutoffs)), alpha[i], color=colors)
    ax.bar_label(bars, labels=[f"{a:.2f}" if a > 0 else "–" for a in alpha[i]], fontsize=8)
    ax.set_xticks(np.arange(len(cutoffs)), labels, rotation=30, ha="right")
    ax.set_ylim(0, 1.1)
    ax.set_ylabel("routing weight α")
    ax.set_title(f"Routing weights · {entry_title(result, i)}", fontsize="medium")
    return ax


def contribution_waterfall_mpl(
    result: PredictionResult, index: int, target: int | str = 0, ax: Axes | None = None
) -> Axes:
    """Matplotlib twin of :func:`contribution_waterfall`, for print.

    Args:
        result: a prediction result.
        index: entry index in ``[0, len(result))``.
        target: target index or name; default 0.
        ax: Axes to draw on; default None creates a new Figure (without pyplot).

    Returns:
        The matplotlib Axes with S + 2 bars: the baseline, one floating bar per selected
        expert (from the running sum, height its contribution) and the total.

    Raises:
        ValueError: as :func:`contribution_waterfall`.
        ImportError: if matplotlib is missing.
    """
    _, cutoffs, labels, colors = checked_experts(result)
    i = check_index(result, index)
    t = target_index(result, target)
    baseline, selected, steps, total = _waterfall_steps(result, i, t)
    ax = mpl_axes(ax, figsize=(5.0, 3.4))
    starts = baseline + np.concatenate(([0.0], np.cumsum(steps)[:-1]))
    names = ["baseline", *[labels[e] for e in selected], "total"]
    bottoms = [0.0, *starts.tolist(), 0.0]
    heights = [baseline, *steps.tolist(), total]
    bar_colors = ["#777777", *[colors[e] for e in selected], "#444444"]
    bars = ax.bar(np.arange(len(names)), heights, bottom=bottoms, color=bar_colors)
    ax.bar_label(
        bars, labels=[f"{baseline:.3g}", *[f"{c:+.3g}" for c in steps], f"{total:.3g}"], fontsize=8
    )
    ax.axhline(0.0, color="#999999", linewidth=0.8)
    ax.set_xticks(np.arange(len(names)), names, rotation=30, ha="right")
    name = result.targets[t]
    ax.set_ylabel(f"logit P({name})" if result.task == "classification" else name)
    ax.set_title(f"Expert contributions · {entry_title(result, i)}", fontsize="medium")
    return ax
