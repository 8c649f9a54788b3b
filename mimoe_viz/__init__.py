"""mimoe_viz: figures and widgets that read mimoe_core result objects (never trains).

Per molecule: :mod:`~mimoe_viz.mol3d` (3D structure with the filtration, radius slider),
:mod:`~mimoe_viz.curves` (descriptor and Betti curves), :mod:`~mimoe_viz.persistence`
(barcodes, persistence diagrams), :mod:`~mimoe_viz.routing` (routing weights, expert
contributions). Per data set: :mod:`~mimoe_viz.dataset_routing` (routing maps, expert usage,
cutoff against size or a descriptor), :mod:`~mimoe_viz.analysis`. Per run:
:mod:`~mimoe_viz.run_folder` (:func:`load_run`), :mod:`~mimoe_viz.training_figures`,
:mod:`~mimoe_viz.evaluation_figures` (parity, ROC), :mod:`~mimoe_viz.uncertainty_figures`
(calibration, error against std, intervals), :mod:`~mimoe_viz.embedding_figures` (dataset
map of the embeddings), :mod:`~mimoe_viz.ablation_figures`, :mod:`~mimoe_viz.cost_figures`
(memory and time of expert schemes),
:mod:`~mimoe_viz.tables` (:mod:`~mimoe_viz.runs` re-exports these five),
:func:`report` (one HTML page per run), :func:`explore` (a linked dashboard).
Export: :mod:`~mimoe_viz.export` (PNG through matplotlib, offline HTML).
"""

from mimoe_viz._style import DEFAULT_CUTOFFS, expert_colors, expert_labels
from mimoe_viz.ablation_figures import ablation_figure, ablation_mpl
from mimoe_viz.cost_figures import trunk_cost_figure
from mimoe_viz.curves import (
    barcode_figure,
    barcode_mpl,
    descriptor_curves_figure,
    descriptor_curves_mpl,
    persistence_diagram_figure,
    persistence_diagram_mpl,
)
from mimoe_viz.dashboards import explore
from mimoe_viz.embedding_figures import dataset_map_figure, project_embedding
from mimoe_viz.evaluation_figures import parity_figure, parity_mpl, roc_figure, roc_mpl
from mimoe_viz.export import html_page, save_html, save_png
from mimoe_viz.mol3d import (
    filtration_edges,
    filtration_state,
    filtration_widget,
    molecule_html,
    molecule_view,
    save_molecule_html,
)
from mimoe_viz.report import report
from mimoe_viz.routing import (
    alpha_figure,
    alpha_mpl,
    alpha_vs_descriptor_figure,
    alpha_vs_size_figure,
    alpha_vs_size_mpl,
    contribution_waterfall,
    contribution_waterfall_mpl,
    expert_usage_figure,
    expert_usage_mpl,
    routing_map,
    routing_map_mpl,
)
from mimoe_viz.run_folder import RunFolder, load_run
from mimoe_viz.tables import metrics_table_html
from mimoe_viz.training_figures import training_curves_figure, training_curves_mpl
from mimoe_viz.uncertainty_figures import (
    coverage_calibration_figure,
    error_vs_std_figure,
    parity_interval_figure,
)

__all__ = [
    "dataset_map_figure",
    "project_embedding",
    "coverage_calibration_figure",
    "error_vs_std_figure",
    "parity_interval_figure",
    "DEFAULT_CUTOFFS",
    "RunFolder",
    "ablation_figure",
    "ablation_mpl",
    "trunk_cost_figure",
    "alpha_figure",
    "alpha_mpl",
    "alpha_vs_descriptor_figure",
    "alpha_vs_size_figure",
    "alpha_vs_size_mpl",
    "barcode_figure",
    "barcode_mpl",
    "contribution_waterfall",
    "contribution_waterfall_mpl",
    "descriptor_curves_figure",
    "descriptor_curves_mpl",
    "expert_colors",
    "expert_labels",
    "expert_usage_figure",
    "expert_usage_mpl",
    "explore",
    "filtration_edges",
    "filtration_state",
    "filtration_widget",
    "html_page",
    "load_run",
    "metrics_table_html",
    "molecule_html",
    "molecule_view",
    "parity_figure",
    "parity_mpl",
    "persistence_diagram_figure",
    "persistence_diagram_mpl",
    "report",
    "roc_figure",
    "roc_mpl",
    "routing_map",
    "routing_map_mpl",
    "save_html",
    "save_molecule_html",
    "save_png",
    "training_curves_figure",
    "training_curves_mpl",
]
