"""Ablation bars: mean ± std over seeds of a test metric per variant, one panel per dataset.

The input is a runs table (``runs.csv`` of ``run_experiments``, or of
``benchmarks/bench_accuracy.py``). The plotly function returns a ``go.Figure`` and takes
``layout`` overrides; its ``*_mpl`` twin draws on a matplotlib ``Axes``.
"""

from __future__ import annotations

import html
import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from mimoe_core.analysis.tables import seed_mean_std
from mimoe_viz._deps import make_subplots, mpl_figure, plotly_go
from mimoe_viz._runs import maximized
from mimoe_viz._style import SERIES

if TYPE_CHECKING:
    import plotly.graph_objects as go
    from matplotlib.axes import Axes

__all__ = ["ablation_figure", "ablation_mpl"]


@dataclass
class _Bars:
    dataset: str | None
    metric: str
    variants: list[str]
    mean: np.ndarray  # [V]
    std: np.ndarray  # [V], sample std (ddof=1): seed_mean_std, as in summarize()
    seeds: np.ndarray  # [V] runs with a value
    points: list[np.ndarray]  # per variant, the per-seed values


def _read_runs(runs: pd.DataFrame | str | Path) -> pd.DataFrame:
    if isinstance(runs, (str, Path)):
        path = Path(runs)
        if path.is_dir():
            path = path / "runs.csv"
        if not path.is_file():
            raise FileNotFoundError(f"no runs table at {path}")
        runs = pd.read_csv(path)
    if not isinstance(runs, pd.DataFrame):
        raise TypeError(f"runs must be a DataFrame or a CSV path, got {type(runs).__name__}")
    if "variant" not in runs.columns:
        raise ValueError(f"a runs table needs a 'variant' column; it has {list(runs.columns)}")
    if runs.empty:
        raise ValueError("the runs table is empty")
    return runs


def _ablation_bars(runs: pd.DataFrame, metric: str | None) -> tuple[list[_Bars], list[str]]:
    """Bars per dataset (one group when there is no ``dataset`` column); datasets left out."""
    test_cols = [c for c in runs.columns if str(c).startswith("test_")]
    if metric is not None and metric not in runs.columns:
        raise ValueError(f"no column {metric!r} in the runs table; test metrics: {test_cols}")
    if metric is None and not {"test_rmse", "test_roc_auc"} & set(runs.columns):
        raise ValueError(
            f"the runs table has neither test_rmse nor test_roc_auc; pass metric= (test "
            f"metrics: {test_cols})"
        )
    groups = (
        [(str(name), frame) for name, frame in runs.groupby("dataset", sort=False)]
        if "dataset" in runs.columns
        else [(None, runs)]
    )
    bars, left_out = [], []
    for name, frame in groups:
        chosen = metric
        if chosen is None:
            present = [
                c
                for c in ("test_rmse", "test_roc_auc")
                if c in frame.columns and frame[c].notna().any()
            ]
            chosen = present[0] if present else "test_rmse"
        if chosen not in frame.columns or frame[chosen].isna().all():
            left_out.append(str(name))
            continue
        grouped = frame.groupby("variant", sort=False)[chosen]
        mean, std = seed_mean_std(grouped)
        bars.append(
            _Bars(
                dataset=name,
                metric=chosen,
                variants=[str(v) for v in grouped.groups],
                mean=mean.to_numpy(dtype=float),
                std=std.to_numpy(dtype=float),
                seeds=grouped.count().to_numpy(),
                points=[g.dropna().to_numpy(dtype=float) for _, g in grouped],
            )
        )
    if not bars:
        raise ValueError(f"no dataset has values for {metric or 'test_rmse/test_roc_auc'}")
    return bars, left_out


def _bars_title(b: _Bars) -> str:
    direction = "higher is better" if maximized(b.metric) else "lower is better"
    head = f"{b.dataset} · " if b.dataset is not None else ""
    return f"{head}{b.metric} ({direction})"


