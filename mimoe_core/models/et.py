"""Equivariant-transformer expert: TorchMD-Net's ET, the paper's "GT" expert.

Thölke & De Fabritiis 2022, https://arxiv.org/abs/2202.02541. Multi-head attention over the
radius graph with distance filters on keys and values, scalar and vector features per atom.
Written here on PyG's exp-normal radial basis.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch_geometric.nn.models.visnet import ExpNormalSmearing
from typing_extensions import Unpack

from mimoe_core.models._common import (
    MAX_Z,
    AtomState,
    Expert,
    ExpertArgs,
    check_heads,
    cosine_cutoff,
    scatter_sum,
    unit_vectors,
)


class NeighborEmbedding(nn.Module):
    """x_i <- W [x_i, sum_j emb(z_j) * filter(d_ij)]: atoms start knowing their neighbours."""

    def __init__(self, hidden_channels: int, num_rbf: int, cutoff: float) -> None:
        super().__init__()
        self.cutoff = cutoff
        self.embedding = nn.Embedding(MAX_Z, hidden_channels)
        self.filter = nn.Linear(num_rbf, hidden_channels)
        self.combine = nn.Linear(2 * hidden_channels, hidden_channels)

    def reset_parameters(self) -> None:
        """Re-initialize the layers."""
        for layer in (self.embedding, self.filter, self.combine):
            layer.reset_parameters()

    def forward(self, z, x, edge_index, edge_weight, rbf, edge_envelope=None):
        """Updated x [N, F]; ``edge_envelope`` [E] scales each edge's message."""
        j, i = edge_index
        envelope = cosine_cutoff(edge_weight, self.cutoff)
        if edge_envelope is not None:
            envelope = envelope * edge_envelope
        w = self.filter(rbf) * envelope.unsqueeze(-1)
        msg = scatter_sum(self.embedding(z)[j] * w, i, x.size(0))
        return self.combine(torch.cat([x, msg], dim=-1))


class EquivariantAttention(nn.Module):
    """One ET layer: attention weights SiLU(sum_h q_i k_j dk_ij) times the cutoff envelope."""

    def __init__(self, hidden_channels: int, num_heads: int, num_rbf: int, cutoff: float):
        super().__init__()
        self.num_heads, self.head_dim, self.cutoff = num_heads, hidden_channels // num_heads, cutoff
        self.norm = nn.LayerNorm(hidden_channels)
        self.q = nn.Linear(hidden_channels, hidden_channels)
        self.k = nn.Linear(hidden_channels, hidden_channels)
        self.v = nn.Linear(hidden_channels, 3 * hidden_channels)
        self.vec_proj = nn.Linear(hidden_channels, 3 * hidden_channels, bias=False)
        self.dk = nn.Linear(num_rbf, hidden_channels)
        self.dv = nn.Linear(num_rbf, 3 * hidden_channels)
        self.out = nn.Linear(hidden_channels, 3 * hidden_channels)

    def reset_parameters(self) -> None:
        """Re-initialize the layers."""
        for layer in (self.norm, self.q, self.k, self.v, self.vec_proj, self.dk, self.dv, self.out):
            layer.reset_parameters()

    def forward(self, x, vec, edge_index, edge_weight, rbf, direction, edge_envelope=None):
        """Updates (dx [N, F], dvec [N, 3, F]); ``edge_envelope`` [E] scales each message."""
        j, i = edge_index
        num_edges, heads, dim = edge_index.size(1), self.num_heads, self.head_dim
        h = self.norm(x)
        q, k, v = self.q(h), self.k(h), self.v(h)
        vec1, vec2, vec3 = self.vec_proj(vec).chunk(3, dim=-1)
        vec_dot = (vec1 * vec2).sum(dim=1)

        dk = F.silu(self.dk(rbf))
        attn = (q[i] * k[j] * dk).view(num_edges, heads, dim).sum(-1)
        attn = F.silu(attn) * cosine_cutoff(edge_weight, self.cutoff).unsqueeze(-1)
        vj = v[j] * F.silu(self.dv(rbf))
        if edge_envelope is not None:  # the vector messages too, which the attention skips
            vj = vj * edge_envelope.unsqueeze(-1)
        x_msg, vec_gate, dir_gate = vj.chunk(3, dim=-1)
        x_msg = (x_msg.view(num_edges, heads, dim) * attn.unsqueeze(-1)).reshape(
            num_edges, heads * dim
        )
        vec_msg = vec[j] * vec_gate.unsqueeze(1) + dir_gate.unsqueeze(1) * direction.unsqueeze(-1)
        x_agg = scatter_sum(x_msg, i, x.size(0))
        vec_agg = scatter_sum(vec_msg, i, vec.size(0))

        o1, o2, o3 = self.out(x_agg).chunk(3, dim=-1)
        return vec_dot * o2 + o3, vec3 * o1.unsqueeze(1) + vec_agg


