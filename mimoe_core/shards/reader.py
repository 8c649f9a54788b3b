"""Reading a shard folder lazily: :class:`ShardedDataset` and its views, :class:`ShardSequence`.

At most a few decoded shards are held in memory; the folder is made by
:func:`~mimoe_core.shards.write_shards`.
"""

from __future__ import annotations

from collections import Counter, OrderedDict
from collections.abc import Iterator, Sequence
from functools import cached_property
from pathlib import Path
from typing import Any, overload

import numpy as np
import torch
from torch_geometric.data import Batch, Data

from mimoe_core import keys
from mimoe_core.conformers import ConformerSettings
from mimoe_core.data.table import SkipRecord
from mimoe_core.featurization import _reason_kind
from mimoe_core.packed_molecules import PackedMolecules, gather_batch, integer_index
from mimoe_core.shards._format import (
    MANIFEST_FILE,
    SKIPPED_FILE,
    ShardTableInfo,
    _check_shard,
    _load_shard,
    _read_manifest,
    _read_skipped,
    _write_json,
    _write_skipped,
)
from mimoe_core.topology import DESCRIPTOR_NAMES

#: A shard molecule's fields, in the order of the ``Data`` that :meth:`ShardedDataset.__getitem__`
#: makes (and ``featurize`` before it).
SHARD_MOLECULE_FIELDS = (
    keys.Z, keys.POS, keys.Y, keys.Y_MASK, keys.TOPO, keys.SMILES, keys.ROW, keys.MOL_ID,
)  # fmt: skip


class ShardSequence(Sequence):
    """A lazy, read-only view of (some of) a :class:`ShardedDataset`'s molecules, as ``Data``.

    Indexing loads the shard that holds the molecule (through the dataset's shard cache). With
    ``indices`` in increasing order (as :meth:`ShardedDataset.subset` keeps them), iteration
    and slices go shard by shard, so a pass reads each shard once.

    Args:
        dataset: The dataset viewed.
        indices: Its molecules in the view, in order; default all of them.
    """

    def __init__(self, dataset: ShardedDataset, indices: np.ndarray | None = None) -> None:
        self._dataset = dataset
        self.indices = (
            np.arange(len(dataset), dtype=np.int64)
            if indices is None
            else np.asarray(indices, dtype=np.int64).reshape(-1)
        )

    def __len__(self) -> int:
        return len(self.indices)

    @overload
    def __getitem__(self, index: int) -> Data: ...

    @overload
    def __getitem__(self, index: slice) -> list[Data]: ...

    def __getitem__(self, index: int | slice) -> Data | list[Data]:
        if isinstance(index, slice):
            return [self._dataset[int(i)] for i in self.indices[index]]
        return self._dataset[int(self.indices[index])]

    def __iter__(self) -> Iterator[Data]:
        for i in self.indices:
            yield self._dataset[int(i)]

    def __repr__(self) -> str:
        return f"ShardSequence(molecules={len(self)}, shards={self._dataset.n_shards})"

    def batch(
        self,
        positions: Sequence[int] | np.ndarray | torch.Tensor,
        conformers: Sequence[int] | torch.Tensor | None = None,
        dtype: torch.dtype | None = None,
    ) -> Batch:
        """The view's molecules at ``positions`` as one PyG ``Batch``, gathered shard by shard.

        Equal to ``Batch.from_data_list([self[i] for i in positions])`` (tested), but made
        with a few vectorized gathers per shard the positions touch, one run of consecutive
        positions in one shard at a time, from the decoded shards themselves
        (:meth:`ShardedDataset.packed_shard`).

        Args:
            positions: [n] integers, positions in the view, in batch order.
            conformers: [n] zeros (shards hold one conformer per molecule), or None.
            dtype: the coordinates' dtype; unchanged by default.

        Raises:
            IndexError: a position or conformer out of range.
            ValueError: no positions, non-integer ones, or conformers not one per position.
        """
        at = integer_index(positions, "positions").numpy()
        if at.size and (at.min() < -len(self) or at.max() >= len(self)):
            raise IndexError(f"a position out of range for {len(self)} molecules")
        index = self.indices[at]
        dataset = self._dataset
        shards = dataset.shard_of[index]
        local = torch.from_numpy(index - dataset._offsets[shards])
        chosen = None if conformers is None else torch.as_tensor(conformers).reshape(-1)
        if chosen is not None and chosen.numel() != at.size:
            raise ValueError(f"{chosen.numel()} conformers for {at.size} molecules")
        # Each shard the batch touches is decoded (or taken from the cache) once, even when
        # the positions come back to it after another.
        packed = {int(k): dataset.packed_shard(int(k)) for k in dict.fromkeys(shards.tolist())}
        runs = np.flatnonzero(np.diff(shards, prepend=-1, append=-1))
        parts = [
            (packed[int(shards[a])], local[a:b], None if chosen is None else chosen[a:b])
            for a, b in zip(runs[:-1], runs[1:], strict=True)
        ]
        return gather_batch(parts, dtype)

    def labels(self) -> np.ndarray:
        """``[len(self), num_targets]`` float64 labels of the view (reads only labels)."""
        return self._dataset._labels[self.indices]

    def sizes(self) -> tuple[np.ndarray, np.ndarray]:
        """``([len(self)], [len(self)])`` int64 atoms and present labels of each molecule.

        Read from the shards' offsets and label masks, without decoding any molecule.
        """
        sizes = self._dataset._sizes[self.indices]
        return sizes[:, 0], sizes[:, 1]

    def shuffled_positions(self, generator: torch.Generator | None = None) -> list[int]:
        """A random order of the view's positions ``0..len-1`` that reads each shard once."""
        order = np.asarray(self._dataset.grouped_order(self.indices, generator), dtype=np.int64)
        sorter = np.argsort(self.indices, kind="stable")  # vectorized: no dict of millions
        return sorter[np.searchsorted(self.indices, order, sorter=sorter)].tolist()


