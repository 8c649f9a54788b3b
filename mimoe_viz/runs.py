"""Figures of one training run folder and of ablation tables, re-exported in one place.

The code lives in one module per figure family; this module keeps the names importable from
``mimoe_viz.runs`` as before:

- :mod:`mimoe_viz.run_folder`: :class:`RunFolder` and :func:`load_run` (from
  :mod:`mimoe_core.run_folder`, the run folder's one owner);
- :mod:`mimoe_viz.training_figures`: :func:`training_curves_figure`, :func:`training_curves_mpl`;
- :mod:`mimoe_viz.evaluation_figures`: :func:`parity_figure`, :func:`roc_figure` and twins;
- :mod:`mimoe_viz.ablation_figures`: :func:`ablation_figure`, :func:`ablation_mpl`;
- :mod:`mimoe_viz.tables`: :func:`metrics_table_html`.
"""

from __future__ import annotations

from mimoe_viz.ablation_figures import ablation_figure, ablation_mpl
from mimoe_viz.evaluation_figures import parity_figure, parity_mpl, roc_figure, roc_mpl
from mimoe_viz.run_folder import RunFolder, load_run
from mimoe_viz.tables import metrics_table_html
from mimoe_viz.training_figures import training_curves_figure, training_curves_mpl

__all__ = [
    "RunFolder",
    "ablation_figure",
    "ablation_mpl",
    "load_run",
    "metrics_table_html",
    "parity_figure",
    "parity_mpl",
    "roc_figure",
    "roc_mpl",
    "training_curves_figure",
    "training_curves_mpl",
]