class EquivariantTransformerExpert(Expert):
    """Equivariant transformer: attention on the radius graph, scalar and vector features.

    ``num_layers`` counts attention layers; ``hidden_channels`` must be divisible by
    ``num_heads``.

    Args:
        num_heads: attention heads, default 8.
        num_rbf: exp-normal radial functions, default 32.
        **shared: ``hidden_channels``, ``num_layers``, ``cutoff``, ``pooling`` (see
            :class:`~mimoe_core.models._common.Expert`).
    """

    name = "et"

    def __init__(self, num_heads: int = 8, num_rbf: int = 32, **shared: Unpack[ExpertArgs]) -> None:
        super().__init__(**shared)
        hidden_channels, num_layers = self.hidden_channels, self.num_layers
        check_heads(hidden_channels, num_heads)
        self.num_heads, self.num_rbf = int(num_heads), int(num_rbf)
        embeds = self.embeds_atoms
        self.embedding = nn.Embedding(MAX_Z, hidden_channels) if embeds else None
        self.rbf = ExpNormalSmearing(self.cutoff, num_rbf, trainable=True)
        self.neighbor = NeighborEmbedding(hidden_channels, num_rbf, self.cutoff) if embeds else None
        self.layers = nn.ModuleList(
            EquivariantAttention(hidden_channels, num_heads, num_rbf, self.cutoff)
            for _ in range(num_layers)
        )
        self.out_norm = nn.LayerNorm(hidden_channels) if self.finishes else None
        self.reset_parameters()

    def reset_backbone(self) -> None:
        """Re-initialize the message-passing layers (the base class adds the readout)."""
        for module in (self.embedding, self.rbf, self.neighbor, *self.layers, self.out_norm):
            if module is not None:
                module.reset_parameters()

    def embed_state(
        self,
        z: Tensor,
        edge_index: Tensor,
        edge_weight: Tensor,
        edge_vec: Tensor,
        atom_attr: Tensor | None = None,
        edge_envelope: Tensor | None = None,
    ) -> AtomState:
        """Atom embeddings that know their neighbours [N, F], and zero vectors [N, 3, F]."""
        atoms = self.embed_atoms(self.embedding, z, atom_attr)
        rbf = self.rbf(edge_weight)
        x = self.neighbor(z, atoms, edge_index, edge_weight, rbf, edge_envelope)
        return AtomState(x, x.new_zeros(x.size(0), 3, x.size(1)))

    def propagate(
        self,
        state: AtomState,
        edge_index: Tensor,
        edge_weight: Tensor,
        edge_vec: Tensor,
        edge_envelope: Tensor | None = None,
    ) -> AtomState:
        """Scalar [N, F] and vector [N, 3, F] atom states after the attention layers."""
        x, vec = state
        rbf = self.rbf(edge_weight)
        direction = unit_vectors(edge_vec, edge_weight)
        for layer in self.layers:
            dx, dvec = layer(x, vec, edge_index, edge_weight, rbf, direction, edge_envelope)
            x, vec = x + dx, vec + dvec
        return AtomState(x, vec)

    def finish(self, state: AtomState) -> Tensor:
        """The normalized scalars [N, F]."""
        return self.out_norm(state.scalars)

    def extra_repr(self) -> str:
        """Key settings shown by ``repr``."""
        return (
            f"{super().extra_repr()}, num_layers={self.num_layers}, "
            f"num_heads={self.num_heads}, num_rbf={self.num_rbf}"
        )
