"""Figures of one training run folder and of ablation tables.

A run folder is what :func:`mimoe_core.training.train` writes with ``out_dir``:
``metrics.json``, ``history.csv``, ``skipped.csv`` and ``test_explained/`` (plus checkpoints,
which are never opened here). Everything is read with ``json``, pandas and
:meth:`PredictionResult.load`, so no model code is imported.

Plotly functions return a ``go.Figure`` and take ``layout`` overrides; their ``*_mpl`` twins
draw on a matplotlib ``Axes`` (or ``Figure``) without touching pyplot's global state.
"""

from __future__ import annotations

import html
import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from mimoe_core.results import PredictionResult
from mimoe_viz._deps import make_subplots, mpl_figure, plotly_go
from mimoe_viz._style import expert_colors, expert_labels

if TYPE_CHECKING:
    import plotly.graph_objects as go
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

_SKIPPED_COLUMNS = ["row", "mol_id", "input", "reason"]
# Metrics where larger is better; every other metric (rmse, mae, loss) is minimized.
_MAXIMIZED = ("auc", "r2", "accuracy")
# A neutral palette for variants and targets, kept apart from the expert colours.
_SERIES = ("#4c72b0", "#dd8452", "#55a868", "#c44e52", "#8172b3", "#937860", "#da8bc3",
           "#8c8c8c", "#ccb974", "#64b5cd")  # fmt: skip
_CHANCE = "#999999"


def _maximized(metric: str) -> bool:
    return any(tag in metric for tag in _MAXIMIZED)


# --- run folders ----------------------------------------------------------------------------


@dataclass
class RunFolder:
    """The readable content of one training run folder.

    Attributes:
        path: the folder.
        metrics: the ``metrics.json`` content (task, targets, split sizes, best epoch,
            ``model`` and ``settings`` dicts, ``val`` and ``test`` metric dicts).
        history: one row per epoch (``history.csv``): ``loss``, ``task_loss``, ``aux_loss``,
            ``usage_1..K``, ``epoch``, ``val_rmse`` or ``val_roc_auc``, ``lr``, ``seconds``;
            empty when the file is missing.
        test: the test set's predictions and routing with labels (``test_explained/``), or
            None when the folder has none.
        skipped: molecules dropped during featurization (``skipped.csv``: ``row``,
            ``mol_id``, ``input``, ``reason``), possibly empty.
        task: ``"regression"`` or ``"classification"``.
        targets: target names.
        cutoffs: the K expert cutoffs in Å.
        num_experts: K.
    """

    path: Path
    metrics: dict
    history: pd.DataFrame
    test: PredictionResult | None
    skipped: pd.DataFrame
    task: str
    targets: list[str]
    cutoffs: list[float]
    num_experts: int

    def __repr__(self) -> str:
        test = "None" if self.test is None else f"{len(self.test)} entries"
        return (
            f"RunFolder(path={str(self.path)!r}, task={self.task!r}, targets={self.targets}, "
            f"K={self.num_experts}, cutoffs={self.cutoffs}, epochs={len(self.history)}, "
            f"test={test}, skipped={len(self.skipped)})"
        )


def _folder_listing(folder: Path) -> str:
    names = sorted(p.name + ("/" if p.is_dir() else "") for p in folder.iterdir())
    return ", ".join(names) if names else "nothing"


