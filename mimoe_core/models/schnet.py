"""SchNet expert (Schütt et al. 2017, https://arxiv.org/abs/1706.08566) on a prebuilt graph.

Built from PyG's continuous-filter interaction block and Gaussian distance expansion, with
two changes: the graph is ours (no neighbour cap), and the filters, which depend only on
the distance, are computed once per atom pair instead of once per directed edge.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn
from torch_geometric.nn.models.schnet import GaussianSmearing, InteractionBlock
from typing_extensions import Unpack

from mimoe_core.models._common import MAX_Z, AtomState, Expert, ExpertArgs, scatter_sum
from mimoe_core.models.radius_graph import MirrorPairs, mirror_pairs


def pair_interaction(
    block: InteractionBlock,
    h: Tensor,
    edge_index: Tensor,
    pair_rbf: Tensor,
    pair_envelope: Tensor,
    pairs: MirrorPairs | None,
) -> Tensor:
    """PyG's ``InteractionBlock`` (same weights, same steps) with its filters made per pair.

    ``block(h, edge_index, d, rbf(d))`` computes the filters ``W = mlp(rbf) * C(d)`` inside
    ``CFConv`` on every directed edge. They depend only on the distance, which an edge and
    its mirror share, so here the filter network runs on one edge per atom pair (``pairs``;
    ``None`` means every edge is its own pair) and its output is gathered for both: half
    the filter work of a radius graph. ``pair_envelope`` is ``C(d)`` times any per-edge
    weight; with the weight 1 the result is ``block(h, edge_index, d, rbf(d))``.
    """
    conv = block.conv
    filters = conv.nn(pair_rbf) * pair_envelope.unsqueeze(-1)
    if pairs is not None:
        filters = filters[pairs.of_edge]
    j, i = edge_index
    x = scatter_sum(conv.lin1(h)[j] * filters, i, h.size(0))
    return block.lin(block.act(conv.lin2(x)))


class SchNetExpert(Expert):
    """SchNet: atom embeddings refined by continuous-filter convolutions.

    ``num_layers`` counts interaction blocks: 3 by default, the paper's expert depth (a
    standalone SchNet uses 6).

    Args:
        num_filters: filter width, default 128.
        num_rbf: Gaussians in the distance expansion over [0, cutoff], default 50.
        **shared: ``hidden_channels``, ``num_layers``, ``cutoff``, ``pooling`` (see
            :class:`~mimoe_core.models._common.Expert`).
    """

    name = "schnet"
    # False computes the filters on every directed edge, as PyG's SchNet does: the same
    # numbers at twice the filter work (the baseline of ``benchmarks/bench_pair_filters.py``).
    filters_per_pair = True

    def __init__(
        self, num_filters: int = 128, num_rbf: int = 50, **shared: Unpack[ExpertArgs]
    ) -> None:
        super().__init__(**shared)
        hidden_channels, num_layers = self.hidden_channels, self.num_layers
        self.num_filters = int(num_filters)
        self.num_rbf = int(num_rbf)
        self.embedding = nn.Embedding(MAX_Z, hidden_channels) if self.embeds_atoms else None
        self.rbf = GaussianSmearing(0.0, self.cutoff, num_rbf)
        self.interactions = nn.ModuleList(
            InteractionBlock(hidden_channels, num_rbf, num_filters, self.cutoff)
            for _ in range(num_layers)
        )
        self.reset_parameters()

    def reset_backbone(self) -> None:
        """Re-initialize the message-passing layers (the base class adds the readout)."""
        if self.embedding is not None:
            self.embedding.reset_parameters()
        for block in self.interactions:
            block.reset_parameters()

    def embed_state(
        self,
        z: Tensor,
        edge_index: Tensor,
        edge_weight: Tensor,
        edge_vec: Tensor,
        atom_attr: Tensor | None = None,
        edge_envelope: Tensor | None = None,
    ) -> AtomState:
        """Atom embeddings [N, F]."""
        return AtomState(self.embed_atoms(self.embedding, z, atom_attr))

    def propagate(
        self,
        state: AtomState,
        edge_index: Tensor,
        edge_weight: Tensor,
        edge_vec: Tensor,
        edge_envelope: Tensor | None = None,
    ) -> AtomState:
        """Atom features after the residual interaction blocks."""
        h = state.scalars
        pairs = mirror_pairs(edge_index, h.size(0)) if self.filters_per_pair else None
        if pairs is not None:  # radial work on one edge of each pair
            edge_weight = edge_weight[pairs.first]
            edge_envelope = edge_envelope[pairs.first] if edge_envelope is not None else None
        pair_rbf = self.rbf(edge_weight)
        envelope = 0.5 * (torch.cos(edge_weight * (math.pi / self.cutoff)) + 1.0)
        if edge_envelope is not None:
            envelope = envelope * edge_envelope
        for block in self.interactions:
            h = h + pair_interaction(block, h, edge_index, pair_rbf, envelope, pairs)
        return AtomState(h)

    def extra_repr(self) -> str:
        """Key settings shown by ``repr``."""
        return (
            f"{super().extra_repr()}, num_layers={self.num_layers}, "
            f"num_filters={self.num_filters}, num_rbf={self.num_rbf}"
        )