def ablation_figure(
    runs: pd.DataFrame | str | Path, metric: str | None = None, layout: dict | None = None
) -> go.Figure:
    """Mean ± std over seeds of a test metric per variant, one panel per dataset.

    The bars are what :func:`mimoe_core.analysis.tables.summarize` tabulates: the mean
    over seeds and the sample std (ddof = 1; no error bar for one seed); the seeds themselves are
    drawn as dots.

    Args:
        runs: one row per (variant, seed) with ``variant``, ``seed`` and ``test_*`` columns
            (``runs.csv`` of ``run_experiments``; an optional ``dataset`` column, as written
            by ``benchmarks/bench_accuracy.py``, gives one panel per dataset), or a path to
            such a CSV or to the folder holding ``runs.csv``.
        metric: the column to plot, default None: per dataset ``test_rmse`` when it has
            values, else ``test_roc_auc``. Datasets without values for it are left out and
            named in the title.
        layout: overrides passed to ``fig.update_layout``, default None.

    Returns:
        The plotly figure: per panel one ``go.Bar`` (x = variants, y = means, ``error_y`` =
        stds) followed by one scatter of the per-seed values.

    Raises:
        FileNotFoundError: if a path holds no CSV.
        ValueError: without a ``variant`` column or the metric, or when nothing has values.
    """
    go = plotly_go()
    bars, left_out = _ablation_bars(_read_runs(runs), metric)
    cols = min(len(bars), 3)
    rows = math.ceil(len(bars) / cols)
    fig = make_subplots(
        rows=rows,
        cols=cols,
        subplot_titles=[_bars_title(b) for b in bars],
        horizontal_spacing=0.08,
        vertical_spacing=0.3 / rows,
    )
    order = list(dict.fromkeys(v for b in bars for v in b.variants))
    for i, b in enumerate(bars):
        row, col = i // cols + 1, i % cols + 1
        colors = [SERIES[order.index(v) % len(SERIES)] for v in b.variants]
        fig.add_trace(
            go.Bar(
                x=b.variants,
                y=b.mean,
                name=b.dataset or b.metric,
                marker_color=colors,
                error_y={"type": "data", "array": b.std, "visible": True},
                customdata=np.stack([b.std, b.seeds], axis=1),
                showlegend=False,
                hovertemplate="%{x}<br>%{y:.4g} ± %{customdata[0]:.3g} "
                "(%{customdata[1]} seeds)<extra></extra>",
            ),
            row=row,
            col=col,
        )
        xs = [v for v, pts in zip(b.variants, b.points, strict=True) for _ in pts]
        ys = np.concatenate(b.points) if b.points else np.zeros(0)
        fig.add_trace(
            go.Scatter(
                x=xs,
                y=ys,
                mode="markers",
                name="seeds",
                showlegend=False,
                marker={"color": "#222222", "size": 5, "opacity": 0.6},
                hovertemplate="%{x}<br>seed value %{y:.4g}<extra></extra>",
            ),
            row=row,
            col=col,
        )
        fig.update_yaxes(title_text=b.metric, row=row, col=col)
    title = "test metric per variant (mean ± std over seeds)"
    if left_out:
        title += f"<br><sup>no values for: {html.escape(', '.join(left_out))}</sup>"
    fig.update_layout(
        title=title,
        template="plotly_white",
        height=380 * rows + 80,
        width=max(520, 420 * cols),
        meta={"left_out": left_out},
    )
    fig.update_xaxes(tickangle=-30)
    fig.update_layout(**(layout or {}))
    return fig


def ablation_mpl(
    runs: pd.DataFrame | str | Path,
    metric: str | None = None,
    ax: Axes | None = None,
    *,
    dataset: str | None = None,
) -> Axes:
    """Matplotlib twin of :func:`ablation_figure` for one dataset.

    Args:
        runs: a runs table or a path to one (see :func:`ablation_figure`).
        metric: the column to plot, default None (``test_rmse``, else ``test_roc_auc``).
        ax: the axes to draw on, default None (a new 6 x 4 inch figure).
        dataset: which dataset to draw when ``runs`` has a ``dataset`` column with several
            values, default None.

    Returns:
        The axes: one bar per variant (``ax.patches``) with error bars, plus seed dots.

    Raises:
        ValueError: when ``runs`` holds several datasets and ``dataset`` is None, or an
            unknown dataset is named.
    """
    table = _read_runs(runs)
    if "dataset" in table.columns:
        names = [str(d) for d in table["dataset"].drop_duplicates()]
        if dataset is None and len(names) > 1:
            raise ValueError(f"the runs hold {len(names)} datasets {names}; pass dataset=")
        if dataset is not None:
            if dataset not in names:
                raise ValueError(f"unknown dataset {dataset!r}; the runs hold {names}")
            table = table[table["dataset"].astype(str) == dataset]
    elif dataset is not None:
        raise ValueError("dataset= given but the runs table has no 'dataset' column")
    (b,), _ = _ablation_bars(table, metric)
    if ax is None:
        ax = mpl_figure(figsize=(6, 4), layout="constrained").add_subplot()
    pos = np.arange(len(b.variants))
    ax.bar(
        pos,
        b.mean,
        yerr=b.std,
        capsize=4,
        color=[SERIES[i % len(SERIES)] for i in range(len(pos))],
    )
    for i, pts in enumerate(b.points):
        ax.plot(np.full(len(pts), pos[i]), pts, ".", color="#222222", alpha=0.6)
    ax.set_xticks(pos, b.variants, rotation=30, ha="right", fontsize=8)
    ax.set_ylabel(b.metric)
    ax.set_title(_bars_title(b), fontsize=9)
    return ax
