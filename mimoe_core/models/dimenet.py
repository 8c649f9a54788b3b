"""DimeNet++ expert (Gasteiger et al. 2020, https://arxiv.org/abs/2011.14115) on a prebuilt graph.

Directional messages live on edges and are updated from triplets k -> j -> i with the angle
between the two edges. The layers are PyG's; PyG's triplet builder needs torch-sparse, so
:func:`triplets` builds the same triplets in pure, vectorized torch.
"""

from __future__ import annotations

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
from typing_extensions import Unpack

from mimoe_core.models._common import AtomState, Expert, ExpertArgs

# The bases see distances no shorter than this fraction of the cutoff (0.25 Å at 5 Å; no
# bond is that short). Their envelope has a 1/d term and PyG's closed-form spherical Bessel
# functions cancel catastrophically near 0: at d = 0 they give NaN, and in float32 they are
# off by more than 1 % below d / cutoff ~ 0.06.
MIN_REDUCED_DIST = 0.05


@functools.cache
def _spherical_basis(
    num_spherical: int, num_radial: int, envelope_exponent: int
) -> SphericalBasisLayer:
    # Its constructor derives the basis with sympy (about 9 s for 7 x 6), and it holds no
    # parameters or buffers, so one instance at cutoff 1 serves every expert, which pass
    # it d / cutoff.
    return SphericalBasisLayer(num_spherical, num_radial, 1.0, envelope_exponent)


# Not traced by torch.compile (models/compiled.py): the triplet count depends on the
# values (bincount, repeat_interleave), so it is one explicit graph break.
@torch.compiler.disable
def triplets(
    edge_index: Tensor, num_nodes: int
) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor]:
    """All pairs of edges k -> j and j -> i with k != i, vectorized (no torch-sparse).

    Returns what PyG's ``torch_geometric.nn.models.dimenet.triplets`` returns, in the same
    order: triplets grouped by the edge j -> i in edge order, then sorted by k.

    Args:
        edge_index: [2, E] long with row 0 the source j and row 1 the target i of edge
            j -> i; any edge order.
        num_nodes: number of atoms N.

    Returns:
        ``(i, j, idx_i, idx_j, idx_k, idx_kj, idx_ji)``: the target and source of every edge
        ([E] each), then per triplet ([num_triplets] each) the atoms i, j, k and the indices
        of the edges k -> j and j -> i.

    Example:
        >>> edge_index = torch.tensor([[0, 1, 1, 2], [1, 0, 2, 1]])  # a chain 0 - 1 - 2
        >>> i, j, idx_i, idx_j, idx_k, idx_kj, idx_ji = triplets(edge_index, 3)
        >>> torch.stack([idx_k, idx_j, idx_i]).T.tolist()  # k -> j -> i
        [[2, 1, 0], [0, 1, 2]]
        >>> idx_kj.tolist(), idx_ji.tolist()
        ([3, 0], [1, 2])
    """
    source, target = edge_index
    device = source.device
    # Edges grouped by target and sorted by source: the rows of PyG's adjacency.
    incoming = torch.argsort(target * num_nodes + source, stable=True)
    counts = torch.bincount(target, minlength=num_nodes)
    first = torch.cumsum(counts, 0) - counts
    # Edge j -> i pairs with each of the counts[j] edges k -> j.
    per_edge = counts[source]
    idx_ji = torch.repeat_interleave(torch.arange(source.numel(), device=device), per_edge)
    start = torch.cumsum(per_edge, 0) - per_edge
    slot = torch.arange(idx_ji.numel(), device=device) - start[idx_ji]
    idx_kj = incoming[first[source[idx_ji]] + slot]
    keep = target[idx_ji] != source[idx_kj]
    idx_ji, idx_kj = idx_ji[keep], idx_kj[keep]
    return target, source, target[idx_ji], source[idx_ji], source[idx_kj], idx_kj, idx_ji


