"""Helpers shared by the routing and analysis figures: experts, titles, hover text, groups.

The checks and statistics (``check_result``, ``target_index``, ``spearman``...) live in
:mod:`mimoe_core.analysis` and are re-exported here.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from mimoe_core.analysis.routing import binned_trend, spearman
from mimoe_core.analysis.validation import (
    atom_counts,
    check_index,
    check_result,
    ok_indices,
    target_index,
)
from mimoe_core.results import PredictionResult
from mimoe_viz._style import expert_colors, expert_labels

__all__ = [
    "atom_counts",
    "binned_trend",
    "check_index",
    "check_result",
    "checked_experts",
    "colored_ticks",
    "dominant_groups",
    "entry_title",
    "hover_entry",
    "ok_indices",
    "spearman",
    "target_index",
]


def checked_experts(
    result: PredictionResult,
) -> tuple[np.ndarray, np.ndarray, list[str], list[str]]:
    """``(alpha [M, K], cutoffs [K], labels, colors)``: checked result and expert styling.

    :func:`check_result` followed by the K experts' legend labels and colours, the
    prologue of every routing figure.
    """
    alpha, cutoffs = check_result(result)
    return alpha, cutoffs, expert_labels(cutoffs), expert_colors(len(cutoffs))


def entry_title(result: PredictionResult, i: int) -> str:
    name, smiles = result.ids[i], result.smiles[i]
    return name if not smiles or smiles == name else f"{name} · {smiles}"


def hover_entry(result: PredictionResult, i: int) -> str:
    size = f"{result.num_atoms[i]} atoms" if result.atomic_numbers else "size unknown"
    return f"{result.ids[i]}<br>{result.smiles[i]}<br>{size}"


def colored_ticks(labels: list[str], colors: list[str]) -> list[str]:
    return [f'<span style="color:{c}">{lab}</span>' for lab, c in zip(labels, colors, strict=True)]


def dominant_groups(dominant: np.ndarray, num_experts: int) -> Iterator[tuple[int, np.ndarray]]:
    """``(e, mask)`` for every expert e dominant for at least one entry, in expert order.

    Figures draw one trace per such expert, so an expert that never dominates gets none.
    """
    for e in range(num_experts):
        mask = dominant == e
        if mask.any():
            yield e, mask