class ShardedDataset:
    """The molecules of a shard folder (made by :func:`write_shards`), read lazily.

    It offers what training reads from
    :class:`~mimoe_core.featurization.FeaturizedDataset`: ``len``, indexing to a ``Data``
    equal field by field to the one ``featurize`` makes, ``data_list`` (a lazy view),
    ``table``, ``radii``, ``settings``, ``feature_settings()``, ``skipped``, ``smiles``,
    ``summary()``. At most ``max_cached_shards`` decoded shards are held in memory.

    Args:
        path: The shard folder.
        max_cached_shards: Decoded shards kept (least recently used dropped first); default 2.

    Raises:
        ValueError: The manifest is missing, unreadable, of another shard format version or
            incomplete, or a shard file or the skip report is missing (the message names the
            file and what to do).
    """

    def __init__(self, path: str | Path, max_cached_shards: int = 2) -> None:
        if max_cached_shards < 1:
            raise ValueError(f"max_cached_shards must be at least 1, got {max_cached_shards}")
        self.path = Path(path)
        self.max_cached_shards = int(max_cached_shards)
        self.manifest = manifest = _read_manifest(self.path / MANIFEST_FILE)
        try:
            self._setup(manifest)
        except (KeyError, TypeError) as err:
            raise ValueError(
                f"the manifest {self.path / MANIFEST_FILE} lacks or mangles the field {err}; "
                "delete the folder and rerun write_shards"
            ) from None
        self._cache: OrderedDict[int, dict[str, Any]] = OrderedDict()

    def _setup(self, manifest: dict) -> None:
        shards = manifest["shards"]
        if not manifest.get("complete") or len(shards) != manifest["n_shards"]:
            raise ValueError(
                f"{self.path} is incomplete ({len(shards)} of {manifest['n_shards']} shards "
                "written); rerun write_shards with the same input and settings to finish it"
            )
        for entry in shards:
            for name in (entry["file"], entry["skipped_file"]):
                if not (self.path / name).exists():
                    raise ValueError(
                        f"the shard file {self.path / name} is missing; rerun write_shards "
                        "with the same input to rewrite it"
                    )
        if not (self.path / SKIPPED_FILE).exists():
            raise ValueError(
                f"the skip report {self.path / SKIPPED_FILE} is missing; rerun write_shards "
                "with the same input to rebuild it"
            )
        self.shard_files = [self.path / s["file"] for s in shards]
        self.shard_counts = [int(s["molecules"]) for s in shards]
        self._offsets = np.concatenate([[0], np.cumsum(self.shard_counts, dtype=np.int64)])
        self.radii = np.asarray(manifest["radii"], dtype=np.float64)
        self.settings = ConformerSettings(**manifest["conformer_settings"])
        self.normalize_descriptors = bool(manifest["normalize_descriptors"])
        self.table = ShardTableInfo(**manifest["dataset"])

    @classmethod
    def open(cls, path: str | Path, max_cached_shards: int = 2) -> ShardedDataset:
        """Open the shard folder ``path`` (same as the constructor)."""
        return cls(path, max_cached_shards=max_cached_shards)

    # --- the FeaturizedDataset interface ----------------------------------------------------

    def __len__(self) -> int:
        return int(self._offsets[-1])

    def __getitem__(self, index: int) -> Data:
        n = len(self)
        index = int(index)
        if index < 0:
            index += n
        if not 0 <= index < n:
            raise IndexError(f"molecule {index} out of range for {n} molecules")
        k = int(np.searchsorted(self._offsets, index, side="right")) - 1
        return self._molecule(k, index - int(self._offsets[k]))

    def __iter__(self) -> Iterator[Data]:
        return iter(self.data_list)

    def __repr__(self) -> str:
        return (
            f"ShardedDataset(name={self.table.name!r}, molecules={len(self)}, "
            f"shards={self.n_shards}, skipped={len(self.skipped)}, "
            f"targets={self.table.target_names})"
        )

    @property
    def data_list(self) -> ShardSequence:
        """A lazy read-only sequence of the molecules (nothing is loaded up front)."""
        return ShardSequence(self)

    @property
    def table_info(self) -> ShardTableInfo:
        """Name, task, target names, unit, source and row count of the source table."""
        return self.table

    @property
    def n_shards(self) -> int:
        """Number of shard files."""
        return len(self.shard_files)

    def feature_settings(self) -> dict:
        """The settings the model's inputs depend on, besides conformer settings and grid.

        The same dict as :meth:`FeaturizedDataset.feature_settings`.
        """
        return {
            "normalize_descriptors": self.normalize_descriptors,
            "descriptor_version": int(self.manifest["descriptor_version"]),
            "atom_attributes": False,  # shards hold no atom attributes (train refuses them)
        }

    @cached_property
    def skipped(self) -> list[SkipRecord]:
        """Every row of the table that was not kept, with its reason, sorted by row."""
        return _read_skipped(self.path / SKIPPED_FILE)

    @cached_property
    def smiles(self) -> list[str]:
        """SMILES of the kept molecules (as embedded), read from the shards once."""
        return [s for k in range(self.n_shards) for s in self._fields(k)["smiles"]]

    @cached_property
    def mol_ids(self) -> list[str]:
        """Source identifiers of the kept molecules."""
        return [s for k in range(self.n_shards) for s in self._fields(k)["mol_id"]]

    @cached_property
    def rows(self) -> np.ndarray:
        """``[num_molecules]`` int64 source rows of the kept molecules."""
        return self._cat(lambda s: s["row"].numpy(), np.zeros(0, dtype=np.int64))

    @cached_property
    def shard_of(self) -> np.ndarray:
        """``[num_molecules]`` int64: the shard that holds each molecule."""
        return np.repeat(np.arange(self.n_shards, dtype=np.int64), self.shard_counts)

    def labels(self) -> np.ndarray:
        """``[num_molecules, num_targets]`` float64 labels, NaN where missing (a copy).

        Read once: shards are memory-mapped, so only their ``y`` tensors are read.
        """
        return self._labels.copy()

    @cached_property
    def _labels(self) -> np.ndarray:
        empty = np.zeros((0, len(self.table.target_names)))
        return self._cat(lambda s: s["y"].numpy().astype(np.float64), empty)

    @cached_property
    def _sizes(self) -> np.ndarray:
        """``[n, 2]`` int64 atoms and present labels of every molecule, in one pass."""
        return self._cat(
            lambda s: np.stack(
                [np.diff(s["atom_ptr"].numpy()), s["y_mask"].numpy().sum(axis=1)], axis=1
            ).astype(np.int64),
            np.zeros((0, 2), dtype=np.int64),
        )

    def write_report(self, out_dir: str | Path) -> None:
        """Write ``summary.json`` and ``skipped.csv`` into ``out_dir`` (as featurize does)."""
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        _write_json(out / "summary.json", self.summary())
        _write_skipped(out / "skipped.csv", self.skipped)

    def subset(self, indices: Sequence[int] | np.ndarray) -> ShardSequence:
        """A lazy view of the molecules at ``indices``, in increasing order (shard by shard)."""
        idx = np.sort(np.asarray(indices, dtype=np.int64).reshape(-1))
        if len(idx) and (idx[0] < 0 or idx[-1] >= len(self)):
            raise IndexError(f"indices out of range for {len(self)} molecules")
        return ShardSequence(self, idx)

    @property
    def descriptors(self) -> np.ndarray:
        """Descriptor trajectories of the kept molecules, ``[num_molecules, T, D]`` float32.

        Note: this one holds every molecule's trajectory in memory.
        """
        empty = np.zeros((0, len(self.radii), len(DESCRIPTOR_NAMES)), dtype=np.float32)
        return self._cat(lambda s: s["topo"].numpy().copy(), empty)

    def summary(self) -> dict:
        """Counts, shards, bytes on disk and conformer statistics, as a JSON-ready dict.

        Built from the manifest and the skip report, without reading any shard.
        """
        shards = self.manifest["shards"]
        reasons = Counter(_reason_kind(s.reason) for s in self.skipped)
        mins = [s["atoms"]["min"] for s in shards if s["molecules"]]
        maxs = [s["atoms"]["max"] for s in shards if s["molecules"]]
        total_atoms = sum(s["atoms"]["sum"] for s in shards)
        embedding: Counter = Counter()
        force_field: Counter = Counter()
        labels = np.zeros(len(self.table.target_names), dtype=np.int64)
        for s in shards:
            embedding.update(s["embedding"])
            force_field.update(s["force_field"])
            labels += np.asarray(s["labels_present"], dtype=np.int64)
        return {
            "dataset": self.table.name,
            "source": self.table.source,
            "task": self.table.task,
            "targets": list(self.table.target_names),
            "rows": self.table.n_rows,
            "kept": len(self),
            "skipped": len(self.skipped),
            "skip_reasons": dict(reasons.most_common()),
            "atoms": {
                "mean": total_atoms / len(self) if len(self) else 0.0,
                "min": min(mins) if mins else 0,
                "max": max(maxs) if maxs else 0,
            },
            "embedding": dict(embedding),
            "force_field": dict(force_field),
            "multi_fragment_inputs": sum(s["multi_fragment_inputs"] for s in shards),
            "labels_present": labels.tolist() if len(self) else [],
            "conformer_settings": self.settings.to_dict(),
            "radii": [float(r) for r in self.radii],
            "descriptors": list(self.manifest["descriptors"]),
            "shards": self.n_shards,
            "shard_size": int(self.manifest["shard_size"]),
            "bytes_on_disk": self.nbytes,
            "shard_format_version": int(self.manifest["format_version"]),
            "mimoe_version": self.manifest["mimoe_version"],
        }

    def summary_line(self) -> str:
        """One line: rows in, kept, skipped, shards and size on disk."""
        return (
            f"{self.table.name}: {self.table.n_rows} rows -> {len(self)} molecules kept, "
            f"{len(self.skipped)} skipped, in {self.n_shards} shards "
            f"({self.nbytes / 2**20:.1f} MiB)"
        )

    @property
    def nbytes(self) -> int:
        """Bytes on disk of the shard files, the skip reports and the manifest."""
        return sum(p.stat().st_size for p in self.path.iterdir() if not p.name.startswith("."))

    # --- order and shard access -------------------------------------------------------------

    def grouped_order(
        self, indices: Sequence[int] | np.ndarray, generator: torch.Generator | None = None
    ) -> list[int]:
        """A random order of ``indices`` that reads each shard once.

        Shards are visited in a random order and the molecules of each shard in a random
        order, so an epoch over this order loads every shard one time (with any cache size).

        Args:
            indices: Dataset positions (a split's training indices, say), any order.
            generator: Source of randomness; a seeded generator gives the same order each time.

        Returns:
            The same positions (a permutation of ``indices``), grouped by shard.
        """
        idx = np.asarray(indices, dtype=np.int64).reshape(-1)
        if not len(idx):
            return []
        if idx.min() < -len(self) or idx.max() >= len(self):
            raise IndexError(f"indices out of range for {len(self)} molecules")
        idx = np.where(idx < 0, idx + len(self), idx)
        order = np.argsort(self.shard_of[idx], kind="stable")
        grouped, shards = idx[order], self.shard_of[idx[order]]
        starts = np.flatnonzero(np.diff(shards, prepend=-1))
        groups = np.split(grouped, starts[1:])
        out: list[int] = []
        for g in torch.randperm(len(groups), generator=generator).tolist():
            group = groups[g]
            out.extend(group[torch.randperm(len(group), generator=generator).numpy()].tolist())
        return out

    def shard(self, k: int) -> dict[str, Any]:
        """The decoded shard ``k`` (fields in the package doc), through the cache."""
        if k in self._cache:
            self._cache.move_to_end(k)
            return self._cache[k]
        path = self.shard_files[k]
        shard = _check_shard(_load_shard(path), path, self.shard_counts[k])
        self._cache[k] = shard
        while len(self._cache) > self.max_cached_shards:
            self._cache.popitem(last=False)
        return shard

    def packed_shard(self, k: int) -> PackedMolecules:
        """The decoded shard ``k`` as :class:`PackedMolecules` (its tensors, not copies).

        Cached with the decoded shard, and dropped with it.
        """
        s = self.shard(k)
        if "packed" not in s:
            s["packed"] = self._packed(s)
        return s["packed"]

    @staticmethod
    def _packed(s: dict[str, Any]) -> PackedMolecules:
        per_molecule = torch.arange(len(s["row"]) + 1)
        return PackedMolecules.from_columns(
            SHARD_MOLECULE_FIELDS,
            tensors={
                keys.Z: (s["z"], s["atom_ptr"]),
                keys.POS: (s["pos"], s["atom_ptr"]),
                keys.Y: (s["y"], per_molecule),
                keys.Y_MASK: (s["y_mask"], per_molecule),
                keys.TOPO: (s["topo"], per_molecule),
            },
            integers={keys.ROW: s["row"]},
            strings={keys.SMILES: s["smiles"], keys.MOL_ID: s["mol_id"]},
        )

    @property
    def cached_shards(self) -> list[int]:
        """Indices of the shards now decoded in memory, least recently used first."""
        return list(self._cache)

    def clear_cache(self) -> None:
        """Drop every decoded shard."""
        self._cache.clear()

    def _molecule(self, k: int, i: int) -> Data:
        s = self.shard(k)
        a, b = int(s["atom_ptr"][i]), int(s["atom_ptr"][i + 1])
        # Copies, so a molecule kept by the caller does not pin its whole shard in memory.
        return Data(
            **{
                keys.Z: s["z"][a:b].clone(),
                keys.POS: s["pos"][a:b].clone(),
                keys.Y: s["y"][i : i + 1].clone(),
                keys.Y_MASK: s["y_mask"][i : i + 1].clone(),
                keys.TOPO: s["topo"][i : i + 1].clone(),
                keys.SMILES: s["smiles"][i],
                keys.ROW: int(s["row"][i]),
                keys.MOL_ID: s["mol_id"][i],
            }
        )

    def _fields(self, k: int) -> dict[str, Any]:
        """Shard ``k`` for reading a few fields: the cached copy, else memory-mapped."""
        if k in self._cache:
            return self._cache[k]
        path = self.shard_files[k]
        return _check_shard(_load_shard(path, mmap=True), path, self.shard_counts[k])

    def _cat(self, field: Any, empty: np.ndarray) -> np.ndarray:
        parts = [field(self._fields(k)) for k in range(self.n_shards)]
        return np.concatenate(parts) if parts else empty