def load_run(run_dir: str | Path) -> RunFolder:
    """Read a run folder written by ``train(..., out_dir=run_dir)``.

    ``metrics.json`` is required; ``history.csv``, ``skipped.csv`` and ``test_explained/``
    are read when present.

    The cutoffs and K come from ``test_explained/`` when it exists (the experts the model
    really has), else from ``metrics["model"]["cutoffs"]``; K is the number of ``usage_*``
    columns of the history when there is one. (For ``single`` and ``one`` routing
    ``metrics.json`` records the config's cutoff list, while the model has one expert.)

    Args:
        run_dir: the run folder.

    Returns:
        :class:`RunFolder`.

    Raises:
        FileNotFoundError: if ``run_dir`` is not a folder or holds no ``metrics.json`` (the
            message lists what it holds).
        ValueError: if ``metrics.json`` is not valid JSON or lacks ``task``/``targets``.
    """
    path = Path(run_dir)
    if not path.is_dir():
        raise FileNotFoundError(f"no run folder at {path}")
    metrics_file = path / "metrics.json"
    if not metrics_file.is_file():
        raise FileNotFoundError(
            f"{path} is not a run folder: it has no metrics.json (it holds: "
            f"{_folder_listing(path)})"
        )
    try:
        metrics = json.loads(metrics_file.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{metrics_file} is not valid JSON: {err}") from None
    missing = [k for k in ("task", "targets") if k not in metrics]
    if missing:
        raise ValueError(f"{metrics_file} lacks {missing}; it has keys {sorted(metrics)}")

    history = _read_csv(path / "history.csv", columns=[])
    skipped = _read_csv(path / "skipped.csv", columns=_SKIPPED_COLUMNS)
    test = None
    if (path / "test_explained" / "result.json").is_file():
        test = PredictionResult.load(path / "test_explained")

    cutoffs = [float(c) for c in metrics.get("model", {}).get("cutoffs", [])]
    num_experts = len(cutoffs)
    if test is not None:
        cutoffs, num_experts = [float(c) for c in test.cutoffs], test.num_experts
    elif _usage_columns(history):
        num_experts = len(_usage_columns(history))
    return RunFolder(
        path=path,
        metrics=metrics,
        history=history,
        test=test,
        skipped=skipped,
        task=str(metrics["task"]),
        targets=[str(t) for t in metrics["targets"]],
        cutoffs=cutoffs,
        num_experts=num_experts,
    )


def _read_csv(file: Path, columns: list[str]) -> pd.DataFrame:
    if not file.is_file():
        return pd.DataFrame(columns=columns)
    try:
        return pd.read_csv(file)
    except pd.errors.EmptyDataError:
        return pd.DataFrame(columns=columns)


# --- training curves ------------------------------------------------------------------------


def _usage_columns(history: pd.DataFrame) -> list[str]:
    found = [c for c in history.columns if re.fullmatch(r"usage_\d+", str(c))]
    return sorted(found, key=lambda c: int(c.split("_")[1]))


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
        best = int(np.nanargmax(values) if _maximized(val_col) else np.nanargmin(values))
    usage = _usage_columns(history)
    if cutoffs is not None and len(cutoffs) != len(usage):
        raise ValueError(f"{len(cutoffs)} cutoffs given for {len(usage)} usage columns ({usage})")
    labels = (
        expert_labels(cutoffs) if cutoffs is not None else [f"E{e + 1}" for e in range(len(usage))]
    )
    return history, x, val_col, best, usage, labels, expert_colors(len(usage))


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

    Args:
        history: a ``history.csv`` frame with ``loss`` and one ``val_*`` column (``epoch``,
            ``task_loss``, ``aux_loss`` and ``usage_1..K`` are drawn when present), or a
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
    fig = make_subplots(
        rows=3,
        cols=1,
        shared_xaxes=True,
        vertical_spacing=0.07,
        specs=[[{"secondary_y": True}], [{}], [{}]],
        subplot_titles=("training loss", f"validation {metric}", "expert usage"),
    )
    for col, dash in (("loss", "solid"), ("task_loss", "dash")):
        if col in history.columns:
            fig.add_trace(
                go.Scatter(
                    x=x,
                    y=history[col],
                    name=col,
                    mode="lines+markers",
                    line={"dash": dash, "color": "#333333"},
                    legendgroup="loss",
                ),
                row=1,
                col=1,
                secondary_y=False,
            )
    if "aux_loss" in history.columns:
        fig.add_trace(
            go.Scatter(
                x=x,
                y=history["aux_loss"],
                name="aux_loss (right axis)",
                mode="lines",
                line={"dash": "dot", "color": "#888888"},
                legendgroup="loss",
            ),
            row=1,
            col=1,
            secondary_y=True,
        )
    fig.add_trace(
        go.Scatter(
            x=x, y=history[val_col], name=val_col, mode="lines+markers", line={"color": _SERIES[0]}
        ),
        row=2,
        col=1,
    )
    meta: dict[str, Any] = {"best_epoch": None, "best_value": None, "val_metric": val_col}
    if best is not None:
        best_x, best_y = x[best].item(), float(history[val_col].iloc[best])
        meta.update(best_epoch=best_x, best_value=best_y)
        fig.add_trace(
            go.Scatter(
                x=[best_x],
                y=[best_y],
                name=f"best epoch ({best_x})",
                mode="markers",
                marker={"symbol": "star", "size": 14, "color": "#c44e52"},
                hovertemplate=f"best epoch %{{x}}<br>{val_col} %{{y:.4g}}<extra></extra>",
            ),
            row=2,
            col=1,
        )
    for col, label, color in zip(usage, labels, colors, strict=True):
        fig.add_trace(
            go.Scatter(
                x=x,
                y=history[col],
                name=label,
                mode="lines",
                line={"color": color},
                legendgroup="usage",
                hovertemplate=f"{label}: %{{y:.2f}}<extra></extra>",
            ),
            row=3,
            col=1,
        )
    fig.update_yaxes(title_text="loss", row=1, col=1, secondary_y=False)
    fig.update_yaxes(title_text="aux loss", row=1, col=1, secondary_y=True, showgrid=False)
    fig.update_yaxes(title_text=metric, row=2, col=1)
    fig.update_yaxes(title_text="fraction routed", rangemode="tozero", row=3, col=1)
    fig.update_xaxes(title_text="epoch", row=3, col=1)
    fig.update_layout(height=720, template="plotly_white", meta=meta, legend={"tracegroupgap": 40})
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
        The figure; ``fig.axes`` is ``[loss, val, usage, aux]`` (``aux`` only with an
        ``aux_loss`` column).
    """
    history, x, val_col, best, usage, labels, colors = _history_parts(history, cutoffs)
    if fig is None:
        fig = mpl_figure(figsize=(7, 8), layout="constrained")
    ax_loss, ax_val, ax_usage = fig.subplots(3, 1, sharex=True)
    for col, style in (("loss", "-"), ("task_loss", "--")):
        if col in history.columns:
            ax_loss.plot(x, history[col], style, color="#333333", marker=".", label=col)
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
    ax_val.plot(x, history[val_col], "-", marker=".", color=_SERIES[0], label=val_col)
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
    ax_usage.set_xlabel("epoch")
    ax_usage.set_title("expert usage")
    ax_usage.set_ylim(bottom=0)
    if usage:
        ax_usage.legend(fontsize=8, ncol=min(len(usage), 5))
    return fig


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


def _target_index(result: PredictionResult, target: int | str) -> int:
    if isinstance(target, str):
        if target not in result.targets:
            raise ValueError(f"unknown target {target!r}; the result has {result.targets}")
        return result.targets.index(target)
    if not -len(result.targets) <= target < len(result.targets):
        raise ValueError(f"target {target} out of range for {len(result.targets)} targets")
    return int(target) % len(result.targets)


def _parity(result: PredictionResult, target: int | str) -> _Parity:
    if result.task != "regression":
        raise ValueError(f"a parity plot needs a regression result, got task {result.task!r}")
    if result.labels is None:
        raise ValueError("the result has no labels (predict with labels, or use test_explained)")
    t = _target_index(result, target)
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
        dominant=np.argmax(alpha, axis=1),
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


def parity_figure(
    result: PredictionResult, target: int | str = 0, layout: dict | None = None
) -> go.Figure:
    r"""Predicted against true values of a regression result, coloured by dominant expert.

    Only ``ok`` entries with a label are drawn. Each point's colour is the expert with the
    largest routing weight (argmax alpha); hovering shows the id, SMILES and that weight.
    The title gives RMSE, MAE and R² computed here from the drawn points:

    .. math::
        R^2 = 1 - \frac{\sum_i (\hat y_i - y_i)^2}{\sum_i (y_i - \bar y)^2}

    Args:
        result: a regression :class:`PredictionResult` with ``labels``.
        target: the target's index or name, default 0.
        layout: overrides passed to ``fig.update_layout``, default None.

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
    for e in range(result.num_experts):
        sel = p.dominant == e
        if not sel.any():
            continue
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
    fig.add_trace(
        go.Scatter(
            x=span,
            y=span,
            mode="lines",
            name="y = x",
            hoverinfo="skip",
            line={"color": _CHANCE, "dash": "dash"},
        )
    )
    fig.update_layout(
        title=p.title,
        template="plotly_white",
        width=560,
        height=520,
        xaxis={"title": f"true {p.name}", "range": span},
        yaxis={"title": f"predicted {p.name}", "range": span, "scaleanchor": "x"},
        legend_title_text="dominant expert",
        meta={"rmse": p.rmse, "mae": p.mae, "r2": p.r2, "n": len(p.true)},
    )
    fig.update_layout(**(layout or {}))
    return fig


def parity_mpl(result: PredictionResult, target: int | str = 0, ax: Axes | None = None) -> Axes:
    """Matplotlib twin of :func:`parity_figure`.

    Args:
        result: a regression :class:`PredictionResult` with ``labels``.
        target: the target's index or name, default 0.
        ax: the axes to draw on, default None (a new 5 x 5 inch figure).

    Returns:
        The axes: one scatter collection per dominant expert and the ``y = x`` line.
    """
    p = _parity(result, target)
    if ax is None:
        ax = mpl_figure(figsize=(5, 5), layout="constrained").add_subplot()
    colors, labels = expert_colors(result.num_experts), expert_labels(result.cutoffs)
    for e in range(result.num_experts):
        sel = p.dominant == e
        if sel.any():
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
    ax.plot(span, span, "--", color=_CHANCE, label="y = x")
    ax.set_xlim(span)
    ax.set_ylim(span)
    ax.set_aspect("equal")
    ax.set_xlabel(f"true {p.name}")
    ax.set_ylabel(f"predicted {p.name}")
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
                        "color": _SERIES[t % len(_SERIES)],
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
        go.Scatter(
            x=[0, 1],
            y=[0, 1],
            mode="lines",
            name="chance",
            hoverinfo="skip",
            line={"color": _CHANCE, "dash": "dash"},
        ),
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
            color=_SERIES[t % len(_SERIES)],
            label=f"{c.name} (AUC = {c.score:.3f})",
        )
    ax.plot([0, 1], [0, 1], "--", color=_CHANCE, label="chance")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("false positive rate")
    ax.set_ylabel("true positive rate")
    note = _skip_note(skipped)
    ax.set_title("ROC" + (f"\n{note}" if note else ""), fontsize=9)
    ax.legend(fontsize=8, loc="lower right")
    return ax


