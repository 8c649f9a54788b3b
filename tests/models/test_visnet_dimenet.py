from __future__ import annotations

import copy
import itertools
import time

import pytest
import torch
import torch_geometric.nn.models.dimenet as pyg_dimenet
from molecule_factory import Molecules, random_rotation
from torch_geometric.nn.models.visnet import ViSNetBlock

from mimoe_core.models import radius_graph
from mimoe_core.models.dimenet import MIN_REDUCED_DIST, DimeNetPPExpert, triplets
from mimoe_core.models.visnet import ViSNetExpert

CUTOFF = 3.0
HIDDEN = 16
SMALL = {
    "visnet": dict(num_heads=4, num_rbf=8),
    "dimenet++": dict(
        int_emb_size=8, basis_emb_size=4, out_emb_channels=16, num_spherical=3, num_radial=4
    ),
}
CLASSES = {"visnet": ViSNetExpert, "dimenet++": DimeNetPPExpert}


def make(name, dtype=torch.float64, **kwargs):
    torch.manual_seed(0)
    settings = dict(hidden_channels=HIDDEN, num_layers=2, cutoff=CUTOFF, **SMALL[name])
    return CLASSES[name](**{**settings, **kwargs}).to(dtype)


def run(expert, z, pos, batch, num_graphs=None):
    return expert(z, pos, *radius_graph(pos, batch, CUTOFF), batch, num_graphs)


@pytest.fixture(scope="module")
def mols():
    sizes = torch.randint(5, 21, (6,), generator=torch.Generator().manual_seed(3)).tolist()
    return Molecules(sizes, seed=3)


# --- triplets ---------------------------------------------------------------------------


def brute_triplets(edge_index):
    """PyG's triplets by loops: per edge j -> i in order, edges k -> j sorted by k."""
    edges = edge_index.T.tolist()
    out = []
    for e_ji, (j, i) in enumerate(edges):
        incoming = sorted((k, e_kj) for e_kj, (k, t) in enumerate(edges) if t == j)
        out += [(k, j, i, e_kj, e_ji) for k, e_kj in incoming if k != i]
    return out


def random_edges(gen, n, p):
    pairs = [(a, b) for a, b in itertools.product(range(n), repeat=2) if a != b]
    keep = torch.rand(len(pairs), generator=gen) < p
    chosen = [pair for pair, k in zip(pairs, keep.tolist(), strict=True) if k]
    edge_index = torch.tensor(chosen, dtype=torch.long).reshape(-1, 2).T
    return edge_index[:, torch.randperm(edge_index.size(1), generator=gen)]  # any order


@pytest.mark.parametrize("seed", range(6))
def test_triplets_match_brute_force(seed):
    gen = torch.Generator().manual_seed(seed)
    n = 4 + seed
    edge_index = random_edges(gen, n, p=[0.0, 0.1, 0.3, 0.5, 0.8, 1.0][seed])
    i, j, idx_i, idx_j, idx_k, idx_kj, idx_ji = triplets(edge_index, n + 2)  # 2 lone atoms
    assert torch.equal(i, edge_index[1]) and torch.equal(j, edge_index[0])
    got = list(zip(*(t.tolist() for t in (idx_k, idx_j, idx_i, idx_kj, idx_ji)), strict=True))
    expected = brute_triplets(edge_index)
    assert set(got) == set(expected) and len(got) == len(set(got))
    assert got == expected  # PyG's order too
    assert all(t.dtype == torch.long for t in (idx_i, idx_kj, idx_ji))


def test_triplets_of_empty_and_sparse_graphs():
    for num_nodes in (0, 4):
        out = triplets(torch.zeros(2, 0, dtype=torch.long), num_nodes)
        assert len(out) == 7 and all(t.numel() == 0 for t in out)
    out = triplets(torch.tensor([[0, 1], [1, 0]]), 5)  # one bond, three isolated atoms
    assert out[0].tolist() == [1, 0] and out[2].numel() == 0  # k -> j -> i needs k != i


def test_triplets_timing():
    mols = Molecules([20] * 128, dtype=torch.float32, seed=1)
    graph = radius_graph(mols.pos, mols.batch, 4.0)
    n = mols.pos.size(0)
    triplets(graph.edge_index, n)
    times = []
    for _ in range(5):
        start = time.perf_counter()
        out = triplets(graph.edge_index, n)
        times.append(time.perf_counter() - start)
    print(
        f"\ntriplets: 128 molecules x 20 atoms, {graph.edge_index.size(1)} edges, "
        f"{out[2].numel()} triplets: {1e3 * min(times):.1f} ms"
    )
    assert min(times) < 1.0  # loose: a Python loop over edges takes seconds


# --- both experts -----------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(CLASSES))
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_output_shape_and_dtype(name, dtype, mols):
    expert = make(name, dtype)
    out = run(expert, mols.z, mols.pos.to(dtype), mols.batch)
    assert out.shape == (mols.num_graphs, HIDDEN) and out.dtype == dtype
    assert torch.isfinite(out).all() and out.std() > 0


@pytest.mark.parametrize("name", sorted(CLASSES))
def test_invariance_to_rotation_translation_and_permutation(name, mols):
    expert = make(name)
    out = run(expert, mols.z, mols.pos, mols.batch)
    rot = random_rotation(7)
    pos = mols.pos @ rot.T + torch.tensor([1.5, -3.0, 0.7], dtype=torch.float64)
    # A permutation within each molecule keeps the batch sorted.
    gen = torch.Generator().manual_seed(4)
    perm = torch.cat(
        [torch.nonzero(mols.batch == b).flatten()[torch.randperm(s, generator=gen)]
         for b, s in enumerate(mols.sizes)]
    )  # fmt: skip
    moved = run(expert, mols.z[perm], pos[perm], mols.batch[perm])
    torch.testing.assert_close(moved, out, atol=1e-6, rtol=0)


