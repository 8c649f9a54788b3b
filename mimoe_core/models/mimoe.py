"""The MI-MoE container: K experts at their own cutoffs, a topology gate, a shared linear head.

Prediction for molecule b with routing weights alpha (k non-zeros summing to 1)::

    y_b = sum_e alpha_{b,e} * (W h_{b,e} + c)      h_{b,e} = expert_e(molecule b at cutoff_e)

Because the head (W, c) is linear and shared, ``alpha_{b,e} * (W h_{b,e} + c)`` is exactly
expert e's contribution to y_b: the contributions add up to the prediction.

Sparse dispatch: in ``sparse`` mode expert e runs only on the molecules routed to it (their
atoms are gathered into a sub-batch and the embeddings scattered back), so k of K experts
cost about k/K of the dense compute. The paper's Algorithm 1 computes every expert.

Learnable cutoffs (:mod:`.learnable_cutoffs`): the K cutoffs are parameters; the neighbour
search runs once at their upper bound, and expert e reads the edges shorter than its current
c_e, each weighted by a smooth ramp of (c_e - d) through which the loss reaches c_e.

Shared trunk: the atom embedding and the first blocks can run once per batch, in a
``trunk`` module at its own cutoff (the largest by default; the edges of the one neighbour
search up to it); each expert (a ``branch``) continues from the trunk's atom states with
its own blocks at its own cutoff (see :class:`~mimoe_core.models._common.Expert`). The
trunk runs on every molecule; the branches keep sparse dispatch.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import torch
from torch import Tensor, nn

from mimoe_core.constants import VARIANTS
from mimoe_core.models._common import AtomState, Expert, atoms_per_molecule, num_graphs_of
from mimoe_core.models.gate import Gate, Routing, load_balancing_loss, top_k_routing
from mimoe_core.models.learnable_cutoffs import LearnableCutoffs, edge_ramp
from mimoe_core.models.radius_graph import ExpertGraph, radius_graph, subgraph, within_cutoff

#: The variants with a gate, which route among K experts.
ROUTED_VARIANTS = ("sparse", "dense")


class MoEOutput(NamedTuple):
    """What one forward pass returns; plain tensors, so routing reaches plots without hooks.

    Attributes:
        y: [B, out_channels] predictions (standardized units when the trainer scales).
        alpha: [B, K] routing weights (zeros for experts a molecule is not routed to).
        expert_predictions: [B, K, out_channels] each expert's own prediction W h_e + c; zero
            where the expert did not run on the molecule.
        selected: [B, K] bool, which experts ran on which molecule.
        logits: [B, K] gate logits, or ``None`` without a gate (``one_expert``, ``plain``).
        aux_loss: scalar load-balancing loss (0 without a gate), unweighted.
        log_var: [B, out_channels] log of the predicted variance (mean-variance head), in the
            units of ``y`` squared; ``None`` without the head.
        probs: [B, K] full softmax of the gate logits (every expert), which ``aux_loss`` is
            computed from; ``None`` without a gate. The trainer recomputes the loss from it
            over the global batch under DDP.
    """

    y: Tensor
    alpha: Tensor
    expert_predictions: Tensor
    selected: Tensor
    logits: Tensor | None
    aux_loss: Tensor
    log_var: Tensor | None = None
    probs: Tensor | None = None

    def contributions(self) -> Tensor:
        """[B, K, out_channels] alpha_e * (W h_e + c); summed over K they give ``y``."""
        return self.alpha.unsqueeze(-1) * self.expert_predictions


class PerMoleculeCompute(NamedTuple):
    """Message-passing blocks and expert parameters one molecule runs through."""

    blocks: int
    parameters: int


class MoEEmbedding(NamedTuple):
    """Per-molecule embeddings of one pass: what the shared linear head reads.

    Attributes:
        mixture: [B, H] the alpha-weighted expert embedding ``sum_e alpha_e h_e``; because
            alpha sums to 1, ``head(mixture)`` is ``MoEOutput.y`` (up to rounding), in the
            model's own (standardized) units.
        experts: [B, K, H] each expert's readout embedding ``h_e``; **zero** where the expert
            did not run on the molecule (not selected, unless ``compute_all``).
        alpha: [B, K] routing weights, as :attr:`MoEOutput.alpha`.
        selected: [B, K] bool, which experts were selected for which molecule.
        logits: [B, K] gate logits, or ``None`` without a gate.
    """

    mixture: Tensor
    experts: Tensor
    alpha: Tensor
    selected: Tensor
    logits: Tensor | None


class MIMoE(nn.Module):
    """Topology-aware multiscale mixture of 3D-GNN experts.

    Args:
        experts: K experts; expert e reads the radius graph at ``experts[e].cutoff``.
            Cutoffs must be strictly increasing (unless ``learnable_cutoffs`` sets them).
            All experts share ``hidden_channels``.
        gate: maps ``topo`` [B, T, D] to K logits; required for ``sparse`` and ``dense``,
            unused (and must be ``None``) for ``one_expert`` and ``plain``, which have K = 1.
        out_channels: number of targets, default 1.
        variant: one of :data:`VARIANTS`: ``"sparse"`` (Top-k routing, default),
            ``"dense"`` (softmax over all K), ``"one_expert"`` (a single shallow expert,
            weight 1) or ``"plain"`` (the full-depth backbone at one cutoff; same structure
            as ``one_expert``, kept distinct for reports).
        top_k: k for ``sparse``, default 2.
        temperature: softmax temperature of the routing, default 1.0.
        balance_weight: weight of the load-balancing loss in the trainer, default 0.1
            (stored here so a checkpoint carries it).
        variance_head: also predict a variance per target (mean-variance estimation): a
            linear map of the alpha-weighted mixture of the experts' embeddings to the log
            variance, trained with the Gaussian NLL. Default False.
        learnable_cutoffs: K learnable cutoffs that replace the experts' own (a routed
            variant only); the experts must reach at least its upper bound (their bases and
            envelopes then cover every cutoff it can learn) and take edge weights. Default
            None: the experts' fixed cutoffs.
        trunk: a shared trunk (an expert module of role ``"trunk"``, same backbone and
            width as the experts, at a cutoff no larger than the search radius: the largest
            cutoff, or the upper bound of learnable cutoffs); the experts are then
            ``"branch"`` modules. Default None: every expert embeds its own atoms (role
            ``"whole"``).

    Raises:
        ValueError: inconsistent experts, gate, variant or trunk; the message says which.
    """

    def __init__(
        self,
        experts: Sequence[Expert],
        gate: Gate | None,
        out_channels: int = 1,
        variant: str = "sparse",
        top_k: int = 2,
        temperature: float = 1.0,
        balance_weight: float = 0.1,
        variance_head: bool = False,
        learnable_cutoffs: LearnableCutoffs | None = None,
        trunk: Expert | None = None,
    ) -> None:
        super().__init__()
        if variant not in VARIANTS:
            raise ValueError(f"variant must be one of {VARIANTS}, got {variant!r}")
        if not experts:
            raise ValueError("MIMoE needs at least one expert")
        cutoffs = [float(e.cutoff) for e in experts]
        if learnable_cutoffs is not None:
            _check_learnable(experts, variant, learnable_cutoffs)
        elif any(b <= a for a, b in zip(cutoffs, cutoffs[1:], strict=False)):
            raise ValueError(f"expert cutoffs must be strictly increasing, got {cutoffs}")
        widths = {e.hidden_channels for e in experts}
        if len(widths) != 1:
            raise ValueError(f"experts must share hidden_channels, got {sorted(widths)}")
        gated = variant in ROUTED_VARIANTS
        if gated and gate is None:
            raise ValueError(f"variant={variant!r} needs a gate")
        if not gated and (gate is not None or len(experts) != 1):
            raise ValueError(f"variant={variant!r} takes exactly one expert and no gate")
        if gated and gate.num_experts != len(experts):
            raise ValueError(f"gate scores {gate.num_experts} experts, got {len(experts)}")
        num_experts = len(experts)
        self.top_k = num_experts if variant == "dense" or not gated else int(top_k)
        if not 1 <= self.top_k <= num_experts:
            raise ValueError(f"top_k must be in [1, {num_experts}], got {top_k}")
        if not temperature > 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        self.trunk = trunk
        self.experts = nn.ModuleList(experts)
        self.gate = gate
        width = widths.pop()
        self.head = nn.Linear(width, out_channels)
        self.var_head = nn.Linear(width, out_channels) if variance_head else None
        self.variant = variant
        self.temperature = float(temperature)
        self.balance_weight = float(balance_weight)
        self.learnable_cutoffs = learnable_cutoffs
        self._fixed_cutoffs = cutoffs
        _check_trunk(trunk, experts, variant, self.search_radius)
        self.out_channels = int(out_channels)

    @property
    def cutoffs(self) -> list[float]:
        """The K expert cutoffs in Å: the fixed ones, or the current learned values."""
        if self.learnable_cutoffs is not None:
            return self.learnable_cutoffs.values()
        return list(self._fixed_cutoffs)

    @property
    def search_radius(self) -> float:
        """Radius in Å of the one neighbour search that serves every expert."""
        if self.learnable_cutoffs is not None:
            return self.learnable_cutoffs.upper
        return self._fixed_cutoffs[-1]

    @property
    def reads_atom_attributes(self) -> bool:
        """Whether the experts embed chemical atom attributes (config ``atom_attributes``)."""
        embedder = self.trunk if self.trunk is not None else self.experts[0]
        return embedder.atom_attr_dim > 0

    @property
    def num_experts(self) -> int:
        """K, the number of experts."""
        return len(self.experts)

    def compute_per_molecule(self) -> PerMoleculeCompute:
        """What one molecule runs through: the shared trunk, if any, and ``top_k`` experts.

        Counts message-passing blocks and the parameters of those modules (the first
        expert's count, all experts being alike); the gate and head are left out.

        Example:
            >>> from mimoe_core.models import create_model
            >>> small = {"expert": {"hidden_channels": 8, "num_layers": 3}}
            >>> create_model(small).compute_per_molecule().blocks  # 2 experts x 3 blocks
            6
            >>> lean = create_model({**small, "shared_trunk": {"enabled": True}})
            >>> lean.compute_per_molecule().blocks  # the trunk's 1 + 2 experts x 2
            5
        """
        modules = [self.experts[0]] * self.top_k
        if self.trunk is not None:
            modules.append(self.trunk)
        return PerMoleculeCompute(
            blocks=sum(m.num_layers for m in modules),
            parameters=sum(p.numel() for m in modules for p in m.parameters()),
        )

    def reset_parameters(self) -> None:
        """Re-initialize experts, gate and head."""
        for module in self.modules():
            if module is not self and hasattr(module, "reset_parameters"):
                module.reset_parameters()

    def route(
        self, topo: Tensor | None, num_graphs: int, like: Tensor, num_atoms: Tensor | None = None
    ) -> tuple:
        """Gate logits (``None`` without a gate) and the :class:`Routing` of a batch.

        Without a gate (``one_expert``, ``plain``) every molecule goes to the one expert, weight 1.
        ``num_atoms`` [B] is passed on to the gate (the size-only ablation reads it).
        """
        if self.gate is None:
            ones = torch.ones(num_graphs, 1, dtype=like.dtype, device=like.device)
            return None, Routing(ones, ones.bool(), ones)
        if topo is None:
            raise ValueError(f"variant={self.variant!r} needs the descriptor trajectory topo")
        if topo.size(0) != num_graphs:
            raise ValueError(f"topo has {topo.size(0)} molecules, the batch {num_graphs}")
        logits = self.gate(topo.to(like.dtype), num_atoms)
        return logits, top_k_routing(logits, self.top_k, self.temperature)

    def forward(
        self,
        z: Tensor,
        pos: Tensor,
        batch: Tensor | None = None,
        topo: Tensor | None = None,
        num_graphs: int | None = None,
        compute_all: bool = False,
        atom_attr: Tensor | None = None,
    ) -> MoEOutput:
        """Predict a batch of molecules.

        Args:
            z: atomic numbers, [num_atoms] long.
            pos: coordinates in Å, [num_atoms, 3].
            batch: molecule index per atom, [num_atoms], sorted; ``None`` for one molecule.
            topo: descriptor trajectories [B, T, D]; needed for ``sparse`` and ``dense``.
            num_graphs: B; default ``batch.max() + 1``.
            compute_all: run every expert on every molecule and weight by the same alpha
                (the paper's Algorithm 1); same result as sparse dispatch, for tests and
                benchmarks. Default False.
            atom_attr: [num_atoms, F] chemical atom attributes, for a model whose experts
                read them (config ``atom_attributes``); default None.

        Returns:
            :class:`MoEOutput`.
        """
        logits, (alpha, selected, probs), embeddings = self._expert_embeddings(
            z, pos, batch, topo, num_graphs, compute_all, atom_attr
        )
        expert_predictions = self.head(embeddings) * (selected | compute_all).unsqueeze(-1)
        y = (alpha.unsqueeze(-1) * expert_predictions).sum(dim=1)
        aux = load_balancing_loss(probs, selected) if self.gate is not None else y.new_zeros(())
        log_var = None
        if self.var_head is not None:
            mixture = (alpha.to(embeddings.dtype).unsqueeze(-1) * embeddings).sum(dim=1)
            log_var = self.var_head(mixture)
        gate_probs = probs if self.gate is not None else None
        return MoEOutput(y, alpha, expert_predictions, selected, logits, aux, log_var, gate_probs)

    def embed(
        self,
        z: Tensor,
        pos: Tensor,
        batch: Tensor | None = None,
        topo: Tensor | None = None,
        num_graphs: int | None = None,
        compute_all: bool = False,
        atom_attr: Tensor | None = None,
    ) -> MoEEmbedding:
        """Per-molecule embeddings: the mixture the head reads and every expert's readout.

        Runs the same routing and expert dispatch as :meth:`forward` (one shared code path),
        stopping before the head. Arguments are :meth:`forward`'s.

        Returns:
            :class:`MoEEmbedding`: ``mixture`` [B, H] with ``head(mixture) == forward(...).y``
            (up to rounding), ``experts`` [B, K, H] (zero where an expert did not run),
            ``alpha``, ``selected`` and ``logits``.
        """
        logits, (alpha, selected, _), embeddings = self._expert_embeddings(
            z, pos, batch, topo, num_graphs, compute_all, atom_attr
        )
        # alpha is zero for experts not selected, so experts run by compute_all add nothing.
        mixture = (alpha.to(embeddings.dtype).unsqueeze(-1) * embeddings).sum(dim=1)
        return MoEEmbedding(mixture, embeddings, alpha, selected, logits)

    def _expert_embeddings(
        self,
        z: Tensor,
        pos: Tensor,
        batch: Tensor | None,
        topo: Tensor | None,
        num_graphs: int | None,
        compute_all: bool,
        atom_attr: Tensor | None = None,
    ) -> tuple[Tensor | None, Routing, Tensor]:
        """Gate logits, the routing and the [B, K, H] expert embeddings (zero where not run).

        The part of :meth:`forward` before the head, shared with :meth:`embed`.
        """
        if batch is None:
            batch = torch.zeros(z.numel(), dtype=torch.long, device=z.device)
        num = num_graphs_of(batch, num_graphs)
        num_atoms = atoms_per_molecule(batch, num) if self.gate is not None else None
        logits, routing = self.route(topo, num, pos, num_atoms)
        selected = routing.selected
        # One neighbour search at the largest cutoff serves every expert.
        full = radius_graph(pos, batch, self.search_radius)
        learned = self.learnable_cutoffs() if self.learnable_cutoffs is not None else None
        state = None
        if self.trunk is not None:
            trunk_graph = full
            if self.trunk.cutoff < self.search_radius:
                trunk_graph = within_cutoff(full, self.trunk.cutoff)
            state = self.trunk.trunk_state(z, *trunk_graph, atom_attr)
        hidden = self.head.in_features
        embeddings = pos.new_zeros(num, self.num_experts, hidden)
        for e, expert in enumerate(self.experts):
            run = torch.ones_like(selected[:, e]) if compute_all else selected[:, e]
            mols = torch.nonzero(run).flatten()
            if mols.numel() == 0:
                continue
            keep, envelope = self._expert_edges(expert, full, learned, e)
            if mols.numel() == num:
                keep = keep.nonzero().flatten()  # one host read for the graph and envelope
                graph = subgraph(full, keep)
                emb = expert(
                    z,
                    pos,
                    *graph,
                    batch,
                    num_graphs=num,
                    atom_attr=atom_attr,
                    edge_envelope=envelope[keep] if envelope is not None else None,
                    state=state,
                )
            else:
                args = (z, pos, batch, full, keep, envelope, atom_attr, state)
                emb = self._run_on(expert, mols, run, *args)
            # Under autocast the experts may return bfloat16; the mixture stays in pos's dtype.
            emb = emb.to(embeddings.dtype)
            embeddings = embeddings.index_put((mols, torch.full_like(mols, e)), emb)
        return logits, routing, embeddings

    def _expert_edges(
        self, expert: Expert, full: ExpertGraph, learned: Tensor | None, e: int
    ) -> tuple[Tensor, Tensor | None]:
        """Which edges of ``full`` expert e reads [E] bool, and their weights [E] or ``None``.

        Fixed cutoffs: the edges no longer than the expert's cutoff, unweighted. Learnable:
        the edges shorter than its current cutoff ``learned[e]``, weighted by the ramp.
        """
        if learned is None:
            return full.edge_weight.detach() <= expert.cutoff, None
        cutoff = learned[e].to(full.edge_weight.dtype)
        keep = full.edge_weight.detach() < cutoff.detach()
        return keep, edge_ramp(full.edge_weight, cutoff, self.learnable_cutoffs.ramp)

    @staticmethod
    def _run_on(
        expert: Expert,
        mols: Tensor,
        run: Tensor,
        z: Tensor,
        pos: Tensor,
        batch: Tensor,
        full: ExpertGraph,
        edge_in: Tensor,
        envelope: Tensor | None,
        atom_attr: Tensor | None = None,
        state: AtomState | None = None,
    ) -> Tensor:
        """Run ``expert`` on the molecules ``mols`` only (a gathered sub-batch).

        ``edge_in`` [E] marks the edges of ``full`` within the expert's cutoff; ``envelope``
        [E] is their weight (learnable cutoffs) or ``None``; ``state`` the shared trunk's
        atom states of the whole batch, or ``None``.
        """
        atom_in = run[batch]
        atoms = torch.nonzero(atom_in).flatten()
        new_atom = torch.full_like(batch, -1)
        new_atom[atoms] = torch.arange(atoms.numel(), device=batch.device)
        new_mol = torch.cumsum(run.long(), 0) - 1
        # positions: one host read for the edges and their envelope, not one per tensor
        keep = (atom_in[full.edge_index[1]] & edge_in).nonzero().flatten()
        edges = subgraph(full, keep)
        return expert(
            z[atoms],
            pos[atoms],
            new_atom[edges.edge_index],
            edges.edge_weight,
            edges.edge_vec,
            new_mol[batch[atoms]],
            num_graphs=mols.numel(),
            atom_attr=atom_attr[atoms] if atom_attr is not None else None,
            edge_envelope=envelope[keep] if envelope is not None else None,
            state=state.of_atoms(atoms) if state is not None else None,
        )

    def forward_batch(self, data, compute_all: bool = False) -> MoEOutput:
        """:meth:`forward` on a PyG ``Batch`` (or ``Data``) with ``z``, ``pos``, ``topo``."""
        from mimoe_core import keys

        batch = getattr(data, "batch", None)
        topo = getattr(data, keys.TOPO, None) if self.gate is not None else None
        return self(
            data[keys.Z],
            data[keys.POS],
            batch,
            topo,
            num_graphs=getattr(data, "num_graphs", 1),
            compute_all=compute_all,
            atom_attr=getattr(data, keys.ATOM_ATTR, None) if self.reads_atom_attributes else None,
        )

    def embed_batch(self, data, compute_all: bool = False) -> MoEEmbedding:
        """:meth:`embed` on a PyG ``Batch`` (or ``Data``) with ``z``, ``pos``, ``topo``."""
        from mimoe_core import keys

        batch = getattr(data, "batch", None)
        topo = getattr(data, keys.TOPO, None) if self.gate is not None else None
        return self.embed(
            data[keys.Z],
            data[keys.POS],
            batch,
            topo,
            num_graphs=getattr(data, "num_graphs", 1),
            compute_all=compute_all,
            atom_attr=getattr(data, keys.ATOM_ATTR, None) if self.reads_atom_attributes else None,
        )

    def extra_repr(self) -> str:
        """Key settings shown by ``repr``."""
        k = f", top_k={self.top_k}" if self.variant == "sparse" else ""
        cutoffs = [round(c, 3) for c in self.cutoffs]
        learned = " (learnable)" if self.learnable_cutoffs is not None else ""
        trunk = (
            f", shared trunk of {self.trunk.num_layers} at {self.trunk.cutoff} Å"
            if self.trunk is not None
            else ""
        )
        return (
            f"variant={self.variant!r}, K={self.num_experts}{k}, cutoffs={cutoffs}{learned}"
            f"{trunk}, "
            f"temperature={self.temperature}, balance_weight={self.balance_weight}, "
            f"out_channels={self.out_channels}"
        )


def check_learnable_target(variant: str, expert_cls: type[Expert]) -> None:
    """Refuse a variant or backbone that learnable cutoffs cannot drive, saying why.

    Raises:
        ValueError: a variant with one fixed-cutoff expert, or a backbone whose layers
            cannot weight their edges (``Expert.accepts_edge_envelope``).
    """
    if variant not in ROUTED_VARIANTS:
        raise ValueError(
            f"learnable cutoffs need a routed variant {ROUTED_VARIANTS}; variant {variant!r} "
            "has one expert at a fixed cutoff"
        )
    if not expert_cls.accepts_edge_envelope:
        raise ValueError(
            f"learnable cutoffs are not available for the {expert_cls.name} backbone (its "
            "PyG layers apply their own cutoff); choose schnet, painn, et or dimenet++"
        )


def _check_learnable(experts: Sequence[Expert], variant: str, learnable: LearnableCutoffs) -> None:
    """Refuse experts and variants that learnable cutoffs cannot drive, saying why."""
    if learnable.num_experts != len(experts):
        raise ValueError(f"{learnable.num_experts} learnable cutoffs for {len(experts)} experts")
    for expert in experts:
        check_learnable_target(variant, type(expert))
        if expert.cutoff < learnable.upper:
            raise ValueError(
                f"with learnable cutoffs every expert must reach the upper bound "
                f"{learnable.upper} Å (its bases and envelope), got an expert at {expert.cutoff}"
            )


def check_trunk_target(variant: str) -> None:
    """Refuse a variant that a shared trunk cannot serve, saying why.

    Raises:
        ValueError: a variant with one expert (nothing to share).
    """
    if variant not in ROUTED_VARIANTS:
        raise ValueError(
            f"a shared trunk serves the experts of a routed variant {ROUTED_VARIANTS}; "
            f"variant {variant!r} has one expert"
        )


def _check_trunk(
    trunk: Expert | None, experts: Sequence[Expert], variant: str, search_radius: float
) -> None:
    """Refuse a trunk and experts that do not fit together, saying why."""
    roles = {e.role for e in experts}
    if trunk is None:
        if roles != {"whole"}:
            raise ValueError(f"experts without a shared trunk must be whole, got roles {roles}")
        return
    check_trunk_target(variant)
    if trunk.role != "trunk" or roles != {"branch"}:
        raise ValueError(
            f"a shared trunk needs a module of role 'trunk' and experts of role 'branch', got "
            f"{trunk.role!r} and {sorted(roles)}"
        )
    if any(type(e) is not type(trunk) for e in experts):
        raise ValueError(f"the shared trunk and the experts must share a backbone ({trunk.name})")
    widths = {e.hidden_channels for e in experts}
    if widths != {trunk.hidden_channels}:
        raise ValueError(
            f"the shared trunk hands its atom features to every expert, so its width "
            f"{trunk.hidden_channels} must equal the experts' hidden_channels {sorted(widths)}"
        )
    if trunk.cutoff > search_radius + 1e-9:
        raise ValueError(
            f"the shared trunk reads the edges of the one neighbour search at {search_radius} Å, "
            f"so its cutoff must be at most {search_radius}, got {trunk.cutoff}"
        )
