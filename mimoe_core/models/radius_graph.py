"""Radius graphs of batched molecules in pure torch, for the experts.

No torch-cluster: all intra-molecule atom pairs are enumerated block by block (sum of n_b^2
pairs for molecules of n_b atoms, never the dense [N, N] matrix of the batch) and masked
by distance.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from typing import NamedTuple

import torch
from torch import Tensor, nn


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
    if batch.numel() and (bool((batch[1:] < batch[:-1]).any()) or int(batch.min()) < 0):
        raise ValueError("batch must be non-negative and sorted (atoms grouped by molecule)")
    return batch.long()


def _check_cutoff(cutoff: float) -> float:
    cutoff = float(cutoff)
    if not (math.isfinite(cutoff) and cutoff > 0):
        raise ValueError(f"cutoff must be finite and > 0 Å, got {cutoff}")
    return cutoff


def _intra_pairs(batch: Tensor) -> tuple[Tensor, Tensor]:
    """All ordered pairs (source, target) of atoms in the same molecule, self pairs included.

    Sorted by target then source; sum_b n_b^2 pairs.
    """
    sizes = torch.bincount(batch)
    offsets = torch.cumsum(sizes, 0) - sizes
    per_atom = sizes[batch]  # n_b for each target atom
    target = torch.repeat_interleave(torch.arange(batch.numel(), device=batch.device), per_atom)
    first = torch.cumsum(per_atom, 0) - per_atom
    slot = torch.arange(target.numel(), device=batch.device) - first[target]
    source = offsets[batch[target]] + slot
    return source, target


def radius_graph(
    pos: Tensor,
    batch: Tensor | None = None,
    cutoff: float = 5.0,
    max_num_neighbors: int | None = None,
) -> ExpertGraph:
    """Edges between atoms of the same molecule closer than a cutoff.

    An edge j -> i exists for i != j in the same molecule with |pos[j] - pos[i]| <= cutoff
    (closed, as in the topology module). Coincident atoms (distance 0) are connected, but
    the gradient of their ``edge_weight`` is NaN (the norm is not differentiable at 0).

    Args:
        pos: atom coordinates in Å, [num_atoms, 3].
        batch: molecule index of each atom, [num_atoms] long, sorted; ``None`` (default)
            means one molecule.
        cutoff: radius in Å, default 5.0.
        max_num_neighbors: if given, each target keeps its ``max_num_neighbors`` nearest
            sources (ties broken by source index) and a warning reports how many atoms lost
            neighbours; default ``None``: no cap.

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
    source, target = source[keep], target[keep]
    if max_num_neighbors is not None:
        source, target = _cap(source, target, dist[keep], batch.numel(), max_num_neighbors)
    edge_vec = pos[source] - pos[target]
    return ExpertGraph(torch.stack([source, target]), edge_vec.norm(dim=-1), edge_vec)


def _cap(
    source: Tensor, target: Tensor, dist: Tensor, num_atoms: int, max_num_neighbors: int
) -> tuple[Tensor, Tensor]:
    if max_num_neighbors < 0:
        raise ValueError(f"max_num_neighbors must be >= 0, got {max_num_neighbors}")
    counts = torch.bincount(target, minlength=num_atoms)
    over = int((counts > max_num_neighbors).sum())
    if over == 0:
        return source, target
    warnings.warn(
        f"radius_graph: {over} atom(s) have more than max_num_neighbors={max_num_neighbors} "
        f"neighbours (up to {int(counts.max())}); keeping the nearest {max_num_neighbors}",
        stacklevel=3,
    )
    # Edges come sorted by (target, source): a stable sort by distance, then a stable sort
    # by target, orders each target's neighbours by (distance, source).
    order = torch.sort(dist, stable=True).indices
    order = order[torch.sort(target[order], stable=True).indices]
    first = torch.cumsum(counts, 0) - counts
    rank = torch.arange(order.numel(), device=order.device) - first[target[order]]
    kept = torch.sort(order[rank < max_num_neighbors]).values  # back to (target, source)
    return source[kept], target[kept]


def multi_cutoff_graphs(
    pos: Tensor, batch: Tensor | None, cutoffs: Sequence[float]
) -> list[ExpertGraph]:
    """Nested radius graphs from one neighbour search at the largest cutoff.

    The graph at cutoffs[k] is the graph at the largest cutoff masked by
    ``edge_weight <= cutoffs[k]``, so each graph is a subgraph of the next one. No
    neighbour cap is applied.

    Args:
        pos: atom coordinates in Å, [num_atoms, 3].
        batch: molecule index of each atom, [num_atoms] long, sorted, or ``None``.
        cutoffs: K radii in Å, positive and strictly increasing (e.g. 2.0, 2.5, ..., 4.0).

    Returns:
        K :class:`ExpertGraph` objects, one per cutoff, in the order of ``cutoffs``.

    Raises:
        ValueError: for empty, non-positive, non-finite or unsorted cutoffs.

    Example:
        >>> pos = torch.tensor([[0.0, 0, 0], [1.0, 0, 0], [2.5, 0, 0]])
        >>> [g.edge_index.size(1) for g in multi_cutoff_graphs(pos, None, [1.0, 2.0, 3.0])]
        [2, 4, 6]
    """
    cuts = [_check_cutoff(c) for c in cutoffs]
    if not cuts:
        raise ValueError("cutoffs is empty")
    if any(b <= a for a, b in zip(cuts, cuts[1:], strict=False)):
        raise ValueError(f"cutoffs must be strictly increasing, got {list(cutoffs)}")
    full = radius_graph(pos, batch, cuts[-1])
    return [within_cutoff(full, c) for c in cuts]


def within_cutoff(graph: ExpertGraph, cutoff: float) -> ExpertGraph:
    """The edges of ``graph`` no longer than ``cutoff`` Å (a subgraph; gradients kept).

    Example:
        >>> g = radius_graph(torch.tensor([[0.0, 0, 0], [1.0, 0, 0], [2.5, 0, 0]]), cutoff=3.0)
        >>> within_cutoff(g, 1.2).edge_index
        tensor([[1, 0],
                [0, 1]])
    """
    mask = graph.edge_weight.detach() <= cutoff
    return ExpertGraph(graph.edge_index[:, mask], graph.edge_weight[mask], graph.edge_vec[mask])


class RadiusGraph(nn.Module):
    """Module form of :func:`radius_graph`: ``(pos, batch) -> ExpertGraph``.

    Args:
        cutoff: radius in Å, default 5.0.
        max_num_neighbors: optional cap with a warning, default ``None`` (no cap).
    """

    def __init__(self, cutoff: float = 5.0, max_num_neighbors: int | None = None) -> None:
        super().__init__()
        self.cutoff = _check_cutoff(cutoff)
        self.max_num_neighbors = max_num_neighbors

    def forward(self, pos: Tensor, batch: Tensor | None = None) -> ExpertGraph:
        """Build the graph for ``pos`` [num_atoms, 3] and ``batch`` [num_atoms]."""
        return radius_graph(pos, batch, self.cutoff, self.max_num_neighbors)

    def __repr__(self) -> str:
        cap = (
            ""
            if self.max_num_neighbors is None
            else f", max_num_neighbors={self.max_num_neighbors}"
        )
        return f"{self.__class__.__name__}(cutoff={self.cutoff}{cap})"
