"""Torch-free analysis of results: metrics, result tables, routing and teaching topology.

The numbers behind every figure are computed here once, and :mod:`mimoe_viz` only draws
them (as giotto-tda's ``gtda/diagrams`` computes and ``gtda/plotting`` draws). Nothing in
this package imports torch, the models or the training loop:

- :mod:`~mimoe_core.analysis.metrics`: RMSE/MAE and ROC-AUC/PR-AUC with missing labels
  masked (re-exported by :mod:`mimoe_core.training.metrics`);
- :mod:`~mimoe_core.analysis.tables`: mean ± std over seeds per variant, Markdown tables;
- :mod:`~mimoe_core.analysis.routing`: expected cutoff, dominant expert, expert usage,
  routing order, descriptor at a radius, expert profiles and disagreement;
- :mod:`~mimoe_core.analysis.topology`: Vietoris-Rips simplices, connection radius and the
  scale table of the teaching figures;
- :mod:`~mimoe_core.analysis.uncertainty`: uncertainty metrics (NLL, Spearman, miscalibration
  area, ENCE, coverage, ECE, Brier), z-scaling, split-conformal intervals, probability
  calibration, ensemble spread and expert disagreement.
"""

from mimoe_core.analysis import routing, uncertainty
from mimoe_core.analysis.metrics import (
    SELECTION_METRIC,
    classification_metrics,
    compute_metrics,
    regression_metrics,
)
from mimoe_core.analysis.routing import *  # noqa: F403 (its __all__ is exported)
from mimoe_core.analysis.tables import markdown_table, seed_mean_std, summarize
from mimoe_core.analysis.topology import connection_radius, rips_simplices, scale_table
from mimoe_core.analysis.uncertainty import *  # noqa: F403 (its __all__ is exported)

__all__ = [
    *routing.__all__,
    *uncertainty.__all__,
    "SELECTION_METRIC",
    "classification_metrics",
    "compute_metrics",
    "connection_radius",
    "markdown_table",
    "regression_metrics",
    "rips_simplices",
    "scale_table",
    "seed_mean_std",
    "summarize",
]
