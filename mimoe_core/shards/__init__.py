"""Featurization that streams to disk in shards, and a dataset that reads them lazily.

:func:`write_shards` featurizes a :class:`MoleculeTable` of any size ``shard_size`` rows at a
time (with :func:`~mimoe_core.featurization.featurize`, so worker processes and the SQLite
cache are used as usual), writes each chunk to one shard file and lets it go, so peak memory
does not grow with the dataset. The folder is resumable: a rerun with the same input and
settings skips the shards already written. :class:`ShardedDataset` reads such a folder with
the read interface of :class:`~mimoe_core.featurization.FeaturizedDataset`, holding at most a
few decoded shards in memory.

Folder layout::

    manifest.json             format, versions, settings, input fingerprint, one entry per shard
    shard_00000.pt            the molecules of chunk 0 (see below)
    shard_00000.skipped.csv   the rows of chunk 0 that were not kept
    skipped.csv               every skipped row of the table (written when the last shard is)

A shard is a plain dict saved with :func:`torch.save` and readable with
``torch.load(path, weights_only=True)``, molecules concatenated in CSR layout (``M``
molecules, ``N`` atoms in all, ``T`` radii, ``D`` descriptors):
``z`` ``[N]`` int64, ``pos`` ``[N, 3]`` float32, ``atom_ptr`` ``[M + 1]`` int64 (molecule
``i`` owns atoms ``atom_ptr[i]:atom_ptr[i + 1]``), ``y`` ``[M, num_targets]`` float32,
``y_mask`` ``[M, num_targets]`` bool, ``topo`` ``[M, T, D]`` float32, ``row`` ``[M]`` int64,
``smiles`` and ``mol_id`` lists of ``M`` str.
"""

from __future__ import annotations

from mimoe_core.shards._format import (
    MANIFEST_FILE,
    SHARD_FORMAT,
    SHARD_FORMAT_VERSION,
    SHARD_KEYS,
    SKIPPED_FILE,
    ShardTableInfo,
    input_fingerprint,
    shard_name,
)
from mimoe_core.shards.reader import ShardedDataset, ShardSequence
from mimoe_core.shards.writer import write_shards

__all__ = [
    "MANIFEST_FILE",
    "SHARD_FORMAT",
    "SHARD_FORMAT_VERSION",
    "SHARD_KEYS",
    "SKIPPED_FILE",
    "ShardSequence",
    "ShardTableInfo",
    "ShardedDataset",
    "input_fingerprint",
    "shard_name",
    "write_shards",
]
