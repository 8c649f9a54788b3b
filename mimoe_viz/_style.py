"""Colours and labels shared by every figure, so an expert looks the same everywhere."""

from __future__ import annotations

from mimoe_core.analysis.routing import expert_labels
from mimoe_core.constants import DEFAULT_CUTOFFS

__all__ = [
    "BEYOND_CUTOFFS",
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
