"""ViSNet expert (Wang et al. 2024, https://arxiv.org/abs/2210.16518) on a prebuilt graph.

PyG's ``ViSNetBlock`` provides every layer; its own forward builds the graph with
torch-cluster, so :meth:`ViSNetExpert.atom_features` runs the same steps on our graph.

Self-loops: PyG's ViSNet graph has one self-loop per atom (distance 0, zero vector) and its
layers are written for it. ``NeighborEmbedding`` drops loops itself; in every ``ViS_MP``
layer the loop adds the atom's own attention term (cutoff weight 1) to the scalars and its
own vectors to the vectors, and the edge update of a loop is an inner product of two linear
maps of the atom's vectors (the rejection from a zero direction is the identity). All of
these are invariant, or equivariant for the vectors, because a zero direction stays zero
under rotation. Our graphs have no loops, so they are appended here: the expert computes
exactly what ``ViSNetBlock`` computes on the same radius graph, without its neighbour cap.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch_geometric.nn.models.visnet import ViSNetBlock
from typing_extensions import Unpack

from mimoe_core.models._common import (
    MAX_Z,
    AtomState,
    Expert,
    ExpertArgs,
    check_heads,
    unit_vectors,
)


class ViSNetExpert(Expert):
    """ViSNet: vector-scalar interactive message passing with runtime geometry.

    ``num_layers`` counts ViS-MP layers; ``hidden_channels`` must be divisible by
    ``num_heads``.

    Args:
        num_heads: attention heads, default 8.
        num_rbf: exp-normal radial functions, default 32.
        lmax: degree of the spherical harmonics of edge directions, 1 (default) or 2.
        **shared: ``hidden_channels``, ``num_layers``, ``cutoff``, ``pooling`` (see
            :class:`~mimoe_core.models._common.Expert`).

    Raises:
        ValueError: if ``hidden_channels`` is not divisible by ``num_heads`` or ``lmax`` is
            not 1 or 2.
    """

    name = "visnet"
    # PyG's ViS_MP applies its cosine cutoff inside its message function.
    accepts_edge_envelope = False

    def __init__(
        self,
        num_heads: int = 8,
        num_rbf: int = 32,
        lmax: int = 1,
        **shared: Unpack[ExpertArgs],
    ) -> None:
        super().__init__(**shared)
        check_heads(self.hidden_channels, num_heads)
        if lmax not in (1, 2):
            raise ValueError(f"lmax must be 1 or 2, got {lmax}")
        self.num_heads = int(num_heads)
        self.num_rbf = int(num_rbf)
        self.lmax = int(lmax)
        self.block = ViSNetBlock(
            lmax=self.lmax,
            num_heads=self.num_heads,
            num_layers=self.num_layers,
            hidden_channels=self.hidden_channels,
            num_rbf=self.num_rbf,
            max_z=MAX_Z,
            cutoff=self.cutoff,
        )
        # A branch starts from the trunk's atom states; a trunk hands them on unnormalized.
        if not self.embeds_atoms:
            self.block.embedding = self.block.neighbor_embedding = None
        if not self.finishes:
            self.block.out_norm = self.block.vec_out_norm = None
        self.reset_parameters()

    def reset_backbone(self) -> None:
        """Re-initialize the message-passing layers (the base class adds the readout)."""
        blk = self.block
        # ViSNetBlock.reset_parameters, in its order, over the parts this role keeps.
        parts = (blk.embedding, blk.distance_expansion, blk.neighbor_embedding, blk.edge_embedding)
        for module in (*parts, *blk.vis_mp_layers, blk.out_norm, blk.vec_out_norm):
            if module is not None:
                module.reset_parameters()

    @staticmethod
    def _with_loops(
        edge_index: Tensor, edge_weight: Tensor, num_atoms: int
    ) -> tuple[Tensor, Tensor]:
        """The graph plus one self-loop per atom (distance 0)."""
        loops = torch.arange(num_atoms, device=edge_index.device)
        edge_index = torch.cat([edge_index, torch.stack([loops, loops])], dim=1)
        edge_weight = torch.cat([edge_weight, edge_weight.new_zeros(num_atoms)])
        return edge_index, edge_weight

    def embed_state(
        self,
        z: Tensor,
        edge_index: Tensor,
        edge_weight: Tensor,
        edge_vec: Tensor,
        atom_attr: Tensor | None = None,
        edge_envelope: Tensor | None = None,
    ) -> AtomState:
        """Atom embeddings that know their neighbours [N, F], and zero vectors."""
        blk = self.block
        edge_index, edge_weight = self._with_loops(edge_index, edge_weight, z.numel())
        x = self.embed_atoms(blk.embedding, z, atom_attr)
        x = blk.neighbor_embedding(
            z, x, edge_index, edge_weight, blk.distance_expansion(edge_weight)
        )
        return AtomState(x, x.new_zeros(x.size(0), (self.lmax + 1) ** 2 - 1, x.size(1)))

    def propagate(
        self,
        state: AtomState,
        edge_index: Tensor,
        edge_weight: Tensor,
        edge_vec: Tensor,
        edge_envelope: Tensor | None = None,
    ) -> AtomState:
        """Scalar and vector atom states after the ViS-MP layers.

        Follows ``ViSNetBlock.forward`` on the given graph plus one self-loop per atom. The
        edge features start from this module's own edge embedding on this graph. Coincident
        atoms (distance 0) get a zero direction, like a self-loop, instead of 0/0.
        """
        blk = self.block
        x, vec = state
        # A loop has no direction, like a pair of coincident atoms.
        direction = torch.cat(
            [unit_vectors(edge_vec, edge_weight), edge_vec.new_zeros(x.size(0), 3)]
        )
        edge_index, edge_weight = self._with_loops(edge_index, edge_weight, x.size(0))
        sph = blk.sphere(direction)
        edge_attr = blk.edge_embedding(edge_index, blk.distance_expansion(edge_weight), x)
        for layer in blk.vis_mp_layers:
            dx, dvec, dedge = layer(x, vec, edge_index, edge_weight, edge_attr, sph)
            x, vec = x + dx, vec + dvec
            if dedge is not None:  # None from the last layer
                edge_attr = edge_attr + dedge
        return AtomState(x, vec)

    def finish(self, state: AtomState) -> Tensor:
        """ViSNet's normalized scalar channel [N, F]."""
        return self.block.out_norm(state.scalars)

    def extra_repr(self) -> str:
        """Key settings shown by ``repr``."""
        return (
            f"{super().extra_repr()}, num_layers={self.num_layers}, num_heads={self.num_heads}, "
            f"num_rbf={self.num_rbf}, lmax={self.lmax}"
        )
