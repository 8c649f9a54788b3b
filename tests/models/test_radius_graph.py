import pytest
import torch

from mimoe_core.models import ExpertGraph, radius_graph, within_cutoff
from mimoe_core.models._common import atoms_per_molecule
from mimoe_core.models.radius_graph import mirror_pairs, subgraph


def random_batch(seed=0, sizes=(5, 1, 12, 20, 2)):
    gen = torch.Generator().manual_seed(seed)
    pos = torch.randn(sum(sizes), 3, generator=gen, dtype=torch.float64) * 2.0
    batch = torch.repeat_interleave(torch.arange(len(sizes)), torch.tensor(sizes))
    return pos, batch


def brute_force(pos, batch, cutoff):
    """Dense cdist per molecule; edges sorted by (target, source)."""
    edges = []
    for b in batch.unique():
        idx = torch.nonzero(batch == b).flatten()
        dist = torch.cdist(pos[idx], pos[idx])
        tgt, src = torch.nonzero((dist <= cutoff) & ~torch.eye(len(idx), dtype=torch.bool)).T
        edges.append(torch.stack([idx[src], idx[tgt]]))
    edge_index = torch.cat(edges, dim=1)
    order = torch.argsort(edge_index[1] * len(pos) + edge_index[0])
    return edge_index[:, order]


@pytest.mark.parametrize("cutoff", [0.5, 2.0, 3.5, 100.0])
def test_matches_brute_force(cutoff):
    pos, batch = random_batch()
    g = radius_graph(pos, batch, cutoff)
    assert isinstance(g, ExpertGraph)
    ref = brute_force(pos, batch, cutoff)
    assert torch.equal(g.edge_index, ref)
    src, dst = g.edge_index
    assert torch.allclose(g.edge_vec, pos[src] - pos[dst])
    assert torch.allclose(g.edge_weight, (pos[src] - pos[dst]).norm(dim=-1))
    assert torch.all(g.edge_weight <= cutoff)


def test_batch_separation_and_default_batch():
    pos = torch.zeros(4, 3)  # all coincident, two molecules
    g = radius_graph(pos, torch.tensor([0, 0, 1, 1]), cutoff=1.0)
    assert g.edge_index.tolist() == [[1, 0, 3, 2], [0, 1, 2, 3]]
    assert radius_graph(pos, None, cutoff=1.0).edge_index.size(1) == 12


def test_closed_cutoff():
    pos = torch.tensor([[0.0, 0, 0], [2.0, 0, 0]])
    assert radius_graph(pos, cutoff=2.0).edge_index.size(1) == 2


def test_within_cutoff_gives_the_nested_expert_graphs():
    pos, batch = random_batch(1)
    cutoffs = [2.0, 2.5, 3.0, 3.5, 4.0]
    full = radius_graph(pos, batch, cutoffs[-1])
    graphs = [within_cutoff(full, c) for c in cutoffs]
    for c, g in zip(cutoffs, graphs, strict=True):
        assert torch.equal(g.edge_index, radius_graph(pos, batch, c).edge_index)
    for small, big in zip(graphs, graphs[1:], strict=False):
        big_set = set(map(tuple, big.edge_index.T.tolist()))
        assert set(map(tuple, small.edge_index.T.tolist())) <= big_set


def test_gradient_flows_through_edge_weight():
    pos, batch = random_batch(3)
    pos.requires_grad_(True)
    g = radius_graph(pos, batch, 3.0)
    g.edge_weight.sum().backward()
    assert pos.grad is not None and torch.isfinite(pos.grad).all() and pos.grad.abs().sum() > 0


def test_bad_inputs():
    with pytest.raises(ValueError, match="shape"):
        radius_graph(torch.zeros(3, 2), cutoff=1.0)
    with pytest.raises(ValueError, match="sorted"):
        radius_graph(torch.zeros(3, 3), torch.tensor([1, 0, 1]), cutoff=1.0)
    with pytest.raises(ValueError, match="non-negative"):
        radius_graph(torch.zeros(3, 3), torch.tensor([-1, 0, 0]), cutoff=1.0)
    with pytest.raises(ValueError, match="cutoff"):
        radius_graph(torch.zeros(3, 3), cutoff=0.0)


def brute_mirror(edge_index):
    """Per edge, the index of its mirror edge, by lookup in a dict."""
    where = {(s, t): e for e, (s, t) in enumerate(edge_index.T.tolist())}
    return [where.get((t, s)) for s, t in edge_index.T.tolist()]


