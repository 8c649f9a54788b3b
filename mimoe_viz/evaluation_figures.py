"""How well a run predicts its test set: parity plots (regression) and ROC curves.

Both read a :class:`~mimoe_core.results.PredictionResult` with labels (a run's
``test_explained/``). Plotly functions return a ``go.Figure`` and take ``layout`` overrides;
their ``*_mpl`` twins draw on a matplotlib ``Axes`` without touching pyplot's global state.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from mimoe_core.analysis.routing import dominant_from_alpha
from mimoe_core.analysis.validation import target_index
from mimoe_core.results import PredictionResult
from mimoe_viz._deps import make_subplots, mpl_figure, plotly_go
from mimoe_viz._routing import dominant_groups
from mimoe_viz._style import REFERENCE, SERIES, expert_colors, expert_labels

if TYPE_CHECKING:
    import plotly.graph_objects as go
    from matplotlib.axes import Axes

__all__ = ["parity_figure", "parity_mpl", "roc_figure", "roc_mpl"]


def _diagonal(span: list[float], name: str) -> go.Scatter:
    """The dashed reference line y = x over ``span`` (parity's ``y = x``, ROC's chance)."""
    return plotly_go().Scatter(
        x=span,
        y=span,
        mode="lines",
        name=name,
        hoverinfo="skip",
        line={"color": REFERENCE, "dash": "dash"},
    )


# --- parity ---------------------------------------------------------------------------------


@dataclass
class _Parity:
    name: str
    index: np.ndarray  # [n] entry indices into the result
    true: np.ndarray  # [n]
    pred: np.ndarray  # [n]
    dominant: np.ndarray  # [n] argmax alpha
    weight: np.ndarray  # [n] max alpha
    rmse: float
    mae: float
    r2: float

    @property
    def title(self) -> str:
        return (
            f"{self.name}: RMSE {self.rmse:.3f} · MAE {self.mae:.3f} · R² {self.r2:.3f} "
            f"(n = {len(self.true)})"
        )


def _parity(result: PredictionResult, target: int | str) -> _Parity:
    if result.task != "regression":
        raise ValueError(f"a parity plot needs a regression result, got task {result.task!r}")
    if result.labels is None:
        raise ValueError("the result has no labels (predict with labels, or use test_explained)")
    t = target_index(result, target)
    true, pred = result.labels[:, t], result.prediction[:, t]
    keep = result.ok & np.isfinite(true) & np.isfinite(pred)
    if not keep.any():
        raise ValueError(f"no ok entry has both a label and a prediction for {result.targets[t]}")
    index = np.flatnonzero(keep)
    true, pred, alpha = true[keep], pred[keep], result.alpha[keep]
    err = pred - true
    total = float(np.sum((true - true.mean()) ** 2))
    r2 = 1.0 - float(np.sum(err**2)) / total if total > 0 else float("nan")
    return _Parity(
        name=result.targets[t],
        index=index,
        true=true,
        pred=pred,
        dominant=dominant_from_alpha(alpha),
        weight=np.max(alpha, axis=1),
        rmse=float(np.sqrt(np.mean(err**2))),
        mae=float(np.mean(np.abs(err))),
        r2=r2,
    )


def _square_range(*arrays: np.ndarray) -> list[float]:
    lo = min(float(a.min()) for a in arrays)
    hi = max(float(a.max()) for a in arrays)
    pad = 0.05 * (hi - lo) if hi > lo else 1.0
    return [lo - pad, hi + pad]


def _with_unit(text: str, unit: str) -> str:
    return f"{text} ({unit})" if unit else text


def parity_figure(
    result: PredictionResult, target: int | str = 0, layout: dict | None = None, unit: str = ""
) -> go.Figure:
    r"""Predicted against true values of a regression result, coloured by dominant expert.

    Only ``ok`` entries with a label are drawn. Each point's colour is the expert with the
    largest routing weight (argmax alpha); hovering shows the id, SMILES and that weight.
    The title gives RMSE, MAE and R² computed here from the drawn points:

    .. math::
        R^2 = 1 - \frac{\sum_i (\hat y_i - y_i)^2}{\sum_i (y_i - \bar y)^2}

    Args:
        result: a regression :class:`PredictionResult` with ``labels``.
        target: the target's index (0..T-1; negative indices are rejected) or name,
            default 0.
        layout: overrides passed to ``fig.update_layout``, default None.
        unit: the target's unit for the axis titles (``"true expt (kcal/mol)"``), default
            ``""`` (no unit).

    Returns:
        The plotly figure: one scatter per dominant expert (``customdata[:, 0]`` is the entry
        index into ``result``), then the ``y = x`` line; ``layout.meta`` holds ``rmse``,
        ``mae``, ``r2`` and ``n``.

    Raises:
        ValueError: for a classification result, a result without labels, an unknown target,
            or no labelled ok entry.
    """
    go = plotly_go()
    p = _parity(result, target)
    colors, labels = expert_colors(result.num_experts), expert_labels(result.cutoffs)
    fig = go.Figure()
    for e, sel in dominant_groups(p.dominant, result.num_experts):
        idx = p.index[sel]
        custom = np.stack([idx, p.weight[sel]], axis=1)
        fig.add_trace(
            go.Scatter(
                x=p.true[sel],
                y=p.pred[sel],
                mode="markers",
                name=labels[e],
                marker={"color": colors[e], "size": 8, "line": {"width": 0.5, "color": "white"}},
                customdata=custom,
                text=[f"{result.ids[i]}<br>{html.escape(result.smiles[i])}" for i in idx],
                hovertemplate=(
                    "%{text}<br>true %{x:.3f}<br>predicted %{y:.3f}"
                    f"<br>{labels[e]} weight %{{customdata[1]:.2f}}<extra></extra>"
                ),
            )
        )
    span = _square_range(p.true, p.pred)
    fig.add_trace(_diagonal(span, "y = x"))
    fig.update_layout(
        title=p.title,
        template="plotly_white",
        width=560,
        height=520,
        xaxis={"title": _with_unit(f"true {p.name}", unit), "range": span},
        yaxis={
            "title": _with_unit(f"predicted {p.name}", unit),
            "range": span,
            "scaleanchor": "x",
        },
        legend_title_text="dominant expert",
        meta={"rmse": p.rmse, "mae": p.mae, "r2": p.r2, "n": len(p.true)},
    )
    fig.update_layout(**(layout or {}))
    return fig


def parity_mpl(
    result: PredictionResult, target: int | str = 0, ax: Axes | None = None, unit: str = ""
) -> Axes:
    """Matplotlib twin of :func:`parity_figure`.

    Args:
        result: a regression :class:`PredictionResult` with ``labels``.
        target: the target's index (0..T-1; negative indices are rejected) or name,
            default 0.
        ax: the axes to draw on, default None (a new 5 x 5 inch figure).
        unit: the target's unit for the axis labels, default ``""`` (no unit).

    Returns:
        The axes: one scatter collection per dominant expert and the ``y = x`` line.
    """
    p = _parity(result, target)
    if ax is None:
        ax = mpl_figure(figsize=(5, 5), layout="constrained").add_subplot()
    colors, labels = expert_colors(result.num_experts), expert_labels(result.cutoffs)
    for e, sel in dominant_groups(p.dominant, result.num_experts):
        ax.scatter(
            p.true[sel],
            p.pred[sel],
            s=20,
            color=colors[e],
            label=labels[e],
            edgecolors="white",
            linewidths=0.5,
        )
    span = _square_range(p.true, p.pred)
    ax.plot(span, span, "--", color=REFERENCE, label="y = x")
    ax.set_xlim(span)
    ax.set_ylim(span)
    ax.set_aspect("equal")
    ax.set_xlabel(_with_unit(f"true {p.name}", unit))
    ax.set_ylabel(_with_unit(f"predicted {p.name}", unit))
    ax.set_title(p.title, fontsize=9)
    ax.legend(title="dominant expert", fontsize=8)
    return ax


# --- ROC ------------------------------------------------------------------------------------


@dataclass
class _Curve:
    name: str
    x: np.ndarray
    y: np.ndarray
    score: float
    n: int


def _roc_curves(result: PredictionResult, pr: bool = False) -> tuple[list[_Curve], list[str]]:
    """ROC (or precision-recall) curve per target; names of targets with one class only."""
    from sklearn.metrics import (
        average_precision_score,
        precision_recall_curve,
        roc_auc_score,
        roc_curve,
    )

    if result.task != "classification":
        raise ValueError(f"ROC curves need a classification result, got task {result.task!r}")
    if result.labels is None:
        raise ValueError("the result has no labels (predict with labels, or use test_explained)")
    curves, skipped = [], []
    for t, name in enumerate(result.targets):
        true, prob = result.labels[:, t], result.prediction[:, t]
        keep = result.ok & np.isfinite(true) & np.isfinite(prob)
        true, prob = true[keep], prob[keep]
        if true.size == 0 or true.min() == true.max():
            skipped.append(name)
            continue
        if pr:
            precision, recall, _ = precision_recall_curve(true, prob)
            score = float(average_precision_score(true, prob))
            curves.append(_Curve(name, recall, precision, score, true.size))
        else:
            fpr, tpr, _ = roc_curve(true, prob)
            curves.append(_Curve(name, fpr, tpr, float(roc_auc_score(true, prob)), true.size))
    if not curves:
        raise ValueError(
            f"no target has both classes among its labelled ok entries ({result.targets})"
        )
    return curves, skipped


def _skip_note(skipped: list[str]) -> str:
    return f"skipped (one class only): {', '.join(skipped)}" if skipped else ""


def roc_figure(
    result: PredictionResult, layout: dict | None = None, *, pr: bool = False
) -> go.Figure:
    """ROC curve per target of a classification result, AUC in the legend.

    Only ``ok`` entries with a label count. A target whose labels hold one class only has no
    ROC curve; it is left out and named in the title.

    Args:
        result: a classification :class:`PredictionResult` with ``labels``
            (``prediction`` holds probabilities).
        layout: overrides passed to ``fig.update_layout``, default None.
        pr: also draw precision-recall curves (average precision in the legend) in a second
            panel, default False.

    Returns:
        The plotly figure: one line per scored target (named ``"<target> (AUC = 0.812)"``),
        then the chance diagonal; ``layout.meta`` holds ``auc`` (target -> ROC-AUC), ``ap``
        with ``pr=True``, and ``skipped``.

    Raises:
        ValueError: for a regression result, a result without labels, or when no target has
            both classes.
    """
    go = plotly_go()
    curves, skipped = _roc_curves(result)
    panels = [curves] + ([_roc_curves(result, pr=True)[0]] if pr else [])
    fig = make_subplots(
        rows=1,
        cols=len(panels),
        subplot_titles=("ROC", "precision-recall") if pr else None,
    )
    for col, panel in enumerate(panels, start=1):
        tag = "AP" if col == 2 else "AUC"
        for t, c in enumerate(panel):
            fig.add_trace(
                go.Scatter(
                    x=c.x,
                    y=c.y,
                    mode="lines",
                    name=f"{c.name} ({tag} = {c.score:.3f})",
                    line={
                        "color": SERIES[t % len(SERIES)],
                        # AP integrates precision as a step function of recall, ROC-AUC linearly.
                        "shape": "linear" if col == 1 else "hv",
                    },
                    legendgroup=c.name,
                    hovertemplate=f"{c.name} (n = {c.n})<br>x %{{x:.2f}}<br>y %{{y:.2f}}"
                    "<extra></extra>",
                ),
                row=1,
                col=col,
            )
    fig.add_trace(
        _diagonal([0, 1], "chance"),
        row=1,
        col=1,
    )
    fig.update_xaxes(title_text="false positive rate", range=[0, 1], row=1, col=1)
    fig.update_yaxes(title_text="true positive rate", range=[0, 1.02], row=1, col=1)
    if pr:
        fig.update_xaxes(title_text="recall", range=[0, 1], row=1, col=2)
        fig.update_yaxes(title_text="precision", range=[0, 1.02], row=1, col=2)
    note = _skip_note(skipped)
    meta: dict[str, Any] = {"auc": {c.name: c.score for c in curves}, "skipped": skipped}
    if pr:
        meta["ap"] = {c.name: c.score for c in panels[1]}
    fig.update_layout(
        title="ROC" + (f"<br><sup>{html.escape(note)}</sup>" if note else ""),
        template="plotly_white",
        height=480,
        width=560 * len(panels),
        meta=meta,
    )
    fig.update_layout(**(layout or {}))
    return fig


def roc_mpl(result: PredictionResult, ax: Axes | None = None) -> Axes:
    """Matplotlib twin of :func:`roc_figure` (ROC only).

    Args:
        result: a classification :class:`PredictionResult` with ``labels``.
        ax: the axes to draw on, default None (a new 5 x 5 inch figure).

    Returns:
        The axes: one line per scored target, then the chance diagonal.
    """
    curves, skipped = _roc_curves(result)
    if ax is None:
        ax = mpl_figure(figsize=(5, 5), layout="constrained").add_subplot()
    for t, c in enumerate(curves):
        ax.plot(
            c.x,
            c.y,
            color=SERIES[t % len(SERIES)],
            label=f"{c.name} (AUC = {c.score:.3f})",
        )
    ax.plot([0, 1], [0, 1], "--", color=REFERENCE, label="chance")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("false positive rate")
    ax.set_ylabel("true positive rate")
    note = _skip_note(skipped)
    ax.set_title("ROC" + (f"\n{note}" if note else ""), fontsize=9)
    ax.legend(fontsize=8, loc="lower right")
    return ax
