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
  scale table of the teaching figures.
"""

from mimoe_core.analysis.metrics import (
    SELECTION_METRIC,
    classification_metrics,
    compute_metrics,
    regression_metrics,
)
from mimoe_core.analysis.routing import (
    descriptor_at,
    dominant_expert,
    dominant_from_alpha,
    expected_cutoff,
    expected_cutoff_from_alpha,
    expert_disagreement,
    expert_labels,
    expert_profiles,
    expert_usage,
    routing_order,
    target_index,
)
from mimoe_core.analysis.tables import markdown_table, seed_mean_std, summarize
from mimoe_core.analysis.topology import connection_radius, rips_simplices, scale_table

__all__ = [
    "SELECTION_METRIC",
    "classification_metrics",
    "compute_metrics",
    "connection_radius",
    "descriptor_at",
    "dominant_expert",
    "dominant_from_alpha",
    "expected_cutoff",
    "expected_cutoff_from_alpha",
    "expert_disagreement",
    "expert_labels",
    "expert_profiles",
    "expert_usage",
    "markdown_table",
    "regression_metrics",
    "rips_simplices",
    "routing_order",
    "scale_table",
    "seed_mean_std",
    "summarize",
    "target_index",
]
