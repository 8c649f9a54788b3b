"""DimeNet++ expert (Gasteiger et al. 2020, https://arxiv.org/abs/2011.14115) on a prebuilt graph.

Directional messages live on edges and are updated from triplets k -> j -> i with the angle
between the two edges. The layers are PyG's; PyG's triplet builder needs torch-sparse, so
:func:`triplets` builds them in pure, vectorized torch.
"""

from __future__ import annotations

import copy
import functools

import torch
from torch import Tensor
from torch.nn import ModuleList
from torch_geometric.nn.models.dimenet import (
    BesselBasisLayer,
    EmbeddingBlock,
    InteractionPPBlock,
    OutputPPBlock,
    SphericalBasisLayer,
)
from torch_geometric.nn.resolver import activation_resolver

from mimoe_core.models._common import Expert

# Distances below this (Å) are clamped in the basis functions, whose envelope has a 1/d term.
_MIN_DIST = 1e-6


@functools.cache
def _spherical_template(
    num_spherical: int, num_radial: int, envelope_exponent: int
) -> SphericalBasisLayer:
    return SphericalBasisLayer(num_spherical, num_radial, 1.0, envelope_exponent)


def spherical_basis(
    num_spherical: int, num_radial: int, cutoff: float, envelope_exponent: int
) -> SphericalBasisLayer:
    """PyG's spherical basis layer, built once per (num_spherical, num_radial, exponent).

    Its constructor derives the basis symbolically with sympy (about 10 s); the result does
    not depend on the cutoff, so experts share it and only ``cutoff`` is set per copy. The
    layer has no parameters or buffers, so a shallow copy is safe.
    """
    layer = copy.copy(_spherical_template(num_spherical, num_radial, envelope_exponent))
    layer.cutoff = cutoff
    return layer


def triplets(
    edge_index: Tensor, num_nodes: int
) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor]:
    """All pairs of edges k -> j and j -> i with k != i, vectorized.

    Args:
        edge_index: [2, E] with row 0 the source j and row 1 the target i of edge j -> i.
        num_nodes: number of atoms N.

    Returns:
        ``(i, j, idx_i, idx_j, idx_k, idx_kj, idx_ji)`` as PyG's DimeNet expects: the target
        and source of every edge ([E] each), then per triplet [num_triplets] the atoms i, j, k
        and the indices of edges k -> j and j -> i.

    Example:
        >>> edge_index = torch.tensor([[0, 1, 1, 2], [1, 0, 2, 1]])  # a chain 0 - 1 - 2
        >>> i, j, idx_i, idx_j, idx_k, idx_kj, idx_ji = triplets(edge_index, 3)
        >>> torch.stack([idx_k, idx_j, idx_i]).T.tolist()
        [[2, 1, 0], [0, 1, 2]]
    """
    source, target = edge_index
    num_edges = source.numel()
    incoming = torch.sort(target, stable=True).indices  # edges grouped by their target
    counts = torch.bincount(target, minlength=num_nodes)
    first = torch.cumsum(counts, 0) - counts
    # Edge j -> i pairs with every edge arriving at j.
    per_edge = counts[source]
    idx_ji = torch.repeat_interleave(torch.arange(num_edges, device=source.device), per_edge)
    start = torch.cumsum(per_edge, 0) - per_edge
    slot = torch.arange(idx_ji.numel(), device=source.device) - start[idx_ji]
    idx_kj = incoming[first[source[idx_ji]] + slot]
    idx_i, idx_j, idx_k = target[idx_ji], source[idx_ji], source[idx_kj]
    keep = idx_i != idx_k
    return (
        target,
        source,
        idx_i[keep],
        idx_j[keep],
        idx_k[keep],
        idx_kj[keep],
        idx_ji[keep],
    )


