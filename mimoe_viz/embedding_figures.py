"""A data set map: the model's per-molecule embeddings projected to 2D, by dominant expert.

:func:`dataset_map_figure` projects the ``mixture`` embeddings (what the linear head reads)
of the ``ok`` entries of an :class:`~mimoe_core.results.EmbeddingResult` with PCA or t-SNE
(scikit-learn) and colours every molecule by the expert with the largest routing weight (or
by its expected cutoff); :func:`project_embedding` returns the projection itself.

Plotly functions return a ``plotly.graph_objects.Figure`` and take ``layout`` overrides.
Experts keep the colours and labels of :mod:`mimoe_viz._style` everywhere.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from mimoe_core.analysis.routing import dominant_from_alpha, expected_cutoff_from_alpha
from mimoe_core.results import EmbeddingResult
from mimoe_viz._deps import apply_layout, plotly_go, require
from mimoe_viz._routing import dominant_groups
from mimoe_viz._style import expert_colors, expert_labels

if TYPE_CHECKING:
    import plotly.graph_objects as go

__all__ = ["COLOR_BY", "PROJECTIONS", "dataset_map_figure", "project_embedding"]

#: The projections :func:`project_embedding` knows.
PROJECTIONS = ("pca", "tsne")
#: What :func:`dataset_map_figure` can colour molecules by.
COLOR_BY = ("dominant", "expected_cutoff")


def project_embedding(
    embedding: EmbeddingResult, method: str = "pca", seed: int = 0
) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """2D coordinates of the ``mixture`` embeddings of the ok entries.

    Args:
        embedding: an embedding result.
        method: ``"pca"`` (default; scikit-learn ``PCA``) or ``"tsne"`` (``TSNE`` with PCA
            initialization and perplexity ``min(30, n - 1)``).
        seed: random state of the projection, default 0.

    Returns:
        ``(indices, coords, info)``: the entry indices of the ok rows [n], their coordinates
        [n, 2] (a second column of zeros when only one component exists), and the numbers
        of the projection: ``method``, ``n_points``, ``seed``, and for PCA
        ``explained_variance_ratio`` (one per component), for t-SNE ``perplexity`` and
        ``kl_divergence``.

    Raises:
        ValueError: for an unknown method, embeddings that are not [M, H], no ok entry, or
            t-SNE on fewer than 2 molecules.
        ImportError: if scikit-learn is missing.
    """
    if method not in PROJECTIONS:
        raise ValueError(f"method must be one of {PROJECTIONS}, got {method!r}")
    mixture = np.asarray(embedding.mixture, dtype=np.float64)
    if mixture.ndim != 2 or len(mixture) != len(embedding.status):
        raise ValueError(f"mixture must be [M, H] with M = {len(embedding.status)} entries")
    indices = np.flatnonzero(embedding.ok)
    if indices.size == 0:
        raise ValueError("no entry is ok: nothing to project")
    x = mixture[indices]
    if not np.isfinite(x).all():
        raise ValueError("the mixture embeddings of ok entries hold NaN or inf")
    n = len(x)
    info: dict[str, Any] = {"method": method, "n_points": int(n), "seed": int(seed)}
    if method == "pca":
        decomposition = require("sklearn.decomposition")
        components = min(2, n, x.shape[1])
        pca = decomposition.PCA(n_components=components, random_state=seed)
        coords = pca.fit_transform(x) if n > 1 else np.zeros((1, 1))
        ratio = pca.explained_variance_ratio_ if n > 1 else np.zeros(1)
        info["explained_variance_ratio"] = [float(r) for r in np.nan_to_num(ratio)]
    else:
        if n < 2:
            raise ValueError("t-SNE needs at least 2 ok entries")
        manifold = require("sklearn.manifold")
        perplexity = float(min(30.0, n - 1))
        tsne = manifold.TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=seed)
        coords = tsne.fit_transform(x)
        info["perplexity"] = perplexity
        info["kl_divergence"] = float(tsne.kl_divergence_)
    if coords.shape[1] < 2:
        coords = np.column_stack([coords, np.zeros(n)])
    return indices, np.asarray(coords, dtype=np.float64), info


def dataset_map_figure(
    embedding: EmbeddingResult,
    method: str = "pca",
    color_by: str = "dominant",
    seed: int = 0,
    layout: Mapping[str, Any] | None = None,
) -> go.Figure:
    r"""The data set as the model sees it: embeddings in 2D, one dot per ok molecule.

    Args:
        embedding: an embedding result (:func:`mimoe_core.inference.embed.embed`).
        method: ``"pca"`` (default) or ``"tsne"``, as :func:`project_embedding`.
        color_by: ``"dominant"`` (default): one trace per expert that dominates (largest
            alpha) at least one molecule, in that expert's colour; ``"expected_cutoff"``: one
            trace coloured by :math:`\sum_e \alpha_e c_e` in Å.
        seed: random state of the projection, default 0.
        layout: overrides passed to ``Figure.update_layout``; default None.

    Returns:
        A plotly Figure of Scatter traces holding together every ok entry once (hover: id,
        SMILES, dominant expert and its alpha). ``fig.layout.meta`` holds the projection's
        numbers (:func:`project_embedding`'s ``info``, plus ``color_by``).

    Raises:
        ValueError: for an unknown method or ``color_by``, or as :func:`project_embedding`.
        ImportError: if plotly or scikit-learn is missing.
    """
    if color_by not in COLOR_BY:
        raise ValueError(f"color_by must be one of {COLOR_BY}, got {color_by!r}")
    go = plotly_go()
    indices, coords, info = project_embedding(embedding, method, seed)
    cutoffs = np.asarray(embedding.cutoffs, dtype=np.float64)
    alpha = np.asarray(embedding.alpha, dtype=np.float64)[indices]
    if alpha.ndim != 2 or alpha.shape[1] != len(cutoffs):
        raise ValueError(f"alpha must be [M, K] with K = {len(cutoffs)} cutoffs")
    labels, colors = expert_labels(cutoffs), expert_colors(len(cutoffs))
    dominant = dominant_from_alpha(alpha)
    hover = np.array(
        [
            f"{embedding.ids[m]}<br>{embedding.smiles[m]}<br>"
            f"dominant {labels[d]}: α = {alpha[i, d]:.3f}"
            for i, (m, d) in enumerate(zip(indices, dominant, strict=True))
        ]
    )
    fig = go.Figure()
    if color_by == "dominant":
        for e, mask in dominant_groups(dominant, len(cutoffs)):
            fig.add_trace(
                go.Scatter(
                    x=coords[mask, 0],
                    y=coords[mask, 1],
                    mode="markers",
                    marker={"color": colors[e], "size": 7, "opacity": 0.8},
                    name=f"dominant {labels[e]}",
                    hovertext=list(hover[mask]),
                    hoverinfo="text",
                )
            )
    else:
        cut = expected_cutoff_from_alpha(alpha, cutoffs)
        fig.add_trace(
            go.Scatter(
                x=coords[:, 0],
                y=coords[:, 1],
                mode="markers",
                marker={
                    "color": cut,
                    "colorscale": "Viridis",
                    "cmin": float(cutoffs.min()),
                    "cmax": float(cutoffs.max()),
                    "colorbar": {"title": "Σ α_e c_e (Å)"},
                    "size": 7,
                    "opacity": 0.8,
                },
                name="expected cutoff",
                hovertext=[
                    f"{h}<br>expected cutoff {c:.2f} Å" for h, c in zip(hover, cut, strict=True)
                ],
                hoverinfo="text",
            )
        )
    if method == "pca":
        ratio = info["explained_variance_ratio"] + [0.0]
        axes = [f"PC{i + 1} ({ratio[i]:.0%} of variance)" for i in range(2)]
        subtitle = f"PCA, {sum(info['explained_variance_ratio']):.0%} of variance shown"
    else:
        axes = ["t-SNE 1", "t-SNE 2"]
        subtitle = f"t-SNE, perplexity {info['perplexity']:g}, seed {seed}"
    fig.update_layout(
        title=f"Data set map · {len(indices)} molecules<br><sup>{subtitle}</sup>",
        xaxis={"title": axes[0], "zeroline": False},
        yaxis={"title": axes[1], "zeroline": False},
        legend={"title": "dominant expert"} if color_by == "dominant" else None,
        template="plotly_white",
        meta={**info, "color_by": color_by},
    )
    return apply_layout(fig, layout)
