"""ViSNet expert (Wang et al. 2024, https://arxiv.org/abs/2210.16518) on a prebuilt graph.

PyG's ``ViSNetBlock`` provides every layer; its own forward builds the graph with
torch-cluster, so :meth:`ViSNetExpert.atom_features` runs the same steps on our graph.
PyG's ViSNet graph includes self-loops (zero vector, distance 0); they are added here too, so
the layers see exactly the graph they were written for.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch_geometric.nn.models.visnet import ViSNetBlock

from mimoe_core.models._common import MAX_Z, Expert
from mimoe_core.models.painn import unit_vectors


class ViSNetExpert(Expert):
    """ViSNet: vector-scalar interactive message passing with runtime geometry.

    Args:
        hidden_channels: width, default 128 (divisible by ``num_heads``).
        num_layers: ViS-MP layers, default 3.
        num_heads: attention heads, default 8.
        num_rbf: exp-normal radial functions, default 32.
        lmax: spherical-harmonic degree of the edge directions, default 1.
        cutoff: radius in Å of the expert's graph, default 5.0.
        pooling: ``"mean"`` (default) or ``"sum"``.
    """

    name = "visnet"

    def __init__(
        self,
        hidden_channels: int = 128,
        num_layers: int = 3,
        num_heads: int = 8,
        num_rbf: int = 32,
        lmax: int = 1,
        cutoff: float = 5.0,
        pooling: str = "mean",
    ) -> None:
        if num_heads < 1 or hidden_channels % num_heads:
            raise ValueError(
                f"hidden_channels={hidden_channels} must be divisible by num_heads={num_heads}"
            )
        super().__init__(hidden_channels, cutoff, pooling)
        self.num_layers, self.num_heads, self.num_rbf, self.lmax = (
            int(num_layers), int(num_heads), int(num_rbf), int(lmax),
        )  # fmt: skip
        self.block = ViSNetBlock(
            lmax=lmax,
            num_heads=num_heads,
            num_layers=num_layers,
            hidden_channels=hidden_channels,
            num_rbf=num_rbf,
            max_z=MAX_Z,
            cutoff=self.cutoff,
        )
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Re-initialize every learnable parameter."""
        self.block.reset_parameters()
        self.reset_readout()

    def atom_features(
        self, z: Tensor, pos: Tensor, edge_index: Tensor, edge_weight: Tensor, edge_vec: Tensor
    ) -> Tensor:
        """Invariant atom features [num_atoms, hidden_channels] (ViSNet's scalar channel)."""
        blk = self.block
        loops = torch.arange(z.numel(), device=z.device)
        edge_index = torch.cat([edge_index, torch.stack([loops, loops])], dim=1)
        edge_weight = torch.cat([edge_weight, edge_weight.new_zeros(z.numel())])
        direction = unit_vectors(edge_vec, edge_weight[: edge_vec.size(0)])
        direction = torch.cat([direction, direction.new_zeros(z.numel(), 3)])

        x = blk.embedding(z)
        edge_attr = blk.distance_expansion(edge_weight)
        edge_vec = blk.sphere(direction)
        x = blk.neighbor_embedding(z, x, edge_index, edge_weight, edge_attr)
        vec = x.new_zeros(x.size(0), (self.lmax + 1) ** 2 - 1, x.size(1))
        edge_attr = blk.edge_embedding(edge_index, edge_attr, x)
        for layer in blk.vis_mp_layers:
            dx, dvec, dedge = layer(x, vec, edge_index, edge_weight, edge_attr, edge_vec)
            x, vec = x + dx, vec + dvec
            if dedge is not None:
                edge_attr = edge_attr + dedge
        return blk.out_norm(x)

    def extra_repr(self) -> str:
        """Key settings shown by ``repr``."""
        return (
            f"{super().extra_repr()}, num_layers={self.num_layers}, num_heads={self.num_heads}, "
            f"num_rbf={self.num_rbf}, lmax={self.lmax}"
        )
