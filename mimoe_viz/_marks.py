"""Expert cutoffs marked on figures: dotted lines in the expert colours, ``E1``... above.

One place for the markers, so a cutoff looks the same on descriptor curves, Betti curves,
barcodes and the teaching figures.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from mimoe_viz._style import expert_colors, expert_labels

if TYPE_CHECKING:
    import plotly.graph_objects as go


def cutoff_tags(fig: go.Figure, cutoffs: np.ndarray) -> None:
    """An ``E1``, ``E2``... annotation above the plot at each cutoff, in the expert colour."""
    colors = expert_colors(len(cutoffs))
    for e, cut in enumerate(cutoffs):
        fig.add_annotation(
            x=cut,
            xref="x",
            y=1.0,
            yref="paper",
            yanchor="bottom",
            text=f"E{e + 1}",
            showarrow=False,
            font={"color": colors[e], "size": 11},
        )


def cutoff_shapes(fig: go.Figure, cutoffs: np.ndarray, annotate: bool = True) -> None:
    """One thin vertical line per expert cutoff over the whole plot, in the expert colour.

    The lines get legend entries (group "expert cutoffs"); ``annotate`` adds
    :func:`cutoff_tags`.
    """
    colors, labels = expert_colors(len(cutoffs)), expert_labels(cutoffs)
    for e, cut in enumerate(cutoffs):
        fig.add_shape(
            type="line",
            x0=cut,
            x1=cut,
            xref="x",
            y0=0,
            y1=1,
            yref="paper",
            line={"color": colors[e], "width": 1.5, "dash": "dot"},
            name=labels[e],
            legendgroup="experts",
            legendgrouptitle_text="expert cutoffs" if e == 0 else None,
            showlegend=True,
            layer="below",
        )
    if annotate:
        cutoff_tags(fig, cutoffs)


def cutoff_vlines(fig: go.Figure, cutoffs: np.ndarray, rows: int = 1) -> None:
    """Dotted vertical lines at the expert cutoffs in every subplot row, plus the tags."""
    colors = expert_colors(len(cutoffs))
    for e, cut in enumerate(cutoffs):
        for row in range(1, rows + 1):
            fig.add_vline(
                x=cut,
                line={"color": colors[e], "width": 1.5, "dash": "dot"},
                layer="below",
                row=row if rows > 1 else None,
                col=1 if rows > 1 else None,
            )
    cutoff_tags(fig, cutoffs)


def cutoff_lines_mpl(ax: Any, cutoffs: np.ndarray, label: bool = False) -> None:
    """Dotted vertical lines at the expert cutoffs on a matplotlib Axes.

    With ``label`` each line carries its expert label, for the Axes' legend.
    """
    colors, labels = expert_colors(len(cutoffs)), expert_labels(cutoffs)
    for e, cut in enumerate(cutoffs):
        ax.axvline(cut, color=colors[e], lw=1, ls=":", **({"label": labels[e]} if label else {}))
