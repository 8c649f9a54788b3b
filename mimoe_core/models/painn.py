"""PaiNN expert (Schütt, Unke & Gastegger 2021, https://arxiv.org/abs/2102.03150).

Polarizable atom interaction network: every atom carries scalar features s [N, F] and vector
features v [N, 3, F]. Messages mix neighbour scalars with a radial filter and rotate neighbour
vectors along the edge direction; updates couple scalars and vector norms. Written here (PaiNN
is not in PyG); aggregation is a sum (``index_add``).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn
from typing_extensions import Unpack

from mimoe_core.models._common import (
    EPS_DIST,
    MAX_Z,
    AtomState,
    Expert,
    ExpertArgs,
    cosine_cutoff,
    scatter_sum,
    unit_vectors,
)


def sinc_rbf(dist: Tensor, num_rbf: int, cutoff: float) -> Tensor:
    r"""Radial basis :math:`\sin(n \pi d / c) / d`, n = 1..num_rbf, [E] -> [E, num_rbf].

    Distances below 1e-6 Å are clamped, so coincident atoms get the finite limit n pi / c.
    """
    d = dist.clamp_min(EPS_DIST).unsqueeze(-1)
    n = torch.arange(1, num_rbf + 1, dtype=dist.dtype, device=dist.device)
    return torch.sin(n * (math.pi / cutoff) * d) / d


class PaiNNMessage(nn.Module):
    """Message block: ds_i, dv_i from neighbours j of i (filters on the distance)."""

    def __init__(self, hidden_channels: int, num_rbf: int, cutoff: float) -> None:
        super().__init__()
        self.cutoff = cutoff
        self.phi = nn.Sequential(
            nn.Linear(hidden_channels, hidden_channels),
            nn.SiLU(),
            nn.Linear(hidden_channels, 3 * hidden_channels),
        )
        self.filter = nn.Linear(num_rbf, 3 * hidden_channels)

    def reset_parameters(self) -> None:
        """Re-initialize the layers."""
        for layer in (self.phi[0], self.phi[2], self.filter):
            layer.reset_parameters()

    def forward(self, s, v, edge_index, rbf, envelope, direction):
        """Updated (s [N, F], v [N, 3, F])."""
        j, i = edge_index
        x = self.phi(s)[j] * self.filter(rbf) * envelope.unsqueeze(-1)
        ds, dvv, dvs = x.chunk(3, dim=-1)
        dv = v[j] * dvv.unsqueeze(1) + dvs.unsqueeze(1) * direction.unsqueeze(-1)
        s = s + scatter_sum(ds, i, s.size(0))
        v = v + scatter_sum(dv, i, v.size(0))
        return s, v


class PaiNNUpdate(nn.Module):
    """Update block: mixes each atom's scalars with the norms and products of its vectors."""

    def __init__(self, hidden_channels: int) -> None:
        super().__init__()
        self.u = nn.Linear(hidden_channels, hidden_channels, bias=False)
        self.v = nn.Linear(hidden_channels, hidden_channels, bias=False)
        self.mix = nn.Sequential(
            nn.Linear(2 * hidden_channels, hidden_channels),
            nn.SiLU(),
            nn.Linear(hidden_channels, 3 * hidden_channels),
        )

    def reset_parameters(self) -> None:
        """Re-initialize the layers."""
        for layer in (self.u, self.v, self.mix[0], self.mix[2]):
            layer.reset_parameters()

    def forward(self, s, v):
        """Updated (s [N, F], v [N, 3, F])."""
        uv, vv = self.u(v), self.v(v)
        # sqrt(x + eps): the norm of a zero vector has no gradient otherwise.
        norm = torch.sqrt((vv * vv).sum(dim=1) + 1e-8)
        a_vv, a_sv, a_ss = self.mix(torch.cat([s, norm], dim=-1)).chunk(3, dim=-1)
        s = s + a_ss + a_sv * (uv * vv).sum(dim=1)
        v = v + a_vv.unsqueeze(1) * uv
        return s, v


class PaiNNExpert(Expert):
    """PaiNN: equivariant scalar and vector messages; the scalars are the atom features.

    ``hidden_channels`` is F, the width of scalar and vector features; ``num_layers`` counts
    message + update blocks.

    Args:
        num_rbf: sinc radial functions, default 20.
        **shared: ``hidden_channels``, ``num_layers``, ``cutoff``, ``pooling`` (see
            :class:`~mimoe_core.models._common.Expert`).
    """

    name = "painn"

    def __init__(self, num_rbf: int = 20, **shared: Unpack[ExpertArgs]) -> None:
        super().__init__(**shared)
        hidden_channels, num_layers = self.hidden_channels, self.num_layers
        self.num_rbf = int(num_rbf)
        self.embedding = nn.Embedding(MAX_Z, hidden_channels) if self.embeds_atoms else None
        self.messages = nn.ModuleList(
            PaiNNMessage(hidden_channels, num_rbf, self.cutoff) for _ in range(num_layers)
        )
        self.updates = nn.ModuleList(PaiNNUpdate(hidden_channels) for _ in range(num_layers))
        self.reset_parameters()

    def reset_backbone(self) -> None:
        """Re-initialize the message-passing layers (the base class adds the readout)."""
        if self.embedding is not None:
            self.embedding.reset_parameters()
        for block in [*self.messages, *self.updates]:
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
        """Atom embeddings [N, F] and zero vectors [N, 3, F]."""
        s = self.embed_atoms(self.embedding, z, atom_attr)
        return AtomState(s, s.new_zeros(s.size(0), 3, s.size(1)))

    def propagate(
        self,
        state: AtomState,
        edge_index: Tensor,
        edge_weight: Tensor,
        edge_vec: Tensor,
        edge_envelope: Tensor | None = None,
    ) -> AtomState:
        """Scalar [N, F] (invariant) and vector [N, 3, F] (equivariant) atom features."""
        s, v = state
        rbf = sinc_rbf(edge_weight, self.num_rbf, self.cutoff)
        envelope = cosine_cutoff(edge_weight, self.cutoff)
        if edge_envelope is not None:  # the messages are linear in it: scalar and vector
            envelope = envelope * edge_envelope
        direction = unit_vectors(edge_vec, edge_weight)
        for message, update in zip(self.messages, self.updates, strict=True):
            s, v = message(s, v, edge_index, rbf, envelope, direction)
            s, v = update(s, v)
        return AtomState(s, v)

    def extra_repr(self) -> str:
        """Key settings shown by ``repr``."""
        return f"{super().extra_repr()}, num_layers={self.num_layers}, num_rbf={self.num_rbf}"
