"""Graph builders, experts, gate and the mixture-of-experts container."""

from mimoe_core.constants import GATES, VARIANTS
from mimoe_core.models._common import Expert, cosine_cutoff
from mimoe_core.models.gate import (
    MLPGate,
    RandomGate,
    Routing,
    SizeGate,
    TransformerGate,
    load_balancing_loss,
    top_k_routing,
)
from mimoe_core.models.mimoe import MIMoE, MoEOutput
from mimoe_core.models.radius_graph import (
    ExpertGraph,
    radius_graph,
    within_cutoff,
)
from mimoe_core.models.registry import (
    DEFAULT_CONFIG,
    EXPERTS,
    bundled_configs,
    config_radii,
    create_model,
    expert_class,
    load_config,
)

__all__ = [
    "DEFAULT_CONFIG",
    "EXPERTS",
    "GATES",
    "VARIANTS",
    "Expert",
    "ExpertGraph",
    "MIMoE",
    "MLPGate",
    "MoEOutput",
    "RandomGate",
    "Routing",
    "SizeGate",
    "TransformerGate",
    "bundled_configs",
    "config_radii",
    "cosine_cutoff",
    "create_model",
    "expert_class",
    "load_balancing_loss",
    "load_config",
    "radius_graph",
    "top_k_routing",
    "within_cutoff",
]
