"""Graph builders, experts, gate and the mixture-of-experts container."""

from mimoe_core.models.radius_graph import (
    ExpertGraph,
    RadiusGraph,
    multi_cutoff_graphs,
    radius_graph,
)

__all__ = ["ExpertGraph", "RadiusGraph", "multi_cutoff_graphs", "radius_graph"]
