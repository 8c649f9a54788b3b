"""Pieces shared by every expert: the expert interface, cutoff envelope, pooling, readout.

An expert is a 3D GNN that receives a prebuilt radius graph (see :mod:`.radius_graph`) and
returns one embedding per molecule. Each backbone lives in its own module and subclasses
:class:`Expert`.
"""

from __future__ import annotations

import math
from typing import NamedTuple, TypedDict

import torch
from torch import Tensor, nn
from torch_geometric.utils import scatter

# Largest atomic number + 1 accepted by the atom embeddings (featurization rejects the rest).
from mimoe_core.constants import MAX_Z as MAX_Z

POOLINGS = ("mean", "sum")

# Below this distance in Å two atoms count as coincident: no direction, finite filters.
EPS_DIST = 1e-6


def unit_vectors(edge_vec: Tensor, edge_weight: Tensor) -> Tensor:
    """edge_vec / |edge_vec| [E, 3]; zero for coincident atoms (no direction)."""
    safe = edge_weight.clamp_min(EPS_DIST).unsqueeze(-1)
    return torch.where(edge_weight.unsqueeze(-1) > EPS_DIST, edge_vec / safe, 0.0)


def cosine_cutoff(dist: Tensor, cutoff: float) -> Tensor:
    r"""Smooth envelope :math:`\tfrac12(\cos(\pi d / c) + 1)` for d < c, 0 beyond.

    Args:
        dist: distances in Å, any shape.
        cutoff: c in Å.

    Returns:
        Tensor shaped like ``dist``, 1 at d = 0 and going to 0 with zero slope at d = c.

    Example:
        >>> cosine_cutoff(torch.tensor([0.0, 1.0, 2.0, 3.0]), 2.0)
        tensor([1.0000, 0.5000, 0.0000, 0.0000])
    """
    env = 0.5 * (torch.cos(dist * (math.pi / cutoff)) + 1.0)
    return env * (dist < cutoff).to(dist.dtype)


def pool(x: Tensor, batch: Tensor, num_graphs: int, reduce: str = "mean") -> Tensor:
    """Per-atom features [N, F] to per-molecule features [num_graphs, F] (mean or sum)."""
    if reduce not in POOLINGS:
        raise ValueError(f"pooling must be one of {POOLINGS}, got {reduce!r}")
    return scatter(x, batch, dim=0, dim_size=num_graphs, reduce=reduce)


def scatter_sum(src: Tensor, index: Tensor, num: int) -> Tensor:
    """Sum rows of ``src`` [E, ...] into ``num`` rows by ``index`` [E] -> [num, ...].

    The result takes ``src``'s dtype, so mixed-precision messages never meet a buffer of
    another dtype.
    """
    return src.new_zeros(num, *src.shape[1:]).index_add_(0, index, src)


def check_heads(channels: int, num_heads: int) -> None:
    """Attention splits ``channels`` into ``num_heads`` equal parts; refuse what cannot."""
    if num_heads < 1 or channels % num_heads:
        raise ValueError(f"hidden_channels={channels} must be divisible by num_heads={num_heads}")


def num_graphs_of(batch: Tensor, num_graphs: int | None) -> int:
    """``num_graphs`` if given, else ``batch.max() + 1`` (0 for an empty batch)."""
    if num_graphs is not None:
        return int(num_graphs)
    return int(batch.max()) + 1 if batch.numel() else 0


def atoms_per_molecule(batch: Tensor, num_graphs: int) -> Tensor:
    """[num_graphs] long: how many atoms each molecule of a sorted ``batch`` has.

    ``torch.bincount(batch, minlength=num_graphs)`` without its read of ``batch``'s maximum
    on the host (on a GPU, a wait for the device): each molecule's bounds are searched in
    the sorted ``batch``.

    Example:
        >>> atoms_per_molecule(torch.tensor([0, 0, 2, 2, 2]), 4)
        tensor([2, 0, 3, 0])
    """
    molecules = torch.arange(num_graphs + 1, device=batch.device, dtype=batch.dtype)
    return torch.searchsorted(batch, molecules).diff()


