"""Can the predicted uncertainty be trusted? Coverage calibration, error against std, intervals.

The numbers come from :mod:`mimoe_core.analysis.uncertainty` (computed once there); these
functions only draw them. Each takes plain ``[M, T]`` arrays (1-D for one target), returns a
plotly ``go.Figure`` and takes ``layout`` overrides; ``layout.meta`` carries the numbers
shown, so tests and reports read them without parsing titles.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import ArrayLike

from mimoe_core.analysis.uncertainty import miscalibration_area, rmv_rmse_bins
from mimoe_viz._deps import apply_layout, make_subplots, plotly_go
from mimoe_viz._style import REFERENCE, SERIES

if TYPE_CHECKING:
    import plotly.graph_objects as go

__all__ = ["coverage_calibration_figure", "error_vs_std_figure", "parity_interval_figure"]

_COLUMNS = 3  # panels per row when a figure draws one panel per target
# The fixed styling of each trace family; the calls add data, colours and hover text.
_ERRORS = {"mode": "markers", "name": "|error|", "legendgroup": "error"}
_BINNED = {
    "mode": "lines+markers",
    "name": "binned RMSE",
    "legendgroup": "binned",
    "line": {"color": "black"},
}
_INTERVALS = {"mode": "markers", "name": "interval", "legendgroup": "interval"}
_ERROR_BARS = {"type": "data", "symmetric": False, "thickness": 1, "width": 0}


def _as_2d(x: ArrayLike, name: str) -> np.ndarray:
    arr = np.asarray(x, dtype=np.float64)
    arr = arr[:, None] if arr.ndim == 1 else arr
    if arr.ndim != 2:
        raise ValueError(f"{name} must have shape [M, T] (or [M]), got {np.shape(x)}")
    return arr


def _names(target_names: Sequence[str] | None, num: int) -> list[str]:
    if target_names is None:
        return [f"target {t}" for t in range(num)] if num > 1 else ["y"]
    names = list(target_names)
    if len(names) != num:
        raise ValueError(f"target_names has {len(names)} names for {num} targets")
    return names


def _panels(names: list[str], titles: list[str]) -> tuple[go.Figure, list[tuple[int, int]]]:
    """One subplot per target, up to three per row; their (row, col) positions."""
    cols = min(len(names), _COLUMNS)
    rows = math.ceil(len(names) / cols)
    fig = make_subplots(rows=rows, cols=cols, subplot_titles=titles)
    return fig, [(t // cols + 1, t % cols + 1) for t in range(len(names))]


def _diagonal(span: Sequence[float], name: str, showlegend: bool = True) -> go.Scatter:
    return plotly_go().Scatter(
        x=list(span),
        y=list(span),
        mode="lines",
        name=name,
        hoverinfo="skip",
        showlegend=showlegend,
        legendgroup="reference",
        line={"color": REFERENCE, "dash": "dash"},
    )


def _hover(name: str, x: str, y: str, x_format: str = ".3f") -> str:
    """Hover text of a point: the target name, then the labelled x and y values."""
    return f"{name}<br>{x} %{{x:{x_format}}}<br>{y} %{{y:.3f}}<extra></extra>"


def _add_to_panel(fig: go.Figure, traces: Sequence[Any], row: int, col: int, legend: bool) -> None:
    """Add ``traces`` to one subplot, in the legend only if ``legend`` (the first panel)."""
    for trace in traces:
        trace.showlegend = legend
        fig.add_trace(trace, row=row, col=col)


def _span(*arrays: np.ndarray) -> list[float]:
    values = np.concatenate([a[np.isfinite(a)] for a in arrays])
    lo, hi = (float(values.min()), float(values.max())) if values.size else (0.0, 1.0)
    pad = 0.05 * (hi - lo) if hi > lo else 1.0
    return [lo - pad, hi + pad]


def coverage_calibration_figure(
    expected: ArrayLike,
    observed: ArrayLike,
    target_names: Sequence[str] | None = None,
    layout: dict | None = None,
) -> go.Figure:
    """Observed against expected coverage of central intervals, one line per target.

    Pass the output of :func:`~mimoe_core.analysis.uncertainty.coverage_curve`. A calibrated
    model follows the diagonal; a curve below it means the std is too small
    (overconfident), above it too large. Each legend entry gives the target's
    miscalibration area (the area between its curve and the diagonal).

    Args:
        expected: [L] nominal coverages in [0, 1], increasing.
        observed: [L] or [L, T] observed coverages.
        target_names: T names for the legend, default None (``"y"`` or ``"target t"``).
        layout: overrides passed to ``fig.update_layout``, default None.

    Returns:
        The plotly figure: one line per target (named ``"<target> (area 0.031)"``), then the
        ``ideal`` diagonal; ``layout.meta["miscalibration_area"]`` maps target to area.

    Raises:
        ValueError: if ``observed`` does not have L rows, or for a wrong number of names.
    """
    go = plotly_go()
    x = np.asarray(expected, dtype=np.float64)
    obs = _as_2d(observed, "observed")
    if x.ndim != 1 or obs.shape[0] != x.size:
        raise ValueError(
            f"observed must have one row per level: expected {x.shape}, observed {obs.shape}"
        )
    names = _names(target_names, obs.shape[1])
    areas = miscalibration_area(x, obs)
    fig = go.Figure()
    for t, name in enumerate(names):
        label, line = f"{name} (area {areas[t]:.3f})", {"color": SERIES[t % len(SERIES)]}
        hover = _hover(name, "expected", "observed", x_format=".2f")
        trace = go.Scatter(
            x=x, y=obs[:, t], mode="lines", name=label, line=line, hovertemplate=hover
        )
        fig.add_trace(trace)
    fig.add_trace(_diagonal([0.0, 1.0], "ideal"))
    fig.update_layout(
        title="Coverage calibration of central Gaussian intervals",
        template="plotly_white",
        width=560,
        height=520,
        xaxis={"title": "expected coverage", "range": [0, 1]},
        yaxis={"title": "observed coverage", "range": [0, 1.02], "scaleanchor": "x"},
        meta={"miscalibration_area": {n: float(a) for n, a in zip(names, areas, strict=True)}},
    )
    return apply_layout(fig, layout)


def error_vs_std_figure(
    pred: ArrayLike,
    std: ArrayLike,
    target: ArrayLike,
    target_names: Sequence[str] | None = None,
    n_bins: int = 10,
    layout: dict | None = None,
) -> go.Figure:
    """Absolute error against predicted std per molecule, with binned RMSE against RMV.

    One panel per target (units differ between targets). The points are the labelled
    molecules; the line joins bins of increasing std
    (:func:`~mimoe_core.analysis.uncertainty.rmv_rmse_bins`, the bins of ENCE): a calibrated
    std has RMSE = RMV, the dashed diagonal.

    Args:
        pred: [M, T] predictions.
        std: [M, T] predicted standard deviations (>= 0).
        target: [M, T] labels, NaN where missing.
        target_names: T names for the panel titles, default None.
        n_bins: bins of the RMSE/RMV line, default 10.
        layout: overrides passed to ``fig.update_layout``, default None.

    Returns:
        The plotly figure: per target a ``"|error|"`` scatter (x = std, y = |error|), a
        ``"binned RMSE"`` line (x = RMV, y = RMSE) and the ``"RMSE = RMV"`` diagonal;
        ``layout.meta`` holds ``rmv`` and ``rmse`` (target -> list).

    Raises:
        ValueError: as :func:`~mimoe_core.analysis.uncertainty.rmv_rmse_bins`.
    """
    go = plotly_go()
    p, s, y = _as_2d(pred, "pred"), _as_2d(std, "std"), _as_2d(target, "target")
    bins = rmv_rmse_bins(p, s, y, n_bins=n_bins)  # validates shapes and std
    names = _names(target_names, p.shape[1])
    fig, where = _panels(names, names)
    for t, (name, (row, col)) in enumerate(zip(names, where, strict=True)):
        keep = ~np.isnan(y[:, t])
        err, sig = np.abs(p[keep, t] - y[keep, t]), s[keep, t]
        rmv, rmse = bins[t]
        marker = {"color": SERIES[t % len(SERIES)], "size": 5, "opacity": 0.5}
        hover, binned_hover = _hover(name, "std", "|error|"), _hover(name, "RMV", "RMSE")
        traces = [
            go.Scatter(x=sig, y=err, marker=marker, hovertemplate=hover, **_ERRORS),
            go.Scatter(x=rmv, y=rmse, hovertemplate=binned_hover, **_BINNED),
            _diagonal([0.0, max([0.0, *sig, *err]) or 1.0], "RMSE = RMV"),
        ]
        _add_to_panel(fig, traces, row, col, legend=t == 0)
        fig.update_xaxes(title_text=f"predicted std ({name})", row=row, col=col)
        fig.update_yaxes(title_text="|error|, RMSE", row=row, col=col)
    fig.update_layout(
        title="Absolute error against predicted std",
        template="plotly_white",
        width=420 * min(len(names), _COLUMNS),
        height=400 * math.ceil(len(names) / _COLUMNS),
        meta={
            "rmv": {n: b[0].tolist() for n, b in zip(names, bins, strict=True)},
            "rmse": {n: b[1].tolist() for n, b in zip(names, bins, strict=True)},
        },
    )
    return apply_layout(fig, layout)


def parity_interval_figure(
    pred: ArrayLike,
    lower: ArrayLike,
    upper: ArrayLike,
    target: ArrayLike,
    target_names: Sequence[str] | None = None,
    layout: dict | None = None,
) -> go.Figure:
    """Predicted against true values with each molecule's interval as a vertical error bar.

    One panel per target; only labelled molecules are drawn. Each panel title gives the
    observed coverage (share of labels inside [lower, upper]) and the mean width. An
    unbounded interval (a conformal regressor with too few calibration scores) has no
    bar drawn but still counts as covering.

    Args:
        pred: [M, T] predictions.
        lower: [M, T] interval lower bounds.
        upper: [M, T] interval upper bounds.
        target: [M, T] labels, NaN where missing.
        target_names: T names for the panel titles and axes, default None.
        layout: overrides passed to ``fig.update_layout``, default None.

    Returns:
        The plotly figure: per target an ``"interval"`` scatter (x = true, y = predicted,
        ``error_y`` up to ``upper`` and down to ``lower``) and the ``y = x`` line;
        ``layout.meta`` holds ``coverage``, ``width`` and ``n`` (target -> value).

    Raises:
        ValueError: for mismatched shapes, lower > upper, or a wrong number of names.
    """
    go = plotly_go()
    p, lo, hi = _as_2d(pred, "pred"), _as_2d(lower, "lower"), _as_2d(upper, "upper")
    y = _as_2d(target, "target")
    if not p.shape == lo.shape == hi.shape == y.shape:
        raise ValueError(
            f"shape mismatch: pred {p.shape}, lower {lo.shape}, upper {hi.shape}, target {y.shape}"
        )
    if np.any(lo > hi):
        raise ValueError("lower must not exceed upper")
    names = _names(target_names, p.shape[1])
    coverage, width, counts = {}, {}, {}
    for t, name in enumerate(names):
        keep = ~np.isnan(y[:, t])
        inside = (lo[keep, t] <= y[keep, t]) & (y[keep, t] <= hi[keep, t])
        coverage[name] = float(np.mean(inside)) if keep.any() else float("nan")
        width[name] = float(np.mean(hi[keep, t] - lo[keep, t])) if keep.any() else float("nan")
        counts[name] = int(keep.sum())
    titles = [
        f"{n}: coverage {coverage[n]:.3f} · width {width[n]:.3g} (n = {counts[n]})" for n in names
    ]
    fig, where = _panels(names, titles)
    for t, (name, (row, col)) in enumerate(zip(names, where, strict=True)):
        keep = ~np.isnan(y[:, t])
        true, pt = y[keep, t], p[keep, t]
        up, down = hi[keep, t] - pt, pt - lo[keep, t]
        # plotly cannot draw an infinite bar; leave it out rather than draw a wrong one
        up, down = np.where(np.isfinite(up), up, np.nan), np.where(np.isfinite(down), down, np.nan)
        marker = {"color": SERIES[t % len(SERIES)], "size": 6}
        error_y = {"array": up, "arrayminus": down, **_ERROR_BARS}
        hover = _hover(name, "true", "predicted")
        points = go.Scatter(
            x=true, y=pt, marker=marker, error_y=error_y, hovertemplate=hover, **_INTERVALS
        )
        _add_to_panel(fig, [points, _diagonal(_span(true, pt), "y = x")], row, col, legend=t == 0)
        fig.update_xaxes(title_text=f"true {name}", row=row, col=col)
        fig.update_yaxes(title_text=f"predicted {name}", row=row, col=col)
    mean_cov = np.nanmean(list(coverage.values())) if counts and any(counts.values()) else np.nan
    fig.update_layout(
        title=f"Parity with prediction intervals: mean coverage {mean_cov:.3f}",
        template="plotly_white",
        width=460 * min(len(names), _COLUMNS),
        height=440 * math.ceil(len(names) / _COLUMNS),
        meta={"coverage": coverage, "width": width, "n": counts},
    )
    return apply_layout(fig, layout)