class DimeNetPPExpert(Expert):
    """DimeNet++: directional message passing with Bessel and spherical bases.

    The output blocks emit ``hidden_channels`` features per atom (not one target); their sum
    over the embedding and interaction blocks is the atom feature.

    ``hidden_channels`` is the edge-message and atom-feature width; ``num_layers`` counts
    interaction blocks.

    Args:
        int_emb_size: triplet interaction width, default 64.
        basis_emb_size: basis embedding width, default 8.
        out_emb_channels: output-block width, default 128.
        num_spherical: spherical harmonics, default 7.
        num_radial: radial Bessel functions, default 6.
        envelope_exponent: smoothness of the cutoff envelope, default 5.
        num_before_skip: residual layers before the skip connection, default 1.
        num_after_skip: residual layers after the skip connection, default 2.
        num_output_layers: layers per output block, default 2.
        **shared: ``hidden_channels``, ``num_layers``, ``cutoff``, ``pooling`` (see
            :class:`~mimoe_core.models._common.Expert`).
    """

    name = "dimenet++"

    def __init__(
        self,
        int_emb_size: int = 64,
        basis_emb_size: int = 8,
        out_emb_channels: int = 128,
        num_spherical: int = 7,
        num_radial: int = 6,
        envelope_exponent: int = 5,
        num_before_skip: int = 1,
        num_after_skip: int = 2,
        num_output_layers: int = 2,
        **shared: Unpack[ExpertArgs],
    ) -> None:
        super().__init__(**shared)
        hidden_channels, num_layers = self.hidden_channels, self.num_layers
        self.int_emb_size = int(int_emb_size)
        self.basis_emb_size = int(basis_emb_size)
        self.out_emb_channels = int(out_emb_channels)
        self.num_spherical = int(num_spherical)
        self.num_radial = int(num_radial)
        self.envelope_exponent = int(envelope_exponent)
        act = activation_resolver("swish")
        self.rbf = BesselBasisLayer(num_radial, self.cutoff, envelope_exponent)
        self.sbf = _spherical_basis(self.num_spherical, self.num_radial, self.envelope_exponent)
        self.emb = EmbeddingBlock(num_radial, hidden_channels, act)
        if not self.embeds_atoms:  # a branch reads the trunk's atom features instead
            self.emb.emb = None
        # Non-zero initial output layers (PyG's default is zeros, for a single target), so
        # that the readout sees signal and every block gets gradients from the start.
        self.output_blocks = ModuleList(
            OutputPPBlock(
                num_radial,
                hidden_channels,
                out_emb_channels,
                hidden_channels,
                num_output_layers,
                act,
                output_initializer="glorot_orthogonal",
            )
            for _ in range(num_layers + 1)
        )
        self.interaction_blocks = ModuleList(
            InteractionPPBlock(
                hidden_channels,
                int_emb_size,
                basis_emb_size,
                num_spherical,
                num_radial,
                num_before_skip,
                num_after_skip,
                act,
            )
            for _ in range(num_layers)
        )
        self.reset_parameters()

    def reset_backbone(self) -> None:
        """Re-initialize the message-passing layers (the base class adds the readout)."""
        self.rbf.reset_parameters()
        if self.emb.emb is not None:
            self.emb.reset_parameters()
        else:  # EmbeddingBlock.reset_parameters without its atom table
            self.emb.lin_rbf.reset_parameters()
            self.emb.lin.reset_parameters()
        for block in [*self.output_blocks, *self.interaction_blocks]:
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
        """Atom embeddings [N, F] (PyG's EmbeddingBlock table, plus the attributes)."""
        return AtomState(self.embed_atoms(self.emb.emb, z, atom_attr))

    def propagate(
        self,
        state: AtomState,
        edge_index: Tensor,
        edge_weight: Tensor,
        edge_vec: Tensor,
        edge_envelope: Tensor | None = None,
    ) -> AtomState:
        """Atom features [N, F]: the sum of the output blocks over the interactions.

        The edge messages start from the atom states of both ends and the edge's rbf (PyG's
        EmbeddingBlock on ``state``) and live on this graph only. Angles come from
        ``edge_vec`` as in PyG's DimeNet++: the angle between pos[i] - pos[j] and
        pos[j] - pos[k]. Distances below ``MIN_REDUCED_DIST * cutoff`` are raised to it for
        the bases, so coincident atoms give finite features.
        """
        num_nodes = state.scalars.size(0)
        i, j, _, _, _, idx_kj, idx_ji = triplets(edge_index, num_nodes)
        vec_ji, vec_kj = edge_vec[idx_ji], edge_vec[idx_kj]
        cos_part = (vec_ji * vec_kj).sum(dim=-1)
        sin_part = torch.linalg.cross(vec_ji, vec_kj).norm(dim=-1)
        angle = torch.atan2(sin_part, cos_part)

        dist = edge_weight.clamp_min(MIN_REDUCED_DIST * self.cutoff)
        rbf = self.rbf(dist)
        sbf = self.sbf(dist / self.cutoff, angle, idx_kj)
        if edge_envelope is not None:
            # Every path from an edge to an atom passes a bias-free map of its rbf (output
            # blocks) or of the sbf of its triplets (interactions), so the edge fades out.
            rbf = rbf * edge_envelope.unsqueeze(-1)
            sbf = sbf * edge_envelope[idx_kj].unsqueeze(-1)
        emb, atoms = self.emb, state.scalars
        x = emb.act(emb.lin(torch.cat([atoms[i], atoms[j], emb.act(emb.lin_rbf(rbf))], dim=-1)))
        h = self.output_blocks[0](x, rbf, i, num_nodes=num_nodes)
        for interaction, output in zip(
            self.interaction_blocks, self.output_blocks[1:], strict=True
        ):
            x = interaction(x, rbf, sbf, idx_kj, idx_ji)
            h = h + output(x, rbf, i, num_nodes=num_nodes)
        return AtomState(h)

    def extra_repr(self) -> str:
        """Key settings shown by ``repr``."""
        return (
            f"{super().extra_repr()}, num_layers={self.num_layers}, "
            f"int_emb_size={self.int_emb_size}, basis_emb_size={self.basis_emb_size}, "
            f"out_emb_channels={self.out_emb_channels}, num_spherical={self.num_spherical}, "
            f"num_radial={self.num_radial}, envelope_exponent={self.envelope_exponent}"
        )
