"""Colours and labels shared by every figure, so an expert looks the same everywhere."""

from __future__ import annotations

from mimoe_core.analysis.routing import expert_labels
from mimoe_core.constants import DEFAULT_CUTOFFS

__all__ = [
    "BEYOND_CUTOFFS",
    "BOTTOM_LEGEND",
    "ELEMENT_COLORS",
    "LEGEND_MARGIN",
    "DEFAULT_CUTOFFS",
    "DESCRIPTOR_LABELS",
    "HOMOLOGY_COLORS",
    "REFERENCE",
    "SERIES",
    "expert_colors",
    "expert_labels",
    "homology_color",
]

# ColorBrewer "Dark2": distinguishable on white, in print and for common colour-vision
# deficiencies; expert e always gets colour e.
_PALETTE = ("#1b9e77", "#d95f02", "#7570b3", "#e7298a", "#66a61e", "#e6ab02", "#a6761d", "#666666")

#: Colour of graph edges longer than every expert cutoff.
BEYOND_CUTOFFS = "#bbbbbb"

#: A plotly legend laid out horizontally at the bottom of the figure, inside the bottom
#: margin (``yref="container"``) and so below the x-axis title: it covers no axis title.
BOTTOM_LEGEND = {
    "orientation": "h",
    "xanchor": "left",
    "x": 0.0,
    "yref": "container",
    "yanchor": "bottom",
    "y": 0.0,
}
#: Bottom margin (px) under a :data:`BOTTOM_LEGEND`: tick labels and the x-axis title
#: (about 55 px), then up to three legend rows.
LEGEND_MARGIN = 150

#: Atom colours of the static 3D pictures (Jmol's scheme, which 3Dmol.js uses too);
#: other elements get :data:`OTHER_ELEMENT`.
ELEMENT_COLORS: dict[int, str] = {
    1: "#ffffff", 5: "#ffb5b5", 6: "#909090", 7: "#3050f8", 8: "#ff0d0d", 9: "#90e050",
    11: "#ab5cf2", 12: "#8aff00", 14: "#f0c8a0", 15: "#ff8000", 16: "#ffff30", 17: "#1ff01f",
    19: "#8f40d4", 20: "#3dff00", 26: "#e06633", 35: "#a62929", 53: "#940094",
}  # fmt: skip
OTHER_ELEMENT = "#ff1493"

#: Colour per homology dimension (H0, H1, H2), chosen apart from the expert palette.
HOMOLOGY_COLORS: dict[int, str] = {0: "#2166ac", 1: "#b2182b", 2: "#4d4d4d"}

# A neutral palette for variants, targets and molecules, kept apart from the expert colours.
SERIES = (
    "#4c72b0",
    "#dd8452",
    "#55a868",
    "#c44e52",
    "#8172b3",
    "#937860",
    "#da8bc3",
    "#8c8c8c",
    "#ccb974",
    "#64b5cd",
)

#: Colour of reference lines: the chance diagonal, ``y = x``.
REFERENCE = "#999999"

#: Axis labels of the five descriptors, raw and normalized.
DESCRIPTOR_LABELS = {
    "betti0": "Betti-0",
    "betti1": "Betti-1",
    "randic": "Randić index",
    "wiener": "Wiener index",
    "efficiency": "global efficiency",
}


def expert_colors(num_experts: int) -> list[str]:
    """One hex colour per expert, the palette repeated if there are more than 8.

    Example:
        >>> expert_colors(2)
        ['#1b9e77', '#d95f02']
    """
    return [_PALETTE[e % len(_PALETTE)] for e in range(num_experts)]


def homology_color(dim: int) -> str:
    """The colour of homology dimension ``dim`` (black beyond H2).

    Example:
        >>> homology_color(1), homology_color(5)
        ('#b2182b', '#000000')
    """
    return HOMOLOGY_COLORS.get(dim, "#000000")