@pytest.mark.parametrize("shuffle", [False, True])
def test_mirror_pairs_group_every_edge_with_its_mirror(shuffle):
    pos, batch = random_batch(seed=4)
    edge_index = radius_graph(pos, batch, 3.0).edge_index
    if shuffle:  # edges in any order are paired too
        edge_index = edge_index[:, torch.randperm(edge_index.size(1))]
    pairs = mirror_pairs(edge_index, pos.size(0))
    mirror = brute_mirror(edge_index)
    source, target = edge_index
    assert pairs.first.numel() * 2 == edge_index.size(1)
    assert torch.all(source[pairs.first] < target[pairs.first])
    for e, m in enumerate(mirror):
        assert pairs.of_edge[e] == pairs.of_edge[m]
    # every pair is used by exactly its two edges
    assert torch.equal(torch.bincount(pairs.of_edge), torch.full_like(pairs.first, 2))
    assert torch.equal(pairs.first[pairs.of_edge[pairs.first]], pairs.first)


def test_mirror_pairs_refuse_a_graph_with_a_one_way_edge():
    edge_index = radius_graph(*random_batch(seed=5), 3.0).edge_index
    assert mirror_pairs(edge_index[:, 1:], 44) is None
    empty = mirror_pairs(torch.zeros(2, 0, dtype=torch.long), 0)
    assert empty.first.numel() == 0 and empty.of_edge.numel() == 0


def test_a_one_way_edge_is_refused_in_edges_of_any_order():
    edge_index = radius_graph(*random_batch(seed=5), 3.0).edge_index[:, 1:]
    shuffled = edge_index[:, torch.randperm(edge_index.size(1), generator=torch.Generator())]
    assert mirror_pairs(shuffled, 44) is None


def test_a_subgraph_of_positions_is_the_subgraph_of_their_mask():
    graph = radius_graph(*random_batch(seed=6), 3.0)
    mask = graph.edge_weight <= 2.0
    for by_mask, by_positions in zip(
        subgraph(graph, mask), subgraph(graph, mask.nonzero().flatten()), strict=True
    ):
        assert torch.equal(by_mask, by_positions)


def host_reads(work) -> int:
    """How many times ``work()`` reads a tensor's value or count on the host (on a GPU, each
    waits for the device): its ``.item()``-like reads and ``nonzero`` calls (boolean-mask
    indexing included), counted by the profiler."""
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        work()
    names = ("aten::_local_scalar_dense", "aten::nonzero")
    return sum(event.name in names for event in prof.events())


def test_the_graph_functions_read_the_host_once_per_unknown_size():
    """A regression guard for GPU steps: each host read empties the device's queue."""
    pos, batch = random_batch(seed=7)
    graph = radius_graph(pos, batch, 3.0)
    mask = graph.edge_weight <= 2.0
    assert host_reads(lambda: subgraph(graph, mask)) == 1  # not one per tensor indexed
    positions = mask.nonzero().flatten()
    assert host_reads(lambda: subgraph(graph, positions)) == 0
    # sorted edges: one read for both checks, one for the pairs' count
    assert host_reads(lambda: mirror_pairs(graph.edge_index, pos.size(0))) == 2
    # the batch check, the pair count, the edge count
    assert host_reads(lambda: radius_graph(pos, batch, 3.0)) == 3


def test_atoms_per_molecule_is_the_bincount_of_a_sorted_batch():
    gen = torch.Generator().manual_seed(8)
    for _ in range(30):  # empty batches and molecules without atoms among them
        num = int(torch.randint(1, 9, (1,), generator=gen))
        atoms = int(torch.randint(0, 30, (1,), generator=gen))
        batch = torch.sort(torch.randint(0, num, (atoms,), generator=gen)).values
        expected = torch.bincount(batch, minlength=num)
        assert torch.equal(atoms_per_molecule(batch, num), expected)
    assert atoms_per_molecule(torch.tensor([0, 0, 2, 2, 2]), 4).tolist() == [2, 0, 3, 0]


def test_no_atoms_give_no_edges():
    graph = radius_graph(torch.zeros(0, 3), torch.zeros(0, dtype=torch.long), 3.0)
    assert graph.edge_index.shape == (2, 0) and graph.edge_weight.numel() == 0
