"""Shared trunk (issue 18, Q3): experts that share the embedding and their first blocks."""

from __future__ import annotations

import pytest
import torch
from molecule_factory import (
    Molecules,
    assert_sparse_dispatch_equals_computing_every_expert,
    moved_and_permuted,
)

from mimoe_core.models import create_model, expert_class, load_config
from mimoe_core.models.gate import MLPGate
from mimoe_core.models.mimoe import MIMoE
from mimoe_core.models.radius_graph import radius_graph, within_cutoff

BACKBONES = ["dimenet++", "et", "painn", "schnet", "visnet"]
# The backbones whose trunk + branch is exactly a whole expert split in two (DimeNet++ and
# ViSNet rebuild their edge features in each branch from the trunk's atom states).
SPLIT_EXACTLY = ["et", "painn", "schnet"]


def trunk_model(backbone: str = "schnet", layers: int = 1, **overrides):
    config = {
        "backbone": backbone,
        "expert": {"hidden_channels": 8, "num_layers": 3},
        "gate": {"name": "mlp", "hidden_channels": 16},
        "shared_trunk": {"enabled": True, "layers": layers},
        "cutoffs": [2.0, 3.0, 4.0],  # K = 3 keeps DimeNet++ (slow to build and run) quick
        **overrides,
    }
    torch.manual_seed(0)
    return create_model(config).double()


def _params(module) -> int:
    return sum(p.numel() for p in module.parameters())


@pytest.mark.parametrize("backbone", BACKBONES)
def test_the_trunk_holds_the_embedding_and_the_experts_the_remaining_blocks(backbone):
    lean = trunk_model(backbone, layers=1)
    assert lean.trunk.role == "trunk" and lean.trunk.num_layers == 1
    assert lean.trunk.cutoff == 4.0  # the largest graph: the one neighbour search
    assert lean.trunk.readout is None
    for expert in lean.experts:
        assert expert.role == "branch" and expert.num_layers == 2
        names = [n for n, _ in expert.named_parameters()]
        assert not any(n.startswith(("embedding.", "block.embedding.", "emb.emb.")) for n in names)
    independent = trunk_model(backbone, shared_trunk={"enabled": False})
    assert _params(lean) < _params(independent)


@pytest.mark.parametrize("backbone", SPLIT_EXACTLY)
def test_trunk_then_branch_is_the_whole_expert_split_in_two(backbone):
    """One expert at the search radius: trunk + branch with the whole expert's weights give
    the whole expert's embedding, so the handoff loses nothing."""
    model = trunk_model(backbone, cutoffs=[4.0], top_k=1).eval()
    torch.manual_seed(1)
    whole = expert_class(backbone)(hidden_channels=8, num_layers=3, cutoff=4.0).double()
    trunk, branch = model.trunk.state_dict(), model.experts[0].state_dict()
    layer_lists = {"schnet": "interactions", "painn": ("messages", "updates"), "et": "layers"}
    lists = layer_lists[backbone]
    lists = (lists,) if isinstance(lists, str) else lists
    mapped = {}
    for name, value in whole.state_dict().items():
        head, _, rest = name.partition(".")
        if head in lists:
            index, _, tail = rest.partition(".")
            if int(index) == 0:
                mapped[("trunk", name)] = value
            else:
                mapped[("branch", f"{head}.{int(index) - 1}.{tail}")] = value
        elif name in trunk and name in branch:  # bases used by both (the rbf)
            mapped[("trunk", name)] = mapped[("branch", name)] = value
        elif name in trunk:
            mapped[("trunk", name)] = value
        else:
            mapped[("branch", name)] = value
    for part, module in (("trunk", model.trunk), ("branch", model.experts[0])):
        state = {k: v for (p, k), v in mapped.items() if p == part}
        module.load_state_dict(state, strict=True)
    mols = Molecules([7, 9])
    graph = radius_graph(mols.pos, mols.batch, 4.0)
    expected = whole(mols.z, mols.pos, *graph, mols.batch)
    got = model.embed(mols.z, mols.pos, mols.batch, mols.topo).experts[:, 0]
    torch.testing.assert_close(got, expected, atol=1e-10, rtol=1e-8)


