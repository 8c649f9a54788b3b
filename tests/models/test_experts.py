from __future__ import annotations

import itertools
import time

import pytest
import torch
from molecule_factory import Molecules, random_rotation

from mimoe_core.models import EXPERTS, expert_class, radius_graph
from mimoe_core.models.dimenet import triplets
from mimoe_core.models.painn import PaiNNExpert
from mimoe_core.models.radius_graph import mirror_pairs

SMALL = {
    "schnet": {"num_filters": 16, "num_rbf": 10},
    "painn": {"num_rbf": 8},
    "visnet": {"num_heads": 4, "num_rbf": 8},
    "dimenet++": {"int_emb_size": 8, "out_emb_channels": 16},
    "et": {"num_heads": 4, "num_rbf": 8},
}


def make(name, cutoff=3.0):
    torch.manual_seed(0)
    cls = expert_class(name)
    return cls(hidden_channels=16, num_layers=2, cutoff=cutoff, **SMALL[name]).double()


def brute_triplets(edge_index):
    edges = edge_index.T.tolist()
    out = set()
    for (e_kj, (k, j)), (e_ji, (j2, i)) in itertools.product(enumerate(edges), repeat=2):
        if j == j2 and k != i:
            out.add((k, j, i, e_kj, e_ji))
    return out


@pytest.mark.parametrize("seed", range(5))
def test_triplets_match_brute_force(seed):
    gen = torch.Generator().manual_seed(seed)
    n = 9
    pairs = [(a, b) for a in range(n) for b in range(n) if a != b]
    keep = torch.rand(len(pairs), generator=gen) < 0.3
    edge_index = torch.tensor([p for p, k in zip(pairs, keep, strict=True) if k]).T
    edge_index = edge_index[:, torch.randperm(edge_index.size(1), generator=gen)]  # any order
    i, j, idx_i, idx_j, idx_k, idx_kj, idx_ji = triplets(edge_index, n)
    assert torch.equal(i, edge_index[1]) and torch.equal(j, edge_index[0])
    got = set(zip(*(t.tolist() for t in (idx_k, idx_j, idx_i, idx_kj, idx_ji)), strict=True))
    assert got == brute_triplets(edge_index)
    assert len(got) == idx_i.numel()  # no duplicates


def test_triplets_of_empty_and_isolated_graphs():
    out = triplets(torch.zeros(2, 0, dtype=torch.long), 4)
    assert all(t.numel() == 0 for t in out)
    out = triplets(torch.tensor([[0, 1], [1, 0]]), 5)  # one bond, three isolated atoms
    assert out[2].numel() == 0  # k -> j -> i needs k != i


def _best_time(fn, repeats: int = 3) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def test_triplets_are_fast_enough():
    """Vectorized: within a small factor of the (vectorized) radius graph of the same batch.

    A ratio measured in the same run, not an absolute time, so a loaded CI machine does not
    fail it; a Python loop over the 34k edges would be over 100 times slower.
    """
    mols = Molecules([20] * 128, dtype=torch.float32, seed=1)
    graph = radius_graph(mols.pos, mols.batch, 4.0)
    search = _best_time(lambda: radius_graph(mols.pos, mols.batch, 4.0))
    build = _best_time(lambda: triplets(graph.edge_index, mols.pos.size(0)))
    assert build < 25 * search, (build, search)


@pytest.mark.parametrize("name", sorted(EXPERTS))
def test_expert_output_and_invariance(name, molecules):
    expert = make(name)
    graph = radius_graph(molecules.pos, molecules.batch, 3.0)
    out = expert(molecules.z, molecules.pos, *graph, molecules.batch)
    assert out.shape == (molecules.num_graphs, 16) and out.dtype == torch.float64
    rot = random_rotation(5)
    pos = molecules.pos @ rot.T - 4.0
    moved = expert(molecules.z, pos, *radius_graph(pos, molecules.batch, 3.0), molecules.batch)
    torch.testing.assert_close(moved, out, atol=1e-6, rtol=0)


@pytest.mark.parametrize("name", sorted(EXPERTS))
def test_a_batch_without_any_edge_gives_finite_embeddings(name):
    """Single atoms (an ion, or a sub-batch routed to a short-cutoff expert) have no edges."""
    z = torch.tensor([11, 17, 6])
    pos = torch.tensor([[0.0, 0, 0], [0.0, 0, 0], [9.0, 0, 0]], dtype=torch.float64)
    batch = torch.tensor([0, 1, 1])
    graph = radius_graph(pos, batch, 3.0)
    assert graph.edge_index.size(1) == 0
    out = make(name)(z, pos, *graph, batch)
    assert out.shape == (2, 16) and torch.isfinite(out).all()


