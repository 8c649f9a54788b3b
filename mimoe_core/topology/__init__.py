"""Topology of molecular point clouds: the dense filtration seen by the MI-MoE gate.

Pure numpy functions (GUDHI for persistence): distances, Rips persistence diagrams, Betti
curves and the descriptor curves (Betti-0, Betti-1, Randić, Wiener, global efficiency) of
the graphs G(r) on a grid of radii in Å.
"""

from mimoe_core.topology._descriptors import descriptor_curves, descriptor_trajectories
from mimoe_core.topology._inputs import DEFAULT_RADII, DESCRIPTOR_NAMES, pairwise_distances
from mimoe_core.topology._persistence import betti_curves, persistence_diagram

__all__ = [
    "DEFAULT_RADII",
    "DESCRIPTOR_NAMES",
    "betti_curves",
    "descriptor_curves",
    "descriptor_trajectories",
    "pairwise_distances",
    "persistence_diagram",
]