# --- ablation tables ------------------------------------------------------------------------


@dataclass
class _Bars:
    dataset: str | None
    metric: str
    variants: list[str]
    mean: np.ndarray  # [V]
    std: np.ndarray  # [V], ddof=0 as in summarize()
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
        bars.append(
            _Bars(
                dataset=name,
                metric=chosen,
                variants=[str(v) for v in grouped.groups],
                mean=grouped.mean().to_numpy(dtype=float),
                std=grouped.std(ddof=0).fillna(0.0).to_numpy(dtype=float),
                seeds=grouped.count().to_numpy(),
                points=[g.dropna().to_numpy(dtype=float) for _, g in grouped],
            )
        )
    if not bars:
        raise ValueError(f"no dataset has values for {metric or 'test_rmse/test_roc_auc'}")
    return bars, left_out


def _bars_title(b: _Bars) -> str:
    direction = "higher is better" if _maximized(b.metric) else "lower is better"
    head = f"{b.dataset} · " if b.dataset is not None else ""
    return f"{head}{b.metric} ({direction})"


def ablation_figure(
    runs: pd.DataFrame | str | Path, metric: str | None = None, layout: dict | None = None
) -> go.Figure:
    """Mean ± std over seeds of a test metric per variant, one panel per dataset.

    The bars are what :func:`mimoe_core.training.experiments.summarize` tabulates: the mean
    over seeds and the population std (ddof = 0, 0 for one seed); the seeds themselves are
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
        colors = [_SERIES[order.index(v) % len(_SERIES)] for v in b.variants]
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
        color=[_SERIES[i % len(_SERIES)] for i in range(len(pos))],
    )
    for i, pts in enumerate(b.points):
        ax.plot(np.full(len(pts), pos[i]), pts, ".", color="#222222", alpha=0.6)
    ax.set_xticks(pos, b.variants, rotation=30, ha="right", fontsize=8)
    ax.set_ylabel(b.metric)
    ax.set_title(_bars_title(b), fontsize=9)
    return ax


# --- metrics table --------------------------------------------------------------------------


def _cell(value: Any) -> str:
    if isinstance(value, bool) or value is None:
        text = str(value)
    elif isinstance(value, float):
        text = "n/a" if math.isnan(value) else f"{value:.4g}"
    elif isinstance(value, (list, tuple)):
        text = ", ".join(_cell(v) for v in value)
        return text
    else:
        text = str(value)
    return html.escape(text)


def metrics_table_html(metrics: Mapping[str, Any] | RunFolder) -> str:
    """A small HTML table of a run's ``metrics.json``: scores, split sizes, model settings.

    Args:
        metrics: the ``metrics.json`` content (``RunFolder.metrics``) or a :class:`RunFolder`.

    Returns:
        An HTML ``<table>`` (display it with ``IPython.display.HTML``); every value is
        escaped.

    Raises:
        TypeError: if ``metrics`` is not a mapping or RunFolder.
    """
    if isinstance(metrics, RunFolder):
        metrics = metrics.metrics
    if not isinstance(metrics, Mapping):
        raise TypeError(f"metrics must be a dict or RunFolder, got {type(metrics).__name__}")
    rows: list[str] = ['<table class="mimoe-metrics">']

    def section(title: str, ncols: int = 3) -> None:
        rows.append(
            f'<tr><th colspan="{ncols}" style="text-align:left">{html.escape(title)}</th></tr>'
        )

    def line(*cells: Any) -> None:
        rows.append("<tr>" + "".join(f"<td>{_cell(c)}</td>" for c in cells) + "</tr>")

    val, test = metrics.get("val") or {}, metrics.get("test") or {}
    scores = [
        k
        for k in dict.fromkeys([*val, *test])
        if isinstance(val.get(k, test.get(k)), (int, float))
        and not isinstance(val.get(k, test.get(k)), bool)
    ]
    if scores:
        rows.append("<tr><th>metric</th><th>val</th><th>test</th></tr>")
        for key in scores:
            line(key, val.get(key, "—"), test.get(key, "—"))
    section("data", 3)
    for key in (
        "task",
        "targets",
        "split",
        "seed",
        "n_train",
        "n_val",
        "n_test",
        "n_skipped",
        "best_epoch",
        "epochs_run",
    ):
        if key in metrics:
            rows.append(
                f'<tr><td>{html.escape(key)}</td><td colspan="2">{_cell(metrics[key])}</td></tr>'
            )
    for title, part in (("model", metrics.get("model")), ("settings", metrics.get("settings"))):
        if isinstance(part, Mapping) and part:
            section(title, 3)
            for key, value in part.items():
                rows.append(
                    f'<tr><td>{html.escape(str(key))}</td><td colspan="2">{_cell(value)}</td></tr>'
                )
    rows.append("</table>")
    return "\n".join(rows)
