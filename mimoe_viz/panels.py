"""The per-molecule figures shared by the dashboard and the report."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from mimoe_core.results import PredictionResult
from mimoe_core.topology import descriptor_curves, persistence_diagram
from mimoe_viz import curves, persistence, routing


def molecule_figures(
    result: PredictionResult, index: int, radii: Sequence[float] | None = None
) -> dict[str, Any]:
    """Plotly figures of one entry: descriptor curves, barcode, routing weights, waterfall.

    Args:
        result: a result with structures (``result.structure(index)``).
        index: the entry.
        radii: filtration grid in Å for the curves; default the result's own grid.

    Returns:
        Dict ``curves``, ``barcode``, ``alpha``, ``waterfall`` of ``go.Figure``.

    Raises:
        ValueError: for a skipped entry or a result without structures.
    """
    _, pos = result.structure(index)
    grid = np.asarray(result.radii if radii is None else radii, dtype=np.float64)
    raw = descriptor_curves(pos, grid)
    norm = descriptor_curves(pos, grid, normalize=True)
    diagram = persistence_diagram(pos, max_edge_length=float(grid[-1]))
    return {
        "curves": curves.descriptor_curves_figure(raw, grid, result.cutoffs, normalized=norm),
        # H0 and H1 only: the 2-skeleton's H2 is mostly essential artefacts of the truncation.
        "barcode": persistence.barcode_figure(
            diagram,
            max_radius=float(grid[-1]),
            cutoffs=result.cutoffs,
            homology_dimensions=(0, 1),
        ),
        "alpha": routing.alpha_figure(result, index),
        "waterfall": routing.contribution_waterfall(result, index),
    }
