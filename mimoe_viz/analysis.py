"""Dataset-level analysis of routing: what each expert takes, and where experts disagree.

Everything reads a :class:`~mimoe_core.results.PredictionResult` (no model, no torch), over
its ``ok`` entries. Tables are pandas DataFrames; figures are plotly Figures that take
``layout`` overrides and are never shown here.

- :func:`expert_profiles` / :func:`expert_profile_figure`: per expert, the molecules for
  which it is the dominant one (largest alpha): how many, how large, which descriptor
  values, which labels.
- :func:`expert_disagreement` / :func:`disagreement_figure`: per molecule, how far apart the
  predictions of its selected experts are; :func:`disagreement_error_figure` asks whether
  that spread goes with the error.

Disagreement is measured on ``expert_predictions``: original units for regression, logits
for classification (the space in which the linear head mixes the experts). The tables
(:func:`expert_profiles`, :func:`expert_disagreement`, :func:`descriptor_at`) are computed in
:mod:`mimoe_core.analysis.routing` and re-exported here; this module draws them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from mimoe_core.analysis.routing import (
    descriptor_at,
    descriptor_names,
    dominant_expert,
    expert_disagreement,
    expert_profiles,
    selected_predictions,
)
from mimoe_core.results import PredictionResult
from mimoe_viz._deps import apply_layout, plotly_go
from mimoe_viz._routing import (
    checked_experts,
    dominant_groups,
    hover_entry,
    ok_indices,
    spearman,
    target_index,
)
from mimoe_viz._style import DESCRIPTOR_LABELS

if TYPE_CHECKING:
    import plotly.graph_objects as go

__all__ = [
    "PROFILE_QUANTITIES",
    "descriptor_at",
    "disagreement_error_figure",
    "disagreement_figure",
    "expert_disagreement",
    "expert_profile_figure",
    "expert_profiles",
]

#: Quantities :func:`expert_profile_figure` accepts besides the descriptor names.
PROFILE_QUANTITIES = ("atoms", "label", "prediction")

# The fixed styling of each trace family; the calls add data, names and colours.
_PROFILE_BOX = {
    "boxpoints": "all",
    "jitter": 0.4,
    "pointpos": 0.0,
    "hoverinfo": "text+y",
    "showlegend": False,
}
_EXPERT_RING = {"width": 0.5, "color": "white"}  # outline of the per-expert dots
_RANGE = {"mode": "lines", "name": "range", "line": {"color": "#bbbbbb", "width": 3}}
_MIXTURE = {
    "mode": "markers",
    "name": "mixture (prediction)",
    "marker": {"symbol": "diamond", "size": 10, "color": "#222222"},
    "hovertemplate": "%{text}<br>mixture %{x:.3g}<extra></extra>",
}
_LABEL = {
    "mode": "markers",
    "name": "label",
    "marker": {"symbol": "circle-open", "size": 11, "color": "#c44e52", "line": {"width": 2}},
    "hovertemplate": "label %{x:.3g}<extra></extra>",
}
_SPREAD_ERROR = {
    "mode": "markers",
    "hovertemplate": "%{text}<br>spread %{x:.3g}<br>|error| %{y:.3g}<extra></extra>",
}


def _profile_values(
    result: PredictionResult, quantity: str, target: int | str, radius: float | None
) -> tuple[np.ndarray, str]:
    """Values [M] of ``quantity`` and an axis title."""
    if quantity == "atoms":
        if not result.atomic_numbers:
            raise ValueError("quantity 'atoms' needs atom counts; the result kept no structures")
        return result.num_atoms.astype(np.float64), "atoms per molecule (with H)"
    if quantity in ("label", "prediction"):
        t = target_index(result, target)
        if quantity == "label":
            if result.labels is None:
                raise ValueError("quantity 'label' needs a result with labels")
            return np.asarray(result.labels, dtype=np.float64)[:, t], f"label {result.targets[t]}"
        pred = np.asarray(result.prediction, dtype=np.float64)[:, t]
        return pred, f"prediction {result.targets[t]}"
    names = descriptor_names(result)
    if quantity not in names:
        raise ValueError(
            f"quantity must be one of {list(PROFILE_QUANTITIES)} or a descriptor {names}, "
            f"got {quantity!r}"
        )
    values, r = descriptor_at(result, quantity, radius)
    return values, f"{DESCRIPTOR_LABELS.get(quantity, quantity)} at r = {r:g} Å (gate input)"


def expert_profile_figure(
    result: PredictionResult,
    quantity: str = "atoms",
    target: int | str = 0,
    radius: float | None = None,
    layout: Mapping[str, Any] | None = None,
) -> go.Figure:
    """Distribution of one quantity over the molecules each expert dominates: box plots.

    Args:
        result: a prediction result.
        quantity: ``"atoms"`` (default; needs structures), ``"label"``, ``"prediction"``,
            or a descriptor name (read at ``radius``).
        target: target index or name for ``"label"`` / ``"prediction"``; default 0.
        radius: radius in Å for a descriptor; default None: the middle expert cutoff.
        layout: overrides passed to ``Figure.update_layout``; default None.

    Returns:
        A plotly Figure with one ``go.Box`` per expert that dominates at least one ok
        molecule (name = expert label, y = the values of its molecules, every point drawn,
        expert colour).

    Raises:
        ValueError: for an unknown quantity, missing structures or labels it needs, or no
            ok entry.
        ImportError: if plotly is missing.
    """
    go = plotly_go()
    _, cutoffs, labels, colors = checked_experts(result)
    ok = ok_indices(result)
    values, title = _profile_values(result, quantity, target, radius)
    dom = dominant_expert(result)
    fig = go.Figure()
    for e in range(len(cutoffs)):
        members = ok[(dom[ok] == e) & np.isfinite(values[ok])]
        if members.size == 0:
            continue
        hover = [hover_entry(result, m) for m in members]
        marker = {"color": colors[e]}
        box = go.Box(
            y=values[members], name=labels[e], marker=marker, hovertext=hover, **_PROFILE_BOX
        )
        fig.add_trace(box)
    fig.update_layout(
        title=f"{title} by dominant expert<br><sup>n = {ok.size} molecules</sup>",
        xaxis_title="dominant expert (largest α)",
        yaxis_title=title,
        template="plotly_white",
    )
    return apply_layout(fig, layout)


# --------------------------------------------------------------------------- disagreement


def disagreement_figure(
    result: PredictionResult,
    target: int | str = 0,
    top: int = 12,
    layout: Mapping[str, Any] | None = None,
) -> go.Figure:
    """The ``top`` molecules whose selected experts disagree most: one row each.

    Each row shows the selected experts' own predictions (dots in expert colours, size
    growing with alpha, joined by a grey line), the mixed prediction (black diamond) and the
    label (open circle) when known. For classification the axis is the logit, and the label
    is not drawn (it is 0 or 1, not a logit).

    Args:
        result: a prediction result.
        target: target index or name; default 0.
        top: how many molecules, largest spread first; default 12.
        layout: overrides passed to ``Figure.update_layout``; default None.

    Returns:
        A plotly Figure: one marker trace per expert that occurs among the rows (x = its
        predictions, y = the row names), then "range", "mixture" and (regression with
        labels) "label" traces. Rows are named ``"rank · id (spread)"`` in
        :func:`expert_disagreement` order, the first at the top.

    Raises:
        ValueError: if ``top`` < 1, no entry is ok, or for an unknown target.
        ImportError: if plotly is missing.
    """
    if top < 1:
        raise ValueError(f"top must be >= 1, got {top}")
    go = plotly_go()
    _, cutoffs, labels, colors = checked_experts(result)
    t = target_index(result, target)
    table = expert_disagreement(result, t).head(top)
    alpha, preds = selected_predictions(result, t)
    index = table["index"].to_numpy()
    pairs = zip(table["id"], table["spread"], strict=True)
    rows = [f"{r + 1} · {name} ({s:.2g})" for r, (name, s) in enumerate(pairs)]
    classification = result.task == "classification"
    mixture = np.nansum(np.nan_to_num(preds[index]) * alpha[index], axis=1)
    if not classification:
        mixture = table["prediction"].to_numpy()
    fig = go.Figure()
    lo, hi = np.nanmin(preds[index], axis=1), np.nanmax(preds[index], axis=1)
    line_x = [v for a, b in zip(lo, hi, strict=True) for v in (a, b, None)]
    line_y = [v for r in rows for v in (r, r, None)]
    fig.add_trace(go.Scatter(x=line_x, y=line_y, hoverinfo="skip", **_RANGE))
    for e in range(len(cutoffs)):
        sel = alpha[index, e] > 0
        if not sel.any():
            continue
        weight = alpha[index[sel], e]
        marker = {"color": colors[e], "size": 8 + 14 * weight, "line": _EXPERT_RING}
        hover = f"{labels[e]}<br>α = %{{customdata:.2f}}<br>prediction %{{x:.3g}}<extra></extra>"
        ys = [r for r, s in zip(rows, sel, strict=True) if s]
        points = {"name": labels[e], "marker": marker, "customdata": weight, "hovertemplate": hover}
        fig.add_trace(go.Scatter(x=preds[index[sel], e], y=ys, mode="markers", **points))
    fig.add_trace(go.Scatter(x=mixture, y=rows, text=list(table["smiles"]), **_MIXTURE))
    if not classification and table["label"].notna().any():
        fig.add_trace(go.Scatter(x=table["label"], y=rows, **_LABEL))
    name = result.targets[t]
    unit = f"logit P({name})" if classification else name
    fig.update_layout(
        title=f"Where the selected experts disagree most · {len(rows)} molecules<br>"
        "<sup>row label: rank · id (spread between the selected experts)</sup>",
        xaxis_title=f"{unit}: each selected expert's own prediction",
        yaxis={"autorange": "reversed", "type": "category", "title": ""},
        template="plotly_white",
        height=int(np.clip(28 * len(rows) + 180, 320, 900)),
    )
    return apply_layout(fig, layout)


def disagreement_error_figure(
    result: PredictionResult, target: int | str = 0, layout: Mapping[str, Any] | None = None
) -> go.Figure:
    """Does the experts' disagreement go with the error? Spread against absolute error.

    One dot per ok molecule with a label, coloured by its dominant expert; the subtitle gives
    the Spearman rank correlation. A positive correlation makes the spread a (weak)
    uncertainty signal on this set; it is not calibrated.

    Args:
        result: a prediction result with labels.
        target: target index or name; default 0.
        layout: overrides passed to ``Figure.update_layout``; default None.

    Returns:
        A plotly Figure with one marker trace per dominant expert (x = spread as in
        :func:`expert_disagreement`, y = the absolute error); ``layout.meta`` holds
        ``spearman`` and ``n``.

    Raises:
        ValueError: if the result has no labels, or no ok entry has one.
        ImportError: if plotly is missing.
    """
    if result.labels is None:
        raise ValueError("disagreement_error_figure needs a result with labels")
    go = plotly_go()
    _, cutoffs, labels, colors = checked_experts(result)
    table = expert_disagreement(result, target)
    table = table[np.isfinite(table["abs_error"])]
    if table.empty:
        raise ValueError("no ok entry has a label for this target")
    dom = dominant_expert(result)[table["index"].to_numpy()]
    fig = go.Figure()
    for e, sel in dominant_groups(dom, len(cutoffs)):
        part = table[sel]
        text = [f"{i}<br>{s}" for i, s in zip(part["id"], part["smiles"], strict=True)]
        marker = {"color": colors[e], "size": 7, "opacity": 0.75}
        points = {"name": f"dominant {labels[e]}", "marker": marker, "text": text}
        fig.add_trace(go.Scatter(x=part["spread"], y=part["abs_error"], **points, **_SPREAD_ERROR))
    rho = spearman(table["spread"].to_numpy(), table["abs_error"].to_numpy())
    stat = f"Spearman ρ = {rho:+.2f}" if np.isfinite(rho) else "Spearman ρ undefined"
    t = target_index(result, target)
    space = "logit" if result.task == "classification" else result.targets[t]
    fig.update_layout(
        title=f"Expert disagreement vs error<br><sup>{stat}, n = {len(table)}</sup>",
        xaxis_title=f"spread of the selected experts ({space})",
        yaxis_title=f"|prediction − label| ({result.targets[t]})",
        template="plotly_white",
        meta={"spearman": rho, "n": len(table)},
    )
    return apply_layout(fig, layout)
