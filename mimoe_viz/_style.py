"""Colours and labels shared by every figure, so an expert looks the same everywhere."""

from __future__ import annotations

from collections.abc import Sequence

# ColorBrewer "Dark2": distinguishable on white, in print and for common colour-vision
# deficiencies; expert e always gets colour e.
_PALETTE = ("#1b9e77", "#d95f02", "#7570b3", "#e7298a", "#66a61e", "#e6ab02", "#a6761d",
            "#666666")  # fmt: skip

#: Expert cutoffs in Å of the shipped configurations (``mimoe_core/configs/*.yaml``).
DEFAULT_CUTOFFS: tuple[float, ...] = (2.0, 2.5, 3.0, 3.5, 4.0)

#: Colour of graph edges longer than every expert cutoff.
BEYOND_CUTOFFS = "#bbbbbb"

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


def expert_labels(cutoffs: Sequence[float]) -> list[str]:
    """``"E1 · 2 Å"``-style names, one per expert cutoff.

    Example:
        >>> expert_labels([2.0, 2.5])
        ['E1 · 2 Å', 'E2 · 2.5 Å']
    """
    return [f"E{e + 1} · {float(c):g} Å" for e, c in enumerate(cutoffs)]
