"""Two PyG batches equal field by field and bit by bit, with their slice bookkeeping."""

from __future__ import annotations

import torch
from torch_geometric.data import Batch


def same_bits(left, right, what: str) -> None:
    if isinstance(left, torch.Tensor):
        assert isinstance(right, torch.Tensor), what
        assert left.dtype == right.dtype and left.shape == right.shape, what
        # bit patterns: NaN labels compare equal, -0.0 and 0.0 do not
        as_int = {1: torch.uint8, 2: torch.int16, 4: torch.int32, 8: torch.int64}
        assert torch.equal(
            left.contiguous().view(as_int[left.element_size()]),
            right.contiguous().view(as_int[right.element_size()]),
        ), what
    elif left is None:
        assert right is None, what
    else:
        assert left == right, what


def same_batch(reference: Batch, packed: Batch) -> None:
    assert set(reference.keys()) == set(packed.keys())
    for key in reference.keys():
        same_bits(reference[key], packed[key], key)
    assert reference.num_graphs == packed.num_graphs
    for bookkeeping in ("_slice_dict", "_inc_dict"):
        ours, theirs = getattr(reference, bookkeeping), getattr(packed, bookkeeping)
        assert set(ours) == set(theirs), bookkeeping
        for key in ours:
            same_bits(ours[key], theirs[key], f"{bookkeeping}[{key}]")