def test_each_expert_reads_the_trunk_states_on_its_own_graph():
    """Reference assembled by hand: the trunk on the largest graph, expert e on its cutoff's."""
    mols = Molecules([8, 9, 6], seed=2)
    model = trunk_model("painn", top_k=3).eval()
    full = radius_graph(mols.pos, mols.batch, 4.0)
    state = model.trunk.trunk_state(mols.z, *full)
    got = model.embed(mols.z, mols.pos, mols.batch, mols.topo).experts
    for e, (expert, cutoff) in enumerate(zip(model.experts, [2.0, 3.0, 4.0], strict=True)):
        graph = within_cutoff(full, cutoff)
        expected = expert(mols.z, mols.pos, *graph, mols.batch, state=state)
        torch.testing.assert_close(got[:, e], expected, atol=1e-10, rtol=1e-8)


def test_a_trunk_at_a_smaller_cutoff_reads_only_the_edges_within_it():
    mols = Molecules([8, 9, 6], seed=2)
    model = trunk_model("schnet", top_k=3, shared_trunk={"enabled": True, "cutoff": 2.0}).eval()
    assert model.trunk.cutoff == 2.0
    full = radius_graph(mols.pos, mols.batch, 4.0)
    state = model.trunk.trunk_state(mols.z, *within_cutoff(full, 2.0))
    got = model.embed(mols.z, mols.pos, mols.batch, mols.topo).experts
    expected = model.experts[2](mols.z, mols.pos, *full, mols.batch, state=state)
    torch.testing.assert_close(got[:, 2], expected, atol=1e-10, rtol=1e-8)
    # the edges it leaves out matter: the trunk on the whole graph gives other states
    wide = model.trunk.trunk_state(mols.z, *full)
    assert not torch.allclose(wide.scalars, state.scalars)


@pytest.mark.parametrize("backbone", BACKBONES)
def test_sparse_dispatch_with_a_trunk_equals_computing_every_expert(backbone):
    assert_sparse_dispatch_equals_computing_every_expert(trunk_model(backbone, top_k=1))


@pytest.mark.parametrize("backbone", BACKBONES)
def test_a_model_with_a_trunk_is_invariant_to_rotation_and_atom_order(backbone):
    molecules = Molecules([5, 8, 6])
    model = trunk_model(backbone).eval()
    ref = model(molecules.z, molecules.pos, molecules.batch, molecules.topo)
    out = model(*moved_and_permuted(molecules, shift=(1.0, 2.0, -3.0)))
    torch.testing.assert_close(out.y, ref.y, atol=1e-6, rtol=0)


@pytest.mark.parametrize("backbone", BACKBONES)
def test_every_trunk_parameter_learns_from_the_prediction(backbone):
    mols = Molecules([6, 7])
    model = trunk_model(backbone)
    model(mols.z, mols.pos, mols.batch, mols.topo).y.sum().backward()
    silent = [n for n, p in model.trunk.named_parameters() if p.grad is None or not p.grad.any()]
    # The vectors start at zero, so the first layer's projection of them gets no gradient in
    # ET and ViSNet (as in a whole expert).
    first_vectors = {
        "et": ["layers.0.vec_proj.weight"],
        "visnet": ["block.vis_mp_layers.0.vec_proj.weight"],
    }
    assert silent == first_vectors.get(backbone, [])


def test_the_trunk_carries_the_chemical_atom_attributes():
    model = trunk_model("schnet", atom_attributes=True)
    assert model.reads_atom_attributes
    assert model.trunk.attr_embedding is not None
    assert all(e.attr_embedding is None for e in model.experts)


def test_a_trunk_combines_with_learnable_cutoffs():
    spec = {"enabled": True, "lower": 1.0, "upper": 4.5, "ramp": 0.5}
    model = trunk_model("schnet", learnable_cutoffs=spec)
    assert model.trunk.cutoff == 4.5 and all(e.cutoff == 4.5 for e in model.experts)
    mols = Molecules([8, 9], seed=4)
    model(mols.z, mols.pos, mols.batch, mols.topo).y.sum().backward()
    assert model.learnable_cutoffs.raw_gaps.grad.abs().sum() > 0


