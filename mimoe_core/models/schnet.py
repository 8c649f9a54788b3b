"""SchNet expert (Schütt et al. 2017, https://arxiv.org/abs/1706.08566) on a prebuilt graph.

Built from PyG's continuous-filter interaction block and Gaussian distance expansion; only
the graph construction is replaced (ours, with no neighbour cap).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn
from torch_geometric.nn.models.schnet import GaussianSmearing, InteractionBlock
from typing_extensions import Unpack

from mimoe_core.models._common import MAX_Z, AtomState, Expert, ExpertArgs, scatter_sum


def weighted_interaction(
    block: InteractionBlock,
    h: Tensor,
    edge_index: Tensor,
    edge_weight: Tensor,
    edge_attr: Tensor,
    edge_envelope: Tensor,
) -> Tensor:
    """PyG's ``InteractionBlock`` (same weights, same steps) with each edge's filter scaled.

    ``block(h, ...)`` computes filters ``W = mlp(rbf) * C(d)`` inside ``CFConv``; here they
    are ``W * edge_envelope``, which ``CFConv`` has no argument for. With an envelope of
    ones the result is ``block(h, edge_index, edge_weight, edge_attr)``.
    """
    conv = block.conv
    envelope = 0.5 * (torch.cos(edge_weight * (math.pi / conv.cutoff)) + 1.0) * edge_envelope
    filters = conv.nn(edge_attr) * envelope.unsqueeze(-1)
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
        edge_attr = self.rbf(edge_weight)
        for block in self.interactions:
            if edge_envelope is None:
                h = h + block(h, edge_index, edge_weight, edge_attr)
            else:
                args = (edge_index, edge_weight, edge_attr, edge_envelope)
                h = h + weighted_interaction(block, h, *args)
        return AtomState(h)

    def extra_repr(self) -> str:
        """Key settings shown by ``repr``."""
        return (
            f"{super().extra_repr()}, num_layers={self.num_layers}, "
            f"num_filters={self.num_filters}, num_rbf={self.num_rbf}"
        )
