"""Training curves of one run: loss, validation metric, expert usage (and learned cutoffs).

The plotly function returns a ``go.Figure`` and takes ``layout`` overrides; its ``*_mpl``
twin draws on a matplotlib ``Figure`` without touching pyplot's global state.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from mimoe_viz._deps import make_subplots, mpl_figure, plotly_go
from mimoe_viz._runs import cutoff_columns, maximized, usage_columns
from mimoe_viz._style import SERIES, expert_colors, expert_labels
from mimoe_viz.run_folder import RunFolder

if TYPE_CHECKING:
    import plotly.graph_objects as go
    from matplotlib.figure import Figure

__all__ = ["training_curves_figure", "training_curves_mpl"]

# The fixed styling of each trace family; the calls add data, names and colours.
_LOSS = {"mode": "lines+markers", "legendgroup": "loss"}
_AUX_LOSS = {
    "name": "aux_loss (right axis)",
    "mode": "lines",
    "line": {"dash": "dot", "color": "#888888"},
    "legendgroup": "loss",
}
_BEST = {"mode": "markers", "marker": {"symbol": "star", "size": 14, "color": "#c44e52"}}
_SKIPPED = {"mode": "markers", "marker": {"symbol": "x", "size": 11, "color": "#c44e52"}}
_USAGE = {"mode": "lines", "legendgroup": "usage"}
# The usage legend names the experts; their cutoff lines share its colours.
_CUTOFF = {"mode": "lines", "legendgroup": "cutoffs", "showlegend": False}


def _history_parts(
    history: pd.DataFrame | RunFolder, cutoffs: Sequence[float] | None
) -> tuple[pd.DataFrame, np.ndarray, str, int | None, list[str], list[str], list[str]]:
    """Validated history, x values, val column, best row, usage columns, labels, colours."""
    if isinstance(history, RunFolder):
        cutoffs = history.cutoffs if cutoffs is None else cutoffs
        history = history.history
    if not isinstance(history, pd.DataFrame):
        raise TypeError(f"history must be a DataFrame or RunFolder, got {type(history).__name__}")
    if history.empty:
        raise ValueError("the history is empty (no epoch was recorded)")
    val_cols = [c for c in history.columns if str(c).startswith("val_")]
    if "loss" not in history.columns or not val_cols:
        raise ValueError(
            f"a history needs a 'loss' column and a 'val_*' column; it has {list(history.columns)}"
        )
    x = history["epoch"].to_numpy() if "epoch" in history.columns else np.arange(len(history))
    val_col = val_cols[0]
    values = history[val_col].to_numpy(dtype=float)
    best = None
    if np.isfinite(values).any():
        best = int(np.nanargmax(values) if maximized(val_col) else np.nanargmin(values))
    usage = usage_columns(history)
    if cutoffs is not None and len(cutoffs) != len(usage):
        raise ValueError(f"{len(cutoffs)} cutoffs given for {len(usage)} usage columns ({usage})")
    labels = (
        expert_labels(cutoffs) if cutoffs is not None else [f"E{e + 1}" for e in range(len(usage))]
    )
    return history, x, val_col, best, usage, labels, expert_colors(len(usage))


def _skipped_points(
    history: pd.DataFrame, x: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Epochs in which the trainer skipped steps (non-finite gradients).

    Returns their x, their loss and how many steps; empty for runs from before the count.
    """
    if "skipped_steps" not in history.columns:
        return x[:0], x[:0], x[:0]
    skipped = history["skipped_steps"].fillna(0).to_numpy(dtype=int)
    hit = skipped > 0
    return x[hit], history["loss"].to_numpy()[hit], skipped[hit]


