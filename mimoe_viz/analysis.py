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
for classification (the space in which the linear head mixes the experts).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from mimoe_core.results import PredictionResult
from mimoe_core.topology import DESCRIPTOR_NAMES
from mimoe_viz._deps import apply_layout, plotly_go
from mimoe_viz._routing import (
    check_result,
    dominant_groups,
    hover_entry,
    ok_indices,
    spearman,
    target_index,
)
from mimoe_viz._style import DESCRIPTOR_LABELS, expert_colors, expert_labels
from mimoe_viz.dataset_routing import dominant_expert, expert_usage

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


# --------------------------------------------------------------------------- helpers


def _descriptor_names(result: PredictionResult) -> list[str]:
    return list(result.descriptor_names) or list(DESCRIPTOR_NAMES)


def _radius_index(result: PredictionResult, radius: float | None) -> int:
    """Grid index nearest to ``radius`` (default: the middle expert cutoff)."""
    _, cutoffs = check_result(result)
    radii = np.asarray(result.radii, dtype=np.float64)
    if radii.size == 0:
        raise ValueError("the result has no filtration grid (radii)")
    if radius is None:
        radius = float(np.sort(cutoffs)[len(cutoffs) // 2])
    step = float(np.min(np.diff(radii))) if len(radii) > 1 else 0.0
    if not (radii[0] - step / 2 <= radius <= radii[-1] + step / 2):
        raise ValueError(f"radius {radius} Å is outside the grid [{radii[0]:g}, {radii[-1]:g}] Å")
    return int(np.argmin(np.abs(radii - radius)))


def descriptor_at(
    result: PredictionResult, descriptor: str, radius: float | None = None
) -> tuple[np.ndarray, float]:
    """One descriptor of every entry at one radius of the filtration grid (the gate's input).

    Args:
        result: a prediction result with topo [M, T, D].
        descriptor: one of ``result.descriptor_names`` (e.g. ``"wiener"``).
        radius: radius in Å inside the grid; default None: the middle expert cutoff
            (``sorted(cutoffs)[K // 2]``). The nearest grid radius is used.

    Returns:
        ``(values [M], grid radius used in Å)``; NaN for skipped entries.

    Raises:
        ValueError: for an unknown descriptor, a radius outside the grid, or topo that is
            not [M, T, D].
    """
    names = _descriptor_names(result)
    if descriptor not in names:
        raise ValueError(f"unknown descriptor {descriptor!r}; the result has {names}")
    topo = np.asarray(result.topo, dtype=np.float64)
    expected = (len(result), len(result.radii), len(names))
    if topo.shape != expected:
        raise ValueError(f"result.topo has shape {topo.shape}, expected [M, T, D] = {expected}")
    t = _radius_index(result, radius)
    values = topo[:, t, names.index(descriptor)].copy()
    values[~result.ok] = np.nan
    return values, float(result.radii[t])


def _selected_predictions(result: PredictionResult, t: int) -> tuple[np.ndarray, np.ndarray]:
    """(alpha [M, K] with NaN -> 0, expert predictions [M, K] with unselected -> NaN)."""
    alpha, _ = check_result(result)
    alpha = np.nan_to_num(alpha, nan=0.0)
    experts = np.asarray(result.expert_predictions, dtype=np.float64)
    if experts.ndim != 3 or experts.shape[:2] != alpha.shape:
        raise ValueError(
            f"result.expert_predictions has shape {experts.shape}, expected [M, K, targets] "
            f"with [M, K] = {alpha.shape}"
        )
    preds = np.where(alpha > 0, experts[:, :, t], np.nan)
    return alpha, preds


# --------------------------------------------------------------------------- specialization


def expert_profiles(
    result: PredictionResult, target: int | str = 0, radius: float | None = None
) -> pd.DataFrame:
    """Which molecules each expert takes: one row per expert.

    A molecule belongs to the expert with its largest routing weight (its dominant expert,
    ties to the lower index). Columns:

    - ``cutoff`` (Å); ``selected``: share of ok molecules that route to the expert at all
      (alpha > 0); ``mean_alpha``: mean weight over all ok molecules (sums to 1);
    - ``dominant``: number of molecules it dominates, and over those molecules:
      ``atoms_mean``, ``atoms_median`` (atoms with H), the mean of each descriptor the gate
      read at ``radius`` (columns named after the descriptors), ``prediction_mean`` and
      ``label_mean`` of ``target`` (NaN where there are no labels or no molecules).

    Args:
        result: a prediction result (atom counts need its structures; without them the
            ``atoms_*`` columns are NaN).
        target: target index or name for the prediction and label means; default 0.
        radius: radius in Å for the descriptor columns; default None: the middle expert
            cutoff.

    Returns:
        A DataFrame indexed by the expert labels (``"E1 · 2 Å"``...); ``attrs["radius"]`` is
        the grid radius of the descriptor columns.

    Raises:
        ValueError: if no entry is ok, or for an unknown target or a radius outside the grid.
    """
    _, cutoffs = check_result(result)
    ok = ok_indices(result)
    t = target_index(result, target)
    share, mean_alpha = expert_usage(result)
    dom = dominant_expert(result)
    sizes = result.num_atoms.astype(np.float64) if result.atomic_numbers else None
    labels = None if result.labels is None else np.asarray(result.labels, dtype=np.float64)[:, t]
    pred = np.asarray(result.prediction, dtype=np.float64)[:, t]
    names = _descriptor_names(result)
    columns = {name: descriptor_at(result, name, radius) for name in names}
    rows = []
    for e, cut in enumerate(cutoffs):
        members = ok[dom[ok] == e]
        row: dict[str, Any] = {
            "cutoff": float(cut),
            "selected": float(share[e]),
            "mean_alpha": float(mean_alpha[e]),
            "dominant": int(members.size),
        }
        row["atoms_mean"] = _mean(sizes, members)
        row["atoms_median"] = (
            float(np.median(sizes[members])) if sizes is not None and members.size else np.nan
        )
        for name in names:
            row[name] = _mean(columns[name][0], members)
        row["prediction_mean"] = _mean(pred, members)
        row["label_mean"] = _mean(labels, members)
        rows.append(row)
    frame = pd.DataFrame(rows, index=pd.Index(expert_labels(cutoffs), name="expert"))
    frame.attrs["radius"] = columns[names[0]][1] if names else float("nan")
    return frame


def _mean(values: np.ndarray | None, members: np.ndarray) -> float:
    if values is None or members.size == 0:
        return float("nan")
    chosen = values[members]
    chosen = chosen[np.isfinite(chosen)]
    return float(chosen.mean()) if chosen.size else float("nan")


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
    names = _descriptor_names(result)
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
    _, cutoffs = check_result(result)
    ok = ok_indices(result)
    values, title = _profile_values(result, quantity, target, radius)
    dom = dominant_expert(result)
    labels, colors = expert_labels(cutoffs), expert_colors(len(cutoffs))
    fig = go.Figure()
    for e in range(len(cutoffs)):
        members = ok[(dom[ok] == e) & np.isfinite(values[ok])]
        if members.size == 0:
            continue
        fig.add_trace(
            go.Box(
                y=values[members],
                name=labels[e],
                marker={"color": colors[e]},
                boxpoints="all",
                jitter=0.4,
                pointpos=0.0,
                hovertext=[hover_entry(result, m) for m in members],
                hoverinfo="text+y",
                showlegend=False,
            )
        )
    fig.update_layout(
        title=f"{title} by dominant expert<br><sup>n = {ok.size} molecules</sup>",
        xaxis_title="dominant expert (largest α)",
        yaxis_title=title,
        template="plotly_white",
    )
    return apply_layout(fig, layout)


# --------------------------------------------------------------------------- disagreement


def expert_disagreement(result: PredictionResult, target: int | str = 0) -> pd.DataFrame:
    r"""How far apart the selected experts' predictions are, per ok molecule.

    With :math:`S` the selected experts (alpha > 0), :math:`\hat y_e` their predictions and
    :math:`\bar y = \sum_{e \in S} \alpha_e \hat y_e` the mixture:

    .. math::
        \mathrm{spread} = \max_{e \in S} \hat y_e - \min_{e \in S} \hat y_e, \qquad
        \mathrm{weighted\_std} = \sqrt{\textstyle\sum_{e \in S} \alpha_e (\hat y_e - \bar y)^2}

    (for k = 2, weighted_std = sqrt(α1 α2) · spread). Regression: original units, and
    :math:`\bar y` is the prediction. Classification: logits, the space the head mixes in.

    Args:
        result: a prediction result.
        target: target index or name; default 0.

    Returns:
        One row per ok entry, largest spread first (ties in input order): ``index`` (entry
        index into ``result``), ``id``, ``smiles``, ``atoms`` (0 without structures),
        ``experts`` (selected expert labels), ``k``, ``spread``, ``weighted_std``,
        ``prediction`` (probability for classification), ``label`` and ``abs_error``
        (absolute difference of prediction and label; NaN without a label).

    Raises:
        ValueError: if no entry is ok, for an unknown target, or if expert_predictions is
            not [M, K, targets].
    """
    _, cutoffs = check_result(result)
    ok = ok_indices(result)
    t = target_index(result, target)
    alpha, preds = _selected_predictions(result, t)
    names = expert_labels(cutoffs)
    spread = np.zeros(len(result))
    wstd = np.zeros(len(result))
    for m in ok:
        sel = np.flatnonzero(alpha[m] > 0)
        values = preds[m, sel]
        finite = np.isfinite(values)
        if finite.sum() >= 2:
            spread[m] = values[finite].max() - values[finite].min()
            w = alpha[m, sel][finite] / alpha[m, sel][finite].sum()
            mix = float(np.sum(w * values[finite]))
            wstd[m] = float(np.sqrt(np.sum(w * (values[finite] - mix) ** 2)))
    prediction = np.asarray(result.prediction, dtype=np.float64)[:, t]
    labels = (
        np.full(len(result), np.nan)
        if result.labels is None
        else np.asarray(result.labels, dtype=np.float64)[:, t]
    )
    frame = pd.DataFrame(
        {
            "index": ok,
            "id": [result.ids[m] for m in ok],
            "smiles": [result.smiles[m] for m in ok],
            "atoms": result.num_atoms[ok],
            "experts": [", ".join(names[e] for e in np.flatnonzero(alpha[m] > 0)) for m in ok],
            "k": (alpha[ok] > 0).sum(axis=1),
            "spread": spread[ok],
            "weighted_std": wstd[ok],
            "prediction": prediction[ok],
            "label": labels[ok],
            "abs_error": np.abs(prediction[ok] - labels[ok]),
        }
    )
    order = np.lexsort((np.arange(len(frame)), -frame["spread"].to_numpy()))
    return frame.iloc[order].reset_index(drop=True)


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
    _, cutoffs = check_result(result)
    t = target_index(result, target)
    table = expert_disagreement(result, t).head(top)
    alpha, preds = _selected_predictions(result, t)
    index = table["index"].to_numpy()
    pairs = zip(table["id"], table["spread"], strict=True)
    rows = [f"{r + 1} · {name} ({s:.2g})" for r, (name, s) in enumerate(pairs)]
    labels, colors = expert_labels(cutoffs), expert_colors(len(cutoffs))
    classification = result.task == "classification"
    mixture = np.nansum(np.nan_to_num(preds[index]) * alpha[index], axis=1)
    if not classification:
        mixture = table["prediction"].to_numpy()
    fig = go.Figure()
    lo, hi = np.nanmin(preds[index], axis=1), np.nanmax(preds[index], axis=1)
    line_x = [v for a, b in zip(lo, hi, strict=True) for v in (a, b, None)]
    line_y = [v for r in rows for v in (r, r, None)]
    fig.add_trace(
        go.Scatter(x=line_x, y=line_y, mode="lines", name="range",
                   line={"color": "#bbbbbb", "width": 3}, hoverinfo="skip")
    )  # fmt: skip
    for e in range(len(cutoffs)):
        sel = alpha[index, e] > 0
        if not sel.any():
            continue
        fig.add_trace(
            go.Scatter(
                x=preds[index[sel], e],
                y=[r for r, s in zip(rows, sel, strict=True) if s],
                mode="markers",
                name=labels[e],
                marker={"color": colors[e], "size": 8 + 14 * alpha[index[sel], e],
                        "line": {"width": 0.5, "color": "white"}},
                customdata=alpha[index[sel], e],
                hovertemplate=f"{labels[e]}<br>α = %{{customdata:.2f}}<br>prediction "
                "%{x:.3g}<extra></extra>",
            )
        )  # fmt: skip
    fig.add_trace(
        go.Scatter(x=mixture, y=rows, mode="markers", name="mixture (prediction)",
                   marker={"symbol": "diamond", "size": 10, "color": "#222222"},
                   text=list(table["smiles"]), hovertemplate="%{text}<br>mixture %{x:.3g}"
                   "<extra></extra>")
    )  # fmt: skip
    if not classification and table["label"].notna().any():
        fig.add_trace(
            go.Scatter(x=table["label"], y=rows, mode="markers", name="label",
                       marker={"symbol": "circle-open", "size": 11, "color": "#c44e52",
                               "line": {"width": 2}},
                       hovertemplate="label %{x:.3g}<extra></extra>")
        )  # fmt: skip
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
    _, cutoffs = check_result(result)
    table = expert_disagreement(result, target)
    table = table[np.isfinite(table["abs_error"])]
    if table.empty:
        raise ValueError("no ok entry has a label for this target")
    dom = dominant_expert(result)[table["index"].to_numpy()]
    labels, colors = expert_labels(cutoffs), expert_colors(len(cutoffs))
    fig = go.Figure()
    for e, sel in dominant_groups(dom, len(cutoffs)):
        part = table[sel]
        fig.add_trace(
            go.Scatter(
                x=part["spread"], y=part["abs_error"], mode="markers", name=f"dominant {labels[e]}",
                marker={"color": colors[e], "size": 7, "opacity": 0.75},
                text=[f"{i}<br>{s}" for i, s in zip(part["id"], part["smiles"], strict=True)],
                hovertemplate="%{text}<br>spread %{x:.3g}<br>|error| %{y:.3g}<extra></extra>",
            )
        )  # fmt: skip
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