@pytest.mark.parametrize("name", sorted(CLASSES))
def test_batch_equals_single_molecules(name, mols):
    expert = make(name)
    out = run(expert, mols.z, mols.pos, mols.batch)
    singles = [run(expert, *mols.molecule(b)[:3]) for b in range(mols.num_graphs)]
    torch.testing.assert_close(out, torch.cat(singles), atol=1e-10, rtol=0)


@pytest.mark.parametrize("name", sorted(CLASSES))
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_coincident_atoms_give_finite_output_and_gradients(name, dtype):
    pos = torch.tensor(
        [[0.0, 0, 0], [0.0, 0, 0], [1.1, 0, 0], [0.0, 1.0, 0.3], [2.2, 0, 0]], dtype=dtype
    )  # atoms 0 and 1 coincide; 0/1 - 2 - 4 are collinear
    z = torch.tensor([6, 6, 1, 8, 7])
    batch = torch.zeros(5, dtype=torch.long)
    expert = make(name, dtype)
    out = run(expert, z, pos, batch)
    assert torch.isfinite(out).all()
    out.square().sum().backward()
    grads = [p.grad for p in expert.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)


@pytest.mark.parametrize("name", sorted(CLASSES))
def test_molecules_without_edges(name):
    expert = make(name)
    z = torch.tensor([6, 8, 1])
    pos = torch.tensor([[0.0, 0, 0], [10.0, 0, 0], [0.0, 20.0, 0]], dtype=torch.float64)
    batch = torch.tensor([0, 0, 1])
    graph = radius_graph(pos, batch, CUTOFF)
    assert graph.edge_index.size(1) == 0
    out = expert(z, pos, *graph, batch)
    assert out.shape == (2, HIDDEN) and torch.isfinite(out).all()
    out.sum().backward()


@pytest.mark.parametrize("name", sorted(CLASSES))
def test_repr_shows_settings(name):
    text = str(make(name))
    assert CLASSES[name].__name__ in text and f"hidden_channels={HIDDEN}" in text
    assert f"cutoff={CUTOFF}" in text and "num_layers=2" in text and "pooling='mean'" in text
    extra = "num_heads=4" if name == "visnet" else "num_spherical=3, num_radial=4"
    assert extra in text


def test_bad_settings():
    with pytest.raises(ValueError, match="divisible by num_heads"):
        ViSNetExpert(hidden_channels=10, num_heads=4)
    with pytest.raises(ValueError, match="lmax"):
        ViSNetExpert(lmax=3)
    with pytest.raises(ValueError, match="pooling"):
        make("dimenet++", pooling="max")


# --- same numbers as PyG's own models on our graph ----------------------------------------


class FixedGraph(torch.nn.Module):
    def __init__(self, *graph):
        super().__init__()
        self.graph = graph

    def forward(self, pos, batch):
        edge_index, edge_weight, edge_vec = self.graph
        return edge_index, edge_weight, edge_vec.clone()  # PyG normalizes it in place


def test_visnet_matches_pyg_block_with_self_loops(mols):
    expert = make("visnet", lmax=2)
    z, pos, batch = mols.z, mols.pos, mols.batch
    graph = radius_graph(pos, batch, CUTOFF)
    n = z.numel()
    loops = torch.arange(n).expand(2, n)
    edge_index = torch.cat([graph.edge_index, loops], dim=1)
    edge_weight = torch.cat([graph.edge_weight, pos.new_zeros(n)])
    edge_vec = torch.cat([graph.edge_vec, pos.new_zeros(n, 3)])
    block = copy.deepcopy(expert.block)
    assert isinstance(block, ViSNetBlock)
    # PyG's graph (torch-cluster radius_graph with loop=True), without its neighbour cap.
    block.distance = FixedGraph(edge_index, edge_weight, edge_vec)
    expected, _ = block(z, pos, batch)
    got = expert.atom_features(z, pos, *graph)
    torch.testing.assert_close(got, expected, atol=1e-12, rtol=0)


def test_dimenet_matches_pyg_dimenet_plus_plus(mols, monkeypatch):
    z, pos, batch = mols.z, mols.pos, mols.batch
    graph = radius_graph(pos, batch, CUTOFF)
    assert graph.edge_weight.min() > MIN_REDUCED_DIST * CUTOFF  # the clamp is inactive
    expert = make("dimenet++")
    s = SMALL["dimenet++"]
    pyg = pyg_dimenet.DimeNetPlusPlus(
        HIDDEN, HIDDEN, 2, s["int_emb_size"], s["basis_emb_size"], s["out_emb_channels"],
        s["num_spherical"], s["num_radial"], cutoff=CUTOFF, num_output_layers=2,
    ).double()  # fmt: skip
    keys = pyg.load_state_dict(expert.state_dict(), strict=False)
    assert not keys.missing_keys and all(k.startswith("readout.") for k in keys.unexpected_keys)
    # torch-cluster and torch-sparse are absent: PyG's forward runs with our graph builders.
    monkeypatch.setattr(pyg_dimenet, "radius_graph", lambda pos, r, batch, **_: graph[0])
    monkeypatch.setattr(pyg_dimenet, "triplets", triplets)
    expected = pyg(z, pos, batch)  # sum over atoms of the output blocks
    got = torch.zeros_like(expected).index_add_(0, batch, expert.atom_features(z, pos, *graph))
    torch.testing.assert_close(got, expected, atol=1e-10, rtol=1e-10)