def test_state_dict_round_trip_with_a_trunk(molecules):
    model = trunk_model("painn").eval()
    again = create_model(model.config).double().eval()
    again.load_state_dict(model.state_dict())
    a = model(molecules.z, molecules.pos, molecules.batch, molecules.topo).y
    b = again(molecules.z, molecules.pos, molecules.batch, molecules.topo).y
    torch.testing.assert_close(a, b, atol=0, rtol=0)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"shared_trunk": {"enabled": True, "layers": 3}}, r"layers must be a whole number in"),
        ({"shared_trunk": {"enabled": True, "layers": 0}}, r"layers must be a whole number in"),
        ({"shared_trunk": {"enabled": True, "layers": 1.5}}, r"layers must be a whole number in"),
        (
            {"shared_trunk": {"enabled": True, "hidden_channels": 64}},
            r"does not match the experts' hidden_channels=128",
        ),
        ({"shared_trunk": {"enabled": True}, "variant": "plain"}, r"routed variant"),
        ({"shared_trunk": {"enabled": True, "cutoff": 4.5}}, r"cutoff must be a number in"),
        ({"shared_trunk": {"enabled": True, "cutoff": 0}}, r"cutoff must be a number in"),
        ({"shared_trunk": {"enabled": True}, "variant": "one_expert"}, r"routed variant"),
        ({"shared_trunk": {"enabled": "yes"}}, r"enabled must be true or false"),
        ({"shared_trunk": {"enable": True}}, r"unknown shared_trunk key"),
    ],
)
def test_shared_trunk_config_errors_name_the_problem(overrides, message):
    with pytest.raises(ValueError, match=message):
        load_config(overrides)


def _gate(k: int) -> MLPGate:
    return MLPGate(num_radii=41, num_descriptors=5, num_experts=k)


@pytest.mark.parametrize(
    ("trunk", "experts", "message"),
    [
        (
            dict(hidden_channels=16, cutoff=3.0, role="trunk"),
            [dict(hidden_channels=8, cutoff=c, role="branch") for c in (2.0, 3.0)],
            r"its width 16 must equal the experts' hidden_channels \[8\]",
        ),
        (
            dict(hidden_channels=8, cutoff=5.0, role="trunk"),
            [dict(hidden_channels=8, cutoff=c, role="branch") for c in (2.0, 3.0)],
            r"its cutoff must be at most 3.0",
        ),
        (
            dict(hidden_channels=8, cutoff=3.0, role="trunk"),
            [dict(hidden_channels=8, cutoff=c) for c in (2.0, 3.0)],
            r"role 'branch'",
        ),
    ],
)
def test_mismatched_trunk_and_experts_are_refused(trunk, experts, message):
    cls = expert_class("schnet")
    with pytest.raises(ValueError, match=message):
        MIMoE([cls(**e) for e in experts], _gate(2), trunk=cls(**trunk))


def test_branches_without_a_trunk_and_a_trunk_called_as_an_expert_are_refused(molecules):
    cls = expert_class("schnet")
    branches = [cls(hidden_channels=8, cutoff=c, role="branch") for c in (2.0, 3.0)]
    with pytest.raises(ValueError, match="must be whole"):
        MIMoE(branches, _gate(2))
    trunk = cls(hidden_channels=8, cutoff=3.0, role="trunk").double()
    graph = radius_graph(molecules.pos, molecules.batch, 3.0)
    with pytest.raises(ValueError, match="no readout"):
        trunk(molecules.z, molecules.pos, *graph, molecules.batch)
    with pytest.raises(ValueError, match="starts from the shared trunk's state"):
        branches[0].double()(molecules.z, molecules.pos, *graph, molecules.batch)
    with pytest.raises(ValueError, match="give atom_attr_dim to the trunk"):
        cls(hidden_channels=8, cutoff=3.0, role="branch", atom_attr_dim=4)