#: What an expert module is: a whole expert (embedding, blocks, readout), the shared trunk
#: of a mixture (embedding and the first blocks, no readout), or a branch (the remaining
#: blocks and the readout, fed by the trunk). See :class:`Expert`.
ROLES = ("whole", "trunk", "branch")


class AtomState(NamedTuple):
    """What passes from a shared trunk to the experts: per-atom features, no edges.

    Attributes:
        scalars: [N, F] invariant features.
        vectors: [N, C, F] equivariant features (C = 3 for PaiNN and ET, 3 or 8 for ViSNet),
            or ``None`` for a backbone with scalars only.
    """

    scalars: Tensor
    vectors: Tensor | None = None

    def of_atoms(self, atoms: Tensor) -> AtomState:
        """The rows of ``atoms`` [n] long (a sub-batch of molecules)."""
        vectors = self.vectors[atoms] if self.vectors is not None else None
        return AtomState(self.scalars[atoms], vectors)


class ExpertArgs(TypedDict, total=False):
    """The settings every expert takes (see :class:`Expert`); each subclass adds its own."""

    hidden_channels: int
    num_layers: int
    cutoff: float
    pooling: str
    atom_attr_dim: int
    role: str


class Expert(nn.Module):
    """Interface of an expert: a 3D GNN on a prebuilt graph, one embedding per molecule.

    Subclasses take their own keyword hyperparameters and pass the shared ones
    (:class:`ExpertArgs`) on as ``**shared: Unpack[ExpertArgs]``, so that width, depth,
    cutoff and pooling are defaulted and checked here once. They build their layers in
    ``__init__`` and implement three stages and :meth:`reset_backbone`
    (:meth:`reset_parameters` adds the readout):

    - :meth:`embed_state`: atom embeddings (with a neighbour embedding for ET and ViSNet);
    - :meth:`propagate`: the message-passing blocks, :class:`AtomState` to :class:`AtomState`;
    - :meth:`finish`: the invariant atom features (a final norm for ET and ViSNet).

    The molecule embedding is ``readout(pool(atom_features))``: a small MLP after pooling,
    so that a shared linear head after the mixture keeps every expert's contribution exact
    (see :class:`~mimoe_core.models.MIMoE`).

    Shared trunk (``role``): a mixture may compute the embedding and its first blocks once
    (a ``"trunk"`` module, :meth:`trunk_state`) and hand the atom states to its experts
    (``"branch"`` modules, which have no embedding and start at :meth:`propagate`). Only
    per-atom states cross over: each branch rebuilds its edge features on its own graph.

    Args:
        hidden_channels: width of atom features and of the molecule embedding, default 128.
        num_layers: message-passing blocks, default 3 (the paper's expert depth).
        cutoff: radius in Å of the graph this expert reads (for its cutoff envelope),
            default 5.0.
        pooling: ``"mean"`` (default; the bundled targets are intensive properties) or
            ``"sum"`` (extensive properties such as energies).
        atom_attr_dim: with F > 0, the expert also reads F chemical attributes per atom
            (:mod:`mimoe_core.atom_attributes`): a linear map of them is added to its
            atomic-number embedding (:meth:`embed_atoms`). Default 0: the atomic number only.

    Edge weights: :meth:`forward` may be given ``edge_envelope`` [E], a weight in [0, 1]
    per edge that multiplies every message the edge carries (on top of the backbone's own
    cutoff envelope), so that a message fades out smoothly as its weight goes to 0. This is
    how learnable cutoffs (:mod:`.learnable_cutoffs`) reach the expert. Backbones that
    cannot take it set :attr:`accepts_edge_envelope` to False.

    Raises:
        ValueError: for an unknown pooling or role, a width or depth below 1, a negative
            ``atom_attr_dim``, or attributes for a branch (the trunk embeds them).
    """

    #: Registry name, set by each subclass.
    name: str = "expert"
    #: Whether :meth:`forward` takes ``edge_envelope`` (learnable cutoffs need it).
    accepts_edge_envelope: bool = True

    def __init__(
        self,
        hidden_channels: int = 128,
        num_layers: int = 3,
        cutoff: float = 5.0,
        pooling: str = "mean",
        atom_attr_dim: int = 0,
        role: str = "whole",
    ) -> None:
        super().__init__()
        if role not in ROLES:
            raise ValueError(f"role must be one of {ROLES}, got {role!r}")
        if pooling not in POOLINGS:
            raise ValueError(f"pooling must be one of {POOLINGS}, got {pooling!r}")
        if hidden_channels < 1:
            raise ValueError(f"hidden_channels must be >= 1, got {hidden_channels}")
        if num_layers < 1:
            raise ValueError(f"num_layers must be >= 1, got {num_layers}")
        self.hidden_channels = int(hidden_channels)
        self.num_layers = int(num_layers)
        self.cutoff = float(cutoff)
        self.pooling = pooling
        if atom_attr_dim < 0:
            raise ValueError(f"atom_attr_dim must be >= 0, got {atom_attr_dim}")
        if atom_attr_dim and role == "branch":
            raise ValueError(
                "a branch expert does not embed atoms: give atom_attr_dim to the trunk"
            )
        self.role = role
        self.atom_attr_dim = int(atom_attr_dim)
        self.attr_embedding = (
            nn.Linear(atom_attr_dim, hidden_channels, bias=False) if atom_attr_dim else None
        )
        self.readout = (
            nn.Sequential(
                nn.Linear(hidden_channels, hidden_channels),
                nn.SiLU(),
                nn.Linear(hidden_channels, hidden_channels),
            )
            if role != "trunk"
            else None
        )

    @property
    def embeds_atoms(self) -> bool:
        """Whether this module owns the atom embedding (a whole expert or a trunk)."""
        return self.role != "branch"

    @property
    def finishes(self) -> bool:
        """Whether this module ends in atom features and a readout (not a trunk)."""
        return self.role != "trunk"

    def embed_state(
        self,
        z: Tensor,
        edge_index: Tensor,
        edge_weight: Tensor,
        edge_vec: Tensor,
        atom_attr: Tensor | None = None,
        edge_envelope: Tensor | None = None,
    ) -> AtomState:
        """The atom states before the first block (each backbone implements it)."""
        raise NotImplementedError

    def propagate(
        self,
        state: AtomState,
        edge_index: Tensor,
        edge_weight: Tensor,
        edge_vec: Tensor,
        edge_envelope: Tensor | None = None,
    ) -> AtomState:
        """The atom states after this module's blocks on the given graph (each backbone)."""
        raise NotImplementedError

    def finish(self, state: AtomState) -> Tensor:
        """Invariant atom features [N, hidden_channels] from the last state: its scalars."""
        return state.scalars

    def trunk_state(
        self,
        z: Tensor,
        edge_index: Tensor,
        edge_weight: Tensor,
        edge_vec: Tensor,
        atom_attr: Tensor | None = None,
    ) -> AtomState:
        """A trunk's output: embedding and blocks on the given graph, for the branches."""
        if self.role != "trunk":
            raise ValueError(f"trunk_state is a trunk's; this module's role is {self.role!r}")
        state = self.embed_state(z, edge_index, edge_weight, edge_vec, atom_attr)
        return self.propagate(state, edge_index, edge_weight, edge_vec)

    def atom_features(
        self,
        z: Tensor,
        pos: Tensor,
        edge_index: Tensor,
        edge_weight: Tensor,
        edge_vec: Tensor,
        atom_attr: Tensor | None = None,
        edge_envelope: Tensor | None = None,
        state: AtomState | None = None,
    ) -> Tensor:
        """Invariant per-atom features [num_atoms, hidden_channels].

        A whole expert embeds the atoms; a branch starts from the trunk's ``state``.
        ``pos`` is unused: the graph carries the geometry.
        """
        if state is None:
            if not self.embeds_atoms:
                raise ValueError("a branch expert starts from the shared trunk's state; none came")
            args = (z, edge_index, edge_weight, edge_vec, atom_attr, edge_envelope)
            return self.atom_states(*args)[0]
        if self.embeds_atoms:
            raise ValueError(f"a {self.role} expert embeds its own atoms; it takes no state")
        return self.finish(self.propagate(state, edge_index, edge_weight, edge_vec, edge_envelope))

    def atom_states(
        self,
        z: Tensor,
        edge_index: Tensor,
        edge_weight: Tensor,
        edge_vec: Tensor,
        atom_attr: Tensor | None = None,
        edge_envelope: Tensor | None = None,
    ) -> tuple[Tensor, Tensor | None]:
        """A whole expert's invariant atom features and its last equivariant vectors.

        Returns:
            ``(features [N, F], vectors [N, C, F])``; vectors are None for a backbone with
            scalars only (SchNet, DimeNet++).
        """
        graph = (edge_index, edge_weight, edge_vec)
        state = self.embed_state(z, *graph, atom_attr, edge_envelope)
        state = self.propagate(state, *graph, edge_envelope)
        return self.finish(state), state.vectors

    def embed_atoms(self, table: nn.Embedding, z: Tensor, atom_attr: Tensor | None) -> Tensor:
        """``table(z)``, plus the embedded chemical attributes when the expert reads them.

        Raises:
            ValueError: the expert reads attributes (``atom_attr_dim`` > 0) and none came.
        """
        h = table(z)
        if self.attr_embedding is None:
            return h
        if atom_attr is None:
            raise ValueError(
                "this model reads chemical atom attributes, and the molecules have none: "
                "featurize with atom_attributes=True (the CLI does so for such a model)"
            )
        return h + self.attr_embedding(atom_attr.to(h.dtype))

    def forward(
        self,
        z: Tensor,
        pos: Tensor,
        edge_index: Tensor,
        edge_weight: Tensor,
        edge_vec: Tensor,
        batch: Tensor,
        num_graphs: int | None = None,
        atom_attr: Tensor | None = None,
        edge_envelope: Tensor | None = None,
        state: AtomState | None = None,
    ) -> Tensor:
        """Molecule embeddings from a prebuilt graph.

        Args:
            z: atomic numbers, [num_atoms] long.
            pos: coordinates in Å, [num_atoms, 3].
            edge_index: [2, E], row 0 source j, row 1 target i (PyG ``source_to_target``).
            edge_weight: [E] distances in Å.
            edge_vec: [E, 3] vectors pos[j] - pos[i].
            batch: molecule index of each atom, [num_atoms].
            num_graphs: number of molecules B; default ``batch.max() + 1``.
            atom_attr: [num_atoms, atom_attr_dim] chemical attributes, for an expert that
                reads them; default None.
            edge_envelope: [E] weights in [0, 1] multiplying every message of each edge
                (see the class docstring); default None, weight 1.
            state: for a branch, the shared trunk's atom states on these atoms; default None.

        Returns:
            [B, hidden_channels] molecule embeddings, invariant to rotations, translations
            and atom order.

        Raises:
            ValueError: ``edge_envelope`` given to a backbone that cannot take it; a trunk
                called as an expert; a branch without ``state``, or a whole expert with one.
        """
        if not self.finishes:
            raise ValueError("a shared trunk has no readout: call trunk_state, not the module")
        if edge_envelope is not None and not self.accepts_edge_envelope:
            raise ValueError(
                f"the {self.name} expert cannot weight its edges (learnable cutoffs): its "
                "layers apply their own cutoff inside PyG's message passing"
            )
        h = self.atom_features(
            z, pos, edge_index, edge_weight, edge_vec, atom_attr, edge_envelope, state
        )
        return self.readout(pool(h, batch, num_graphs_of(batch, num_graphs), self.pooling))

    def reset_backbone(self) -> None:
        """Re-initialize the message-passing layers (each backbone implements it)."""
        raise NotImplementedError

    def reset_parameters(self) -> None:
        """Re-initialize the backbone and the post-pooling readout MLP."""
        self.reset_backbone()
        if self.attr_embedding is not None:
            self.attr_embedding.reset_parameters()
        for layer in self.readout or ():
            if isinstance(layer, nn.Linear):
                layer.reset_parameters()

    def extra_repr(self) -> str:
        """Key settings shown by ``repr``."""
        role = f", role={self.role!r}" if self.role != "whole" else ""
        return (
            f"hidden_channels={self.hidden_channels}, cutoff={self.cutoff}, "
            f"pooling={self.pooling!r}{role}"
        )