def training_curves_figure(
    history: pd.DataFrame | RunFolder,
    layout: dict | None = None,
    *,
    cutoffs: Sequence[float] | None = None,
) -> go.Figure:
    """Loss, validation metric and expert usage per epoch, as three stacked panels.

    Top: total and task loss (left axis) and the load-balancing loss (right axis, dotted).
    Middle: the validation metric (the ``val_*`` column) with the best epoch starred (lowest
    for RMSE/MAE, highest for ROC-AUC). Bottom: ``usage_e``, the fraction of training
    molecules routed to expert e in that epoch (the K lines sum to top_k), in expert colours.
    A run with learnable cutoffs (``cutoff_1..K`` columns) gets a fourth panel: each
    expert's cutoff in Å over the epochs. Epochs in which the trainer skipped steps whose
    gradients were not finite (``skipped_steps`` > 0) are crossed on the loss curve.

    Args:
        history: a ``history.csv`` frame with ``loss`` and one ``val_*`` column (``epoch``,
            ``task_loss``, ``aux_loss``, ``usage_1..K`` and ``skipped_steps`` are drawn when
            present), or a
            :class:`RunFolder` (its cutoffs then name the experts).
        layout: overrides passed to ``fig.update_layout``, default None.
        cutoffs: the K expert cutoffs in Å, to label the usage lines; default None
            (``E1..EK``).

    Returns:
        The plotly figure; ``layout.meta`` holds ``best_epoch`` and ``best_value``.

    Raises:
        ValueError: if the history is empty, lacks ``loss`` or a ``val_*`` column, or the
            cutoffs do not match the usage columns.
    """
    go = plotly_go()
    history, x, val_col, best, usage, labels, colors = _history_parts(history, cutoffs)
    metric = val_col[len("val_") :]
    learned = cutoff_columns(history)
    titles = ("training loss", f"validation {metric}", "expert usage")
    rows = 4 if learned else 3
    fig = make_subplots(
        rows=rows,
        cols=1,
        shared_xaxes=True,
        vertical_spacing=0.07 if rows == 3 else 0.06,
        specs=[[{"secondary_y": True}], *([{}] for _ in range(rows - 1))],
        subplot_titles=(*titles, "learned cutoffs")[:rows],
    )
    for col, dash in (("loss", "solid"), ("task_loss", "dash")):
        if col in history.columns:
            line = {"dash": dash, "color": "#333333"}
            trace = go.Scatter(x=x, y=history[col], name=col, line=line, **_LOSS)
            fig.add_trace(trace, row=1, col=1, secondary_y=False)
    if "aux_loss" in history.columns:
        trace = go.Scatter(x=x, y=history["aux_loss"], **_AUX_LOSS)
        fig.add_trace(trace, row=1, col=1, secondary_y=True)
    epochs, losses, skipped = _skipped_points(history, x)
    if len(epochs):
        hover = "epoch %{x}: %{customdata} steps skipped (non-finite gradients)<extra></extra>"
        trace = go.Scatter(
            x=epochs, y=losses, customdata=skipped, name="steps skipped",
            hovertemplate=hover, **_SKIPPED,
        )  # fmt: skip
        fig.add_trace(trace, row=1, col=1, secondary_y=False)
    fig.add_trace(
        go.Scatter(
            x=x, y=history[val_col], name=val_col, mode="lines+markers", line={"color": SERIES[0]}
        ),
        row=2,
        col=1,
    )
    meta: dict[str, Any] = {"best_epoch": None, "best_value": None, "val_metric": val_col}
    if best is not None:
        best_x, best_y = x[best].item(), float(history[val_col].iloc[best])
        meta.update(best_epoch=best_x, best_value=best_y)
        name = f"best epoch ({best_x})"
        hover = f"best epoch %{{x}}<br>{val_col} %{{y:.4g}}<extra></extra>"
        trace = go.Scatter(x=[best_x], y=[best_y], name=name, hovertemplate=hover, **_BEST)
        fig.add_trace(trace, row=2, col=1)
    for col, label, color in zip(usage, labels, colors, strict=True):
        line, hover = {"color": color}, f"{label}: %{{y:.2f}}<extra></extra>"
        trace = go.Scatter(
            x=x, y=history[col], name=label, line=line, hovertemplate=hover, **_USAGE
        )
        fig.add_trace(trace, row=3, col=1)
    fig.update_yaxes(title_text="loss", row=1, col=1, secondary_y=False)
    fig.update_yaxes(title_text="aux loss", row=1, col=1, secondary_y=True, showgrid=False)
    fig.update_yaxes(title_text=metric, row=2, col=1)
    fig.update_yaxes(title_text="fraction routed", rangemode="tozero", row=3, col=1)
    for col, label, color in zip(learned, labels, colors, strict=False):
        line, hover = {"color": color}, f"{label}: %{{y:.3f}} Å<extra></extra>"
        trace = go.Scatter(x=x, y=history[col], line=line, hovertemplate=hover, **_CUTOFF)
        fig.add_trace(trace, row=4, col=1)
    if learned:
        fig.update_yaxes(title_text="cutoff (Å)", row=4, col=1)
    fig.update_xaxes(title_text="epoch", row=rows, col=1)
    height = 720 if rows == 3 else 920
    fig.update_layout(
        height=height, template="plotly_white", meta=meta, legend={"tracegroupgap": 40}
    )
    fig.update_layout(**(layout or {}))
    return fig


