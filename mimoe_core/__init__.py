"""mimoe_core: data, conformers, topology, models, training and inference for MI-MoE."""

__version__ = "0.1.0"
