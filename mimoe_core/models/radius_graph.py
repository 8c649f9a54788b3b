"""Radius graphs of batched molecules in pure torch, for the experts.

No torch-cluster: all intra-molecule atom pairs are enumerated block by block (sum of n_b^2
pairs for molecules of n_b atoms, never the dense [N, N] matrix of the batch) and masked
by distance.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
from torch import Tensor


class ExpertGraph(NamedTuple):
    """A radius graph in PyG's ``source_to_target`` convention.

    Attributes:
        edge_index: [2, E] long; row 0 is the source (neighbour) j, row 1 the target
            (centre) i. Edges are sorted by target, then source.
        edge_weight: [E] distances |pos[j] - pos[i]| in Å, differentiable in ``pos``.
        edge_vec: [E, 3] vectors pos[source] - pos[target] = pos[j] - pos[i].
    """

    edge_index: Tensor
    edge_weight: Tensor
    edge_vec: Tensor


def _check(pos: Tensor, batch: Tensor | None) -> Tensor:
    if pos.dim() != 2 or pos.size(1) != 3:
        raise ValueError(f"pos must have shape [num_atoms, 3], got {tuple(pos.shape)}")
    if batch is None:
        return torch.zeros(pos.size(0), dtype=torch.long, device=pos.device)
    if batch.dim() != 1 or batch.numel() != pos.size(0):
        raise ValueError(
            f"batch must have shape [num_atoms] = [{pos.size(0)}], got {tuple(batch.shape)}"
        )
    # Sorted, the smallest is the first: one host read (on a GPU, a wait) for both checks.
    if batch.numel() and bool((batch[1:] < batch[:-1]).any() | (batch[0] < 0)):
        raise ValueError("batch must be non-negative and sorted (atoms grouped by molecule)")
    return batch.long()


def _check_cutoff(cutoff: float) -> float:
    cutoff = float(cutoff)
    if not (math.isfinite(cutoff) and cutoff > 0):
        raise ValueError(f"cutoff must be finite and > 0 Å, got {cutoff}")
    return cutoff


def _intra_pairs(batch: Tensor) -> tuple[Tensor, Tensor]:
    """All ordered pairs (source, target) of atoms in the same molecule, self pairs included.

    Sorted by target then source; sum_b n_b^2 pairs. The pair count is the one value read
    on the host (on a GPU, one wait): molecules are found by searching the sorted ``batch``,
    not counted by ``bincount``, whose output size is another read.
    """
    device = batch.device
    start = torch.searchsorted(batch, batch)  # each atom's molecule's first atom
    per_atom = torch.searchsorted(batch, batch, right=True) - start  # n_b for each atom
    ends = torch.cumsum(per_atom, 0)
    total = int(ends[-1]) if batch.numel() else 0
    target = torch.repeat_interleave(
        torch.arange(batch.numel(), device=device), per_atom, output_size=total
    )
    slot = torch.arange(total, device=device) - (ends - per_atom)[target]
    source = start[target] + slot
    return source, target


def radius_graph(
    pos: Tensor,
    batch: Tensor | None = None,
    cutoff: float = 5.0,
) -> ExpertGraph:
    """Edges between atoms of the same molecule closer than a cutoff.

    An edge j -> i exists for i != j in the same molecule with |pos[j] - pos[i]| <= cutoff
    (closed, as in the topology module). Coincident atoms (distance 0) are connected, but
    the gradient of their ``edge_weight`` is NaN (the norm is not differentiable at 0).

    Args:
        pos: atom coordinates in Å, [num_atoms, 3].
        batch: molecule index of each atom, [num_atoms] long, sorted; ``None`` (default)
            means one molecule.
        cutoff: radius in Å, default 5.0. Every neighbour within it is kept: there is no
            neighbour cap to truncate a dense graph silently.

    Returns:
        :class:`ExpertGraph` (edge_index [2, E], edge_weight [E], edge_vec [E, 3]).

    Raises:
        ValueError: for a wrong ``pos``/``batch`` shape, an unsorted batch, or a cutoff that
            is not finite and positive.

    Example:
        >>> pos = torch.tensor([[0.0, 0, 0], [1.0, 0, 0], [0.0, 0, 0], [3.0, 0, 0]])
        >>> g = radius_graph(pos, torch.tensor([0, 0, 1, 1]), cutoff=2.0)
        >>> g.edge_index, g.edge_weight
        (tensor([[1, 0],
                [0, 1]]), tensor([1., 1.]))
    """
    batch = _check(pos, batch)
    cutoff = _check_cutoff(cutoff)
    source, target = _intra_pairs(batch)
    with torch.no_grad():
        dist = (pos[source] - pos[target]).norm(dim=-1)
        keep = (source != target) & (dist <= cutoff)
    edges = keep.nonzero().flatten()  # positions: one host read, not one per tensor indexed
    source, target = source[edges], target[edges]
    edge_vec = pos[source] - pos[target]
    return ExpertGraph(torch.stack([source, target]), edge_vec.norm(dim=-1), edge_vec)


def within_cutoff(graph: ExpertGraph, cutoff: float) -> ExpertGraph:
    """The edges of ``graph`` no longer than ``cutoff`` Å (a subgraph; gradients kept).

    Example:
        >>> g = radius_graph(torch.tensor([[0.0, 0, 0], [1.0, 0, 0], [2.5, 0, 0]]), cutoff=3.0)
        >>> within_cutoff(g, 1.2).edge_index
        tensor([[1, 0],
                [0, 1]])
    """
    return subgraph(graph, graph.edge_weight.detach() <= cutoff)


def subgraph(graph: ExpertGraph, keep: Tensor) -> ExpertGraph:
    """The edges of ``graph`` that ``keep`` selects (gradients kept).

    ``keep`` is an [E] bool mask, or the kept edges' positions (long, in order). A mask is
    turned into positions once: indexing each of the three tensors with the mask would read
    its count on the host three times (on a GPU, three waits for the device).
    """
    if keep.dtype == torch.bool:
        keep = keep.nonzero().flatten()
    return ExpertGraph(graph.edge_index[:, keep], graph.edge_weight[keep], graph.edge_vec[keep])


class MirrorPairs(NamedTuple):
    """The directed edges of a symmetric graph grouped into atom pairs {i, j}.

    Attributes:
        first: [P] indices of one edge per pair, the one with source < target (P = E / 2).
        of_edge: [E] for every edge, its pair's position in ``first``: an edge j -> i and
            its mirror i -> j share it.
    """

    first: Tensor
    of_edge: Tensor


# Not traced by torch.compile (models/compiled.py): its checks read values on the host, a
# graph break either way; made explicit, it stays one quiet break instead of a warning.
@torch.compiler.disable
def mirror_pairs(edge_index: Tensor, num_nodes: int) -> MirrorPairs | None:
    """Pair every edge j -> i with its mirror i -> j, or ``None`` if one has no mirror.

    A radius graph holds both directions of every pair at the same distance, so anything
    that depends only on the distance (radial bases, filters) can be computed on the P =
    E / 2 edges of ``first`` and gathered back with ``of_edge``. Edges sorted by target then
    source (what :func:`radius_graph` and :func:`subgraph` give) take no sort; others are
    sorted here.

    Args:
        edge_index: [2, E] long, source row then target row, no self loops.
        num_nodes: atoms in the graph (every index is below it).

    Example:
        >>> g = radius_graph(torch.tensor([[0.0, 0, 0], [1.0, 0, 0], [2.0, 0, 0]]), cutoff=1.5)
        >>> g.edge_index
        tensor([[1, 0, 2, 1],
                [0, 1, 1, 2]])
        >>> pairs = mirror_pairs(g.edge_index, 3)
        >>> pairs.first, pairs.of_edge
        (tensor([1, 3]), tensor([0, 0, 1, 1]))
    """
    source, target = edge_index
    key = target * num_nodes + source
    mirror_key = source * num_nodes + target
    last = max(key.numel() - 1, 0)
    mirror = torch.searchsorted(key, mirror_key).clamp_max(last)
    # Sorted and every mirror found, read on the host together: one wait on a GPU for the
    # usual, sorted edges. Otherwise the search above meant nothing: sort, and look again.
    if key.numel() and not bool((key[1:] >= key[:-1]).all() & (key[mirror] == mirror_key).all()):
        key, order = torch.sort(key)
        slot = torch.searchsorted(key, mirror_key).clamp_max(last)
        if not bool((key[slot] == mirror_key).all()):
            return None
        mirror = order[slot]
    is_first = source < target
    rank = torch.cumsum(is_first, 0) - 1
    return MirrorPairs(torch.nonzero(is_first).flatten(), torch.where(is_first, rank, rank[mirror]))