def training_curves_mpl(
    history: pd.DataFrame | RunFolder,
    fig: Figure | None = None,
    *,
    cutoffs: Sequence[float] | None = None,
) -> Figure:
    """Matplotlib twin of :func:`training_curves_figure`: three stacked axes.

    Args:
        history: a ``history.csv`` frame or a :class:`RunFolder` (see
            :func:`training_curves_figure`).
        fig: an empty matplotlib figure to draw on, default None (a new 7 x 8 inch one).
        cutoffs: the K expert cutoffs in Å for the usage legend, default None.

    Returns:
        The figure; ``fig.axes`` is ``[loss, val, usage, cutoffs, aux]`` (``cutoffs`` only
        for a run with learnable cutoffs, ``aux`` only with an ``aux_loss`` column).
    """
    history, x, val_col, best, usage, labels, colors = _history_parts(history, cutoffs)
    learned = cutoff_columns(history)
    if fig is None:
        fig = mpl_figure(figsize=(7, 10 if learned else 8), layout="constrained")
    axes = fig.subplots(4 if learned else 3, 1, sharex=True)
    ax_loss, ax_val, ax_usage = axes[:3]
    for col, style in (("loss", "-"), ("task_loss", "--")):
        if col in history.columns:
            ax_loss.plot(x, history[col], style, color="#333333", marker=".", label=col)
    epochs, losses, skipped = _skipped_points(history, x)
    if len(epochs):
        ax_loss.plot(
            epochs, losses, "x", color="#c44e52", markersize=9,
            label=f"steps skipped ({int(skipped.sum())}, non-finite gradients)",
        )  # fmt: skip
    ax_loss.set_ylabel("loss")
    ax_loss.set_title("training loss")
    if "aux_loss" in history.columns:
        ax_aux = ax_loss.twinx()
        ax_aux.plot(x, history["aux_loss"], ":", color="#888888", label="aux_loss")
        ax_aux.set_ylabel("aux loss")
        handles = ax_loss.get_legend_handles_labels()
        aux_handles = ax_aux.get_legend_handles_labels()
        ax_loss.legend(handles[0] + aux_handles[0], handles[1] + aux_handles[1], fontsize=8)
    else:
        ax_loss.legend(fontsize=8)
    metric = val_col[len("val_") :]
    ax_val.plot(x, history[val_col], "-", marker=".", color=SERIES[0], label=val_col)
    if best is not None:
        ax_val.plot(
            [x[best]],
            [history[val_col].iloc[best]],
            "*",
            color="#c44e52",
            markersize=14,
            label=f"best epoch ({x[best]})",
        )
    ax_val.set_ylabel(metric)
    ax_val.set_title(f"validation {metric}")
    ax_val.legend(fontsize=8)
    for col, label, color in zip(usage, labels, colors, strict=True):
        ax_usage.plot(x, history[col], "-", color=color, label=label)
    ax_usage.set_ylabel("fraction routed")
    ax_usage.set_title("expert usage")
    ax_usage.set_ylim(bottom=0)
    if usage:
        ax_usage.legend(fontsize=8, ncol=min(len(usage), 5))
    if learned:
        for col, color in zip(learned, colors, strict=False):
            axes[3].plot(x, history[col], "-", color=color)
        axes[3].set_ylabel("cutoff (Å)")
        axes[3].set_title("learned cutoffs")
    axes[-1].set_xlabel("epoch")
    return fig