@pytest.mark.parametrize("name", sorted(EXPERTS))
def test_coincident_atoms_and_isolated_molecules_stay_finite(name):
    pos = torch.tensor(
        [[0.0, 0, 0], [0.0, 0, 0], [1.1, 0, 0], [0.0, 1.0, 0.3], [20.0, 0, 0], [40.0, 0, 0]],
        dtype=torch.float64,
    )
    z = torch.tensor([6, 6, 1, 8, 6, 7])
    batch = torch.tensor([0, 0, 0, 0, 1, 1])  # molecule 1: two atoms, no edge at 3 Å
    expert = make(name)
    out = expert(z, pos, *radius_graph(pos, batch, 3.0), batch)
    assert torch.isfinite(out).all()
    out.sum().backward()
    for p in expert.parameters():
        assert p.grad is None or torch.isfinite(p.grad).all()


@pytest.mark.parametrize("name", ["painn", "et"])
def test_vector_features_rotate_with_the_molecule(name, molecules):
    expert = make(name)
    graph = radius_graph(molecules.pos, molecules.batch, 3.0)
    s, v = expert.atom_states(molecules.z, graph.edge_index, graph.edge_weight, graph.edge_vec)
    rot = random_rotation(2)
    pos = molecules.pos @ rot.T
    g2 = radius_graph(pos, molecules.batch, 3.0)
    s2, v2 = expert.atom_states(molecules.z, g2.edge_index, g2.edge_weight, g2.edge_vec)
    torch.testing.assert_close(s2, s, atol=1e-8, rtol=0)
    torch.testing.assert_close(v2, torch.einsum("ij,njf->nif", rot, v), atol=1e-8, rtol=0)
    assert v.abs().max() > 0  # the vectors are not trivially zero


def test_repr_and_bad_settings():
    text = repr(make("painn"))
    assert "PaiNNExpert" in text and "cutoff=3.0" in text and "num_layers=2" in text
    for name in ("et", "visnet"):
        with pytest.raises(ValueError, match="divisible by num_heads"):
            expert_class(name)(hidden_channels=10, num_heads=4)
    with pytest.raises(ValueError, match="pooling"):
        PaiNNExpert(pooling="max")


@pytest.mark.parametrize("name", sorted(EXPERTS))
def test_reset_parameters_resets_backbone_and_readout(name):
    expert = make(name)
    with torch.no_grad():
        for p in expert.parameters():
            p.fill_(0.123)
    expert.reset_parameters()
    readout = [m for m in expert.readout if isinstance(m, torch.nn.Linear)]
    assert all(not torch.all(m.weight == 0.123) for m in readout)
    backbone = [p for n, p in expert.named_parameters() if not n.startswith("readout.")]
    assert any(not torch.all(p == 0.123) for p in backbone)


def pyg_schnet_reference(expert, z, edge_index, edge_weight, edge_envelope=None):
    """The expert's atom features with PyG's own ``InteractionBlock`` on every directed edge."""
    h = expert.embedding(z)
    rbf = expert.rbf(edge_weight)
    for block in expert.interactions:
        if edge_envelope is None:
            h = h + block(h, edge_index, edge_weight, rbf)
        else:  # CFConv scales its filters by C(d); the envelope scales them further
            conv = block.conv
            c = 0.5 * (torch.cos(edge_weight * torch.pi / conv.cutoff) + 1.0) * edge_envelope
            w = conv.nn(rbf) * c.unsqueeze(-1)
            x = torch.zeros_like(h).index_add_(0, edge_index[1], conv.lin1(h)[edge_index[0]] * w)
            h = h + block.lin(block.act(conv.lin2(x)))
    return h


@pytest.mark.parametrize("one_way", [False, True])
def test_schnet_with_filters_per_pair_matches_pyg_per_edge(molecules, one_way):
    expert = make("schnet")
    edge_index, edge_weight, edge_vec = radius_graph(molecules.pos, molecules.batch, 3.0)
    gen = torch.Generator().manual_seed(0)
    # any per-edge weight that an edge and its mirror share (learnable cutoffs' ramp)
    pairs = mirror_pairs(edge_index, molecules.z.numel())
    envelope = torch.rand(pairs.first.numel(), generator=gen, dtype=torch.float64)
    envelope = envelope[pairs.of_edge]
    if one_way:  # an edge without its mirror: the expert falls back to filters per edge
        edge_index, edge_weight, edge_vec = edge_index[:, 1:], edge_weight[1:], edge_vec[1:]
        envelope = envelope[1:]
    for weights, per_pair in itertools.product((None, envelope), (True, False)):
        expert.filters_per_pair = per_pair
        expected = pyg_schnet_reference(expert, molecules.z, edge_index, edge_weight, weights)
        got, _ = expert.atom_states(
            molecules.z, edge_index, edge_weight, edge_vec, edge_envelope=weights
        )
        torch.testing.assert_close(got, expected, atol=1e-10, rtol=0)
