"""The molecules a training run reads: parts of a split, their labels, each epoch's order.

In memory the parts are lists of ``Data``; for a :class:`~mimoe_core.shards.ShardedDataset`
they are lazy views in shard order, and an epoch visits the shards in a random order so that
it reads each shard once.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch_geometric.data import Data

from mimoe_core import keys
from mimoe_core.data.splits import Split
from mimoe_core.featurization import FeaturizedDataset
from mimoe_core.shards import ShardedDataset, ShardSequence

__all__ = ["check_split", "labels_of", "molecule_sizes", "shuffled_order", "subset"]


def subset(dataset: FeaturizedDataset | ShardedDataset, idx) -> Sequence[Data]:
    """The molecules at ``idx``: a list, or for a sharded dataset a lazy view in shard order."""
    if isinstance(dataset, ShardedDataset):
        return dataset.subset(idx)
    return [dataset.data_list[i] for i in idx]


def shuffled_order(part: Sequence[Data], generator: torch.Generator) -> list[int]:
    """An epoch's order of positions in ``part``; a sharded part's reads each shard once."""
    if isinstance(part, ShardSequence):
        return part.shuffled_positions(generator)
    return torch.randperm(len(part), generator=generator).tolist()


def check_split(dataset: FeaturizedDataset | ShardedDataset, split: Split) -> None:
    """A split whose indices are molecules of ``dataset``, with training and validation parts."""
    n = len(dataset)
    for name in ("train", "val", "test"):
        idx = np.asarray(getattr(split, name))
        if idx.size and (idx.min() < 0 or idx.max() >= n):
            raise ValueError(f"split.{name} indexes molecules outside 0..{n - 1}")
    if len(split.train) == 0 or len(split.val) == 0:
        raise ValueError("the split needs at least one training and one validation molecule")


def molecule_sizes(part: Sequence[Data]) -> tuple[np.ndarray, np.ndarray]:
    """``(atoms, present labels)`` of each molecule of ``part``, int64 arrays.

    A sharded part's come from the shards' index, without decoding a molecule.
    """
    if isinstance(part, ShardSequence):
        return part.sizes()
    atoms = np.array([d.num_nodes for d in part], dtype=np.int64)
    labels = np.array([int(d[keys.Y_MASK].sum()) for d in part], dtype=np.int64)
    return atoms, labels


def labels_of(data_list: Sequence[Data]) -> np.ndarray:
    """``[len(data_list), num_targets]`` float64 labels (NaN where missing)."""
    if isinstance(data_list, ShardSequence):
        return data_list.labels()
    if not data_list:
        return np.zeros((0, 0))
    return np.stack([d[keys.Y][0].numpy() for d in data_list]).astype(np.float64)