class DimeNetPPExpert(Expert):
    """DimeNet++: directional message passing with Bessel and spherical bases.

    Args:
        hidden_channels: edge-message width, default 128.
        num_layers: interaction blocks, default 3.
        int_emb_size: triplet interaction width, default 64.
        basis_emb_size: basis embedding width, default 8.
        out_emb_channels: output-block width, default 128.
        num_spherical: spherical harmonics, default 7.
        num_radial: radial Bessel functions, default 6.
        envelope_exponent: smoothness of the cutoff envelope, default 5.
        num_output_layers: layers per output block, default 2.
        cutoff: radius in Å of the expert's graph, default 5.0.
        pooling: ``"mean"`` (default) or ``"sum"``.
    """

    name = "dimenet++"

    def __init__(
        self,
        hidden_channels: int = 128,
        num_layers: int = 3,
        int_emb_size: int = 64,
        basis_emb_size: int = 8,
        out_emb_channels: int = 128,
        num_spherical: int = 7,
        num_radial: int = 6,
        envelope_exponent: int = 5,
        num_output_layers: int = 2,
        cutoff: float = 5.0,
        pooling: str = "mean",
    ) -> None:
        super().__init__(hidden_channels, cutoff, pooling)
        self.num_layers, self.num_spherical, self.num_radial = num_layers, num_spherical, num_radial
        act = activation_resolver("swish")
        self.rbf = BesselBasisLayer(num_radial, self.cutoff, envelope_exponent)
        self.sbf = spherical_basis(num_spherical, num_radial, self.cutoff, envelope_exponent)
        self.emb = EmbeddingBlock(num_radial, hidden_channels, act)
        # Output blocks emit hidden_channels features per atom (not one target), initialized
        # non-zero so that the readout MLP sees signal from the start.
        self.output_blocks = ModuleList(
            OutputPPBlock(num_radial, hidden_channels, out_emb_channels, hidden_channels,
                          num_output_layers, act, output_initializer="glorot_orthogonal")
            for _ in range(num_layers + 1)
        )  # fmt: skip
        self.interaction_blocks = ModuleList(
            InteractionPPBlock(hidden_channels, int_emb_size, basis_emb_size, num_spherical,
                               num_radial, 1, 2, act)
            for _ in range(num_layers)
        )  # fmt: skip
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Re-initialize every learnable parameter."""
        self.rbf.reset_parameters()
        self.emb.reset_parameters()
        for block in [*self.output_blocks, *self.interaction_blocks]:
            block.reset_parameters()
        self.reset_readout()

    def atom_features(
        self, z: Tensor, pos: Tensor, edge_index: Tensor, edge_weight: Tensor, edge_vec: Tensor
    ) -> Tensor:
        """Invariant atom features [num_atoms, hidden_channels] (sum of the output blocks)."""
        num_nodes = z.numel()
        i, j, idx_i, idx_j, idx_k, idx_kj, idx_ji = triplets(edge_index, num_nodes)
        dist = edge_weight.clamp_min(_MIN_DIST)
        pos_ij, pos_jk = pos[idx_i] - pos[idx_j], pos[idx_j] - pos[idx_k]
        cos_part = (pos_ij * pos_jk).sum(dim=-1)
        sin_part = torch.linalg.cross(pos_ij, pos_jk).norm(dim=-1)
        angle = torch.atan2(sin_part, cos_part)

        rbf = self.rbf(dist)
        sbf = self.sbf(dist, angle, idx_kj)
        x = self.emb(z, rbf, i, j)
        h = self.output_blocks[0](x, rbf, i, num_nodes=num_nodes)
        for interaction, output in zip(
            self.interaction_blocks, self.output_blocks[1:], strict=True
        ):
            x = interaction(x, rbf, sbf, idx_kj, idx_ji)
            h = h + output(x, rbf, i, num_nodes=num_nodes)
        return h

    def extra_repr(self) -> str:
        """Key settings shown by ``repr``."""
        return (
            f"{super().extra_repr()}, num_layers={self.num_layers}, "
            f"num_spherical={self.num_spherical}, num_radial={self.num_radial}"
        )
