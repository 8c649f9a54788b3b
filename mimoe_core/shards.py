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

import json
import os
from collections import Counter, OrderedDict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, overload

import numpy as np
import pandas as pd
import torch
from torch_geometric.data import Data
from tqdm.auto import tqdm

import mimoe_core
from mimoe_core import keys
from mimoe_core.cache import cache_key
from mimoe_core.conformers import (
    CONFORMER_VERSION,
    ConformerSettings,
    MoleculeRejected,
    canonical_smiles,
)
from mimoe_core.data.table import MoleculeTable, SkipRecord, Task, skipped_frame
from mimoe_core.featurization import (
    DESCRIPTOR_VERSION,
    _duplicate_reason,
    _embedded_structure,
    _rdkit_version,
    _reason_kind,
    featurize,
)
from mimoe_core.topology import DEFAULT_RADII, DESCRIPTOR_NAMES

SHARD_FORMAT = "mimoe-shards"
# Bump when the shard or manifest layout changes: older folders are then refused on open.
SHARD_FORMAT_VERSION = 1
MANIFEST_FILE = "manifest.json"
SKIPPED_FILE = "skipped.csv"
SHARD_KEYS = ("z", "pos", "atom_ptr", "y", "y_mask", "topo", "row", "smiles", "mol_id")

# Manifest fields that must match for a rerun to continue a folder, in the order they are
# reported when they differ.
_IDENTITY_FIELDS = (
    "mimoe_version",
    "descriptor_version",
    "conformer_version",
    "rdkit_version",
    "conformer_settings",
    "radii",
    "normalize_descriptors",
    "drop_duplicates",
    "shard_size",
    "dataset",
    "input_fingerprint",
)


def shard_name(index: int) -> str:
    """File name of shard ``index``: ``shard_00000.pt``."""
    return f"shard_{index:05d}.pt"


def _skipped_name(index: int) -> str:
    return f"shard_{index:05d}.skipped.csv"


@dataclass(frozen=True)
class ShardTableInfo:
    """What a :class:`ShardedDataset` knows of the table it was made from.

    It stands in for :class:`MoleculeTable` where only the description is read.

    Attributes:
        name: Dataset name.
        task: ``"regression"`` or ``"classification"``.
        target_names: One name per target column.
        unit: Unit of the regression targets, ``""`` when unknown.
        source: Where the table came from.
        n_rows: Data rows in the source (kept + skipped).
        polymer: Whether ``*`` atoms were polymer connection points.
    """

    name: str
    task: Task
    target_names: list[str]
    unit: str
    source: str
    n_rows: int
    polymer: bool = False

    @classmethod
    def of_table(cls, table: MoleculeTable) -> ShardTableInfo:
        """The description of ``table``."""
        return cls(
            name=table.name,
            task=table.task,
            target_names=list(table.target_names),
            unit=table.unit,
            source=table.source,
            n_rows=int(table.n_rows),
            polymer=bool(table.polymer),
        )

    def to_dict(self) -> dict:
        """Plain form for the manifest."""
        return {
            "name": self.name,
            "task": self.task,
            "target_names": list(self.target_names),
            "unit": self.unit,
            "source": self.source,
            "n_rows": self.n_rows,
            "polymer": self.polymer,
        }


# --------------------------------------------------------------------------------------------
# Writing


def input_fingerprint(table: MoleculeTable) -> str:
    """SHA-256 of everything in ``table`` that changes the shards: inputs, ids, rows, labels.

    3D structures hash by their coordinates; read-time skip records are included.
    """
    inputs = [
        x if isinstance(x, str) else cache_key("structure", x.z, x.pos, x.smiles)
        for x in table.inputs
    ]
    return cache_key(
        "mimoe-shards-input",
        table.task,
        list(table.target_names),
        bool(table.polymer),
        int(table.n_rows),
        inputs,
        list(table.ids),
        np.asarray(table.rows, dtype=np.int64),
        np.asarray(table.targets, dtype=np.float64),
        [(s.row, s.mol_id, s.input, s.reason) for s in table.skipped],
    )


def _subtable(table: MoleculeTable, positions: Sequence[int]) -> MoleculeTable:
    """The entries ``positions`` of ``table``, keeping their source rows and ``n_rows``.

    Read-time skips are left out: they are accounted once for the whole table.
    """
    positions = np.asarray(positions, dtype=np.int64)
    return MoleculeTable(
        name=table.name,
        task=table.task,
        target_names=list(table.target_names),
        inputs=[table.inputs[i] for i in positions],
        targets=np.asarray(table.targets)[positions],
        rows=np.asarray(table.rows, dtype=np.int64)[positions],
        ids=[table.ids[i] for i in positions],
        n_rows=table.n_rows,
        skipped=[],
        polymer=table.polymer,
        source=table.source,
        unit=table.unit,
    )


def _cross_chunk_duplicates(
    table: MoleculeTable,
    settings: ConformerSettings,
    start: int,
    stop: int,
    first_of: dict[str, tuple[int, str, int]],
) -> tuple[list[int], list[SkipRecord]]:
    """Split entries ``start:stop`` into those to featurize and duplicates of earlier chunks.

    Uses the key that ``featurize(drop_duplicates=True)`` uses (the embedded structure) and
    its wording, so a sharded run keeps and skips exactly what one ``featurize`` call on the
    whole table would. Duplicates within the chunk are left to ``featurize``. ``first_of``
    (embedded SMILES -> first entry) is updated with the chunk's structures.
    """
    keep: list[int] = []
    skipped: list[SkipRecord] = []
    for i in range(start, stop):
        item = table.inputs[i]
        if not isinstance(item, str):
            keep.append(i)  # 3D structures are used as given, never deduplicated
            continue
        try:
            canonical = canonical_smiles(item)
        except MoleculeRejected:
            keep.append(i)  # featurize reports why
            continue
        embedded, n_fragments = _embedded_structure(item, canonical, settings, table.polymer)
        first = first_of.get(embedded)
        if first is not None and first[0] < start:
            reason = _duplicate_reason(table, settings, first, (i, canonical, n_fragments))
            skipped.append(SkipRecord(int(table.rows[i]), table.ids[i], item, reason))
            continue
        first_of.setdefault(embedded, (i, canonical, n_fragments))
        keep.append(i)
    return keep, skipped


def _encode_shard(data_list: Sequence[Data], n_targets: int, n_radii: int) -> dict[str, Any]:
    """Concatenate ``featurize`` molecules into the CSR shard dict (see the module doc)."""
    n_desc = len(DESCRIPTOR_NAMES)
    counts = [int(d[keys.Z].numel()) for d in data_list]
    ptr = torch.zeros(len(counts) + 1, dtype=torch.int64)
    if counts:
        ptr[1:] = torch.cumsum(torch.tensor(counts, dtype=torch.int64), 0)

    def cat(key: str, empty: torch.Tensor) -> torch.Tensor:
        return torch.cat([d[key] for d in data_list]) if data_list else empty

    return {
        "z": cat(keys.Z, torch.zeros(0, dtype=torch.int64)),
        "pos": cat(keys.POS, torch.zeros(0, 3, dtype=torch.float32)),
        "atom_ptr": ptr,
        "y": cat(keys.Y, torch.zeros(0, n_targets, dtype=torch.float32)),
        "y_mask": cat(keys.Y_MASK, torch.zeros(0, n_targets, dtype=torch.bool)),
        "topo": cat(keys.TOPO, torch.zeros(0, n_radii, n_desc, dtype=torch.float32)),
        "row": torch.tensor([int(d[keys.ROW]) for d in data_list], dtype=torch.int64),
        "smiles": [str(d[keys.SMILES]) for d in data_list],
        "mol_id": [str(d[keys.MOL_ID]) for d in data_list],
    }


def _replace_atomically(path: Path, write: Any) -> None:
    """``write(tmp_path)``, flush it to disk, then rename it over ``path``."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        write(tmp)
        with open(tmp, "rb+") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _save_shard(path: Path, shard: dict[str, Any]) -> None:
    _replace_atomically(path, lambda tmp: torch.save(shard, tmp))


def _write_json(path: Path, obj: dict) -> None:
    _replace_atomically(path, lambda tmp: tmp.write_text(json.dumps(obj, indent=1)))


def _write_skipped(path: Path, records: list[SkipRecord]) -> None:
    _replace_atomically(path, lambda tmp: skipped_frame(records).to_csv(tmp, index=False))


def _read_skipped(path: Path) -> list[SkipRecord]:
    try:
        frame = pd.read_csv(
            path,
            dtype={"mol_id": str, "input": str, "reason": str},
            keep_default_na=False,
        )
        return [
            SkipRecord(int(r.row), r.mol_id, r.input, r.reason)
            for r in frame.itertuples(index=False)
        ]
    except FileNotFoundError:
        raise ValueError(
            f"the skip report {path} is missing; rerun write_shards to rebuild it"
        ) from None
    except (ValueError, AttributeError, pd.errors.ParserError) as err:
        raise ValueError(
            f"the skip report {path} cannot be read ({err}); rerun write_shards into a new folder"
        ) from None


def _read_manifest(path: Path) -> dict:
    try:
        manifest = json.loads(path.read_text())
    except FileNotFoundError:
        raise ValueError(
            f"{path.parent} is not a shard folder: {path.name} is missing "
            "(make one with write_shards)"
        ) from None
    except (OSError, ValueError) as err:
        raise ValueError(
            f"the manifest {path} cannot be read ({err}); delete the folder and rerun write_shards"
        ) from None
    if not isinstance(manifest, dict) or manifest.get("format") != SHARD_FORMAT:
        raise ValueError(f"{path} is not a {SHARD_FORMAT} manifest")
    version = manifest.get("format_version")
    if version != SHARD_FORMAT_VERSION:
        raise ValueError(
            f"{path} has shard format version {version}, this mimoe reads version "
            f"{SHARD_FORMAT_VERSION}; rewrite the shards with write_shards into a new folder "
            "(or delete this one)"
        )
    return manifest


def _check_same_run(old: dict, new: dict, path: Path) -> None:
    differ = [name for name in _IDENTITY_FIELDS if old.get(name) != new[name]]
    if not differ:
        return
    lines = []
    for name in differ:
        was, now = old.get(name), new[name]
        if name == "dataset" and isinstance(was, dict):
            parts = [k for k in now if was.get(k) != now[k]]
            was = {k: was.get(k) for k in parts}
            now = {k: now[k] for k in parts}
        lines.append(f"{name}: folder has {was!r}, this call {now!r}")
    raise ValueError(
        f"{path} was written for other input or settings ({'; '.join(lines)}); "
        "write into another folder, or delete this one to start over"
    )


def _shard_entry(
    index: int,
    table: MoleculeTable,
    start: int,
    stop: int,
    data_list: Sequence[Data],
    conformers: Sequence[dict],
    n_skipped: int,
    nbytes: int,
) -> dict:
    atoms = [int(d[keys.Z].numel()) for d in data_list]
    rows = np.asarray(table.rows[start:stop])
    mask = torch.cat([d[keys.Y_MASK] for d in data_list]) if data_list else None
    return {
        "index": index,
        "file": shard_name(index),
        "skipped_file": _skipped_name(index),
        "entries": [start, stop],
        "rows": [int(rows.min()), int(rows.max())] if len(rows) else [],
        "molecules": len(data_list),
        "skipped": n_skipped,
        "bytes": nbytes,
        "atoms": {
            "sum": int(sum(atoms)),
            "min": int(min(atoms)) if atoms else None,
            "max": int(max(atoms)) if atoms else None,
        },
        "labels_present": mask.sum(dim=0).tolist()
        if mask is not None
        else [0] * len(table.target_names),
        "embedding": dict(Counter(c["embedding"] for c in conformers)),
        "force_field": dict(Counter(c["force_field"] for c in conformers)),
        "multi_fragment_inputs": sum(c["n_fragments"] > 1 for c in conformers),
    }


def _remove_stale_temporaries(out: Path) -> None:
    """Delete ``.NAME.tmp-PID`` files left by a killed writer (whose process is gone)."""
    for tmp in out.glob(".*.tmp-*"):
        try:
            pid = int(tmp.name.rsplit("-", 1)[1])
            os.kill(pid, 0)
        except ValueError:
            continue  # not one of ours
        except ProcessLookupError:
            tmp.unlink(missing_ok=True)
        except PermissionError:
            continue  # a live process of another user


def _intact(out: Path, entry: dict) -> bool:
    """Whether a shard the manifest lists is on disk as it was written (same size)."""
    shard, skipped = out / entry["file"], out / entry["skipped_file"]
    try:
        return shard.stat().st_size == entry["bytes"] and skipped.exists()
    except OSError:
        return False


def write_shards(
    table: MoleculeTable,
    out_dir: str | Path,
    shard_size: int = 4096,
    settings: ConformerSettings | None = None,
    radii: Sequence[float] | np.ndarray = DEFAULT_RADII,
    normalize_descriptors: bool = True,
    cache_dir: str | Path | None = None,
    use_cache: bool = True,
    n_jobs: int | None = None,
    progress: bool = True,
    drop_duplicates: bool = True,
) -> ShardedDataset:
    """Featurize ``table`` chunk by chunk into shard files; resume a folder written before.

    Each chunk of ``shard_size`` table entries is featurized with
    :func:`~mimoe_core.featurization.featurize` (same settings, conformer cache and worker
    processes), written to ``shard_NNNNN.pt`` and released before the next chunk, so memory
    holds one chunk at a time. Each shard and then ``manifest.json`` are replaced atomically:
    a run that is interrupted or killed loses at most the shard in progress, and calling this
    again with the same arguments continues where it stopped (shards listed in the manifest
    and present on disk are not recomputed).

    With ``drop_duplicates`` a molecule whose embedded structure appeared in an earlier chunk
    is skipped as ``featurize`` skips duplicates within one call, with the same reason, so
    the kept molecules and skip records equal those of one ``featurize(table)`` call.

    Args:
        table: Molecules and labels, of any size.
        out_dir: The shard folder (created; a folder with other files is refused).
        shard_size: Table entries per shard (default 4096).
        settings: Conformer settings (defaults when None).
        radii: Filtration grid in Å, shape ``[T]`` (default 1.0 to 5.0 by 0.1).
        normalize_descriptors: Store the size-normalized descriptor forms.
        cache_dir: Feature cache folder (default ``$MIMOE_CACHE_DIR`` or ``~/.cache/mimoe``).
        use_cache: Read and write the feature cache.
        n_jobs: Worker processes for conformers (default: all cores this process may use).
        progress: Show one progress bar over the shards. The per-chunk ``featurize`` runs
            without bars, which would otherwise print two fresh bars per shard.
        drop_duplicates: Skip later rows whose embedded structure appeared before (default
            True; see :func:`~mimoe_core.featurization.featurize`).

    Returns:
        The :class:`ShardedDataset` of the folder; ``table.n_rows == len(result) +
        len(result.skipped)``.

    Raises:
        ValueError: ``shard_size`` is below 1, or ``out_dir`` holds shards written for other
            input, settings, shard format or mimoe version (the message names the field), or
            files that are not shards.
    """
    if shard_size < 1:
        raise ValueError(f"shard_size must be at least 1, got {shard_size}")
    settings = settings or ConformerSettings()
    radii = np.asarray(radii, dtype=np.float64)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    n_entries = len(table)
    n_shards = -(-n_entries // shard_size)
    header = {
        "format": SHARD_FORMAT,
        "format_version": SHARD_FORMAT_VERSION,
        "mimoe_version": mimoe_core.__version__,
        "descriptor_version": DESCRIPTOR_VERSION,
        "conformer_version": CONFORMER_VERSION,
        "rdkit_version": _rdkit_version(),
        "conformer_settings": settings.to_dict(),
        "radii": [float(r) for r in radii],
        "normalize_descriptors": bool(normalize_descriptors),
        "drop_duplicates": bool(drop_duplicates),
        "shard_size": int(shard_size),
        "dataset": ShardTableInfo.of_table(table).to_dict(),
        "input_fingerprint": input_fingerprint(table),
        "descriptors": list(DESCRIPTOR_NAMES),
        "n_entries": n_entries,
        "n_shards": n_shards,
        "read_skipped": len(table.skipped),
    }
    header = json.loads(json.dumps(header))  # compare as it reads back (tuples -> lists)

    _remove_stale_temporaries(out)
    manifest_path = out / MANIFEST_FILE
    done: dict[int, dict] = {}
    if manifest_path.exists():
        old = _read_manifest(manifest_path)
        if old.get("mimoe_version") != header["mimoe_version"]:
            raise ValueError(
                f"{manifest_path} was written by mimoe {old.get('mimoe_version')}, this is "
                f"mimoe {header['mimoe_version']}; write into another folder, or delete this "
                "one to start over"
            )
        _check_same_run(old, header, manifest_path)
        done = {s["index"]: s for s in old.get("shards", []) if _intact(out, s)}
    else:
        others = [p.name for p in out.iterdir() if not p.name.startswith(".")]
        if others:
            raise ValueError(
                f"{out} is not empty and has no {MANIFEST_FILE} (found {sorted(others)[:5]}); "
                "write shards into a new or empty folder"
            )

    def save_manifest() -> None:
        shards = [done[k] for k in sorted(done)]
        _write_json(manifest_path, {**header, "complete": len(done) == n_shards, "shards": shards})

    save_manifest()
    first_of: dict[str, tuple[int, str, int]] = {}
    bar = tqdm(total=n_shards, desc=f"shards {table.name}", disable=not progress, unit="shard")
    bar.update(sum(k in done for k in range(n_shards)))
    try:
        for k in range(n_shards):
            start, stop = k * shard_size, min((k + 1) * shard_size, n_entries)
            if drop_duplicates:
                # Also for finished shards: later chunks need the structures they hold.
                positions, dup_skips = _cross_chunk_duplicates(
                    table, settings, start, stop, first_of
                )
            else:
                positions, dup_skips = list(range(start, stop)), []
            if k in done:
                continue
            chunk = featurize(
                _subtable(table, positions),
                settings=settings,
                radii=radii,
                normalize_descriptors=normalize_descriptors,
                cache_dir=cache_dir,
                use_cache=use_cache,
                n_jobs=n_jobs,
                progress=False,
                drop_duplicates=drop_duplicates,
            )
            skipped = sorted(chunk.skipped + dup_skips, key=lambda s: s.row)
            shard = _encode_shard(chunk.data_list, len(table.target_names), len(radii))
            # The skip report first: a shard file never exists without it.
            _write_skipped(out / _skipped_name(k), skipped)
            _save_shard(out / shard_name(k), shard)
            nbytes = (out / shard_name(k)).stat().st_size
            done[k] = _shard_entry(
                k, table, start, stop, chunk.data_list, chunk.conformers, len(skipped), nbytes
            )
            del chunk, shard, skipped  # let the chunk go before the next one is made
            save_manifest()
            bar.update()
            bar.set_postfix(molecules=sum(s["molecules"] for s in done.values()))
    finally:
        bar.close()

    records = list(table.skipped)
    for k in range(n_shards):
        records += _read_skipped(out / _skipped_name(k))
    _write_skipped(out / SKIPPED_FILE, records)
    return ShardedDataset(out)


# --------------------------------------------------------------------------------------------
# Reading


def _load_shard(path: Path, mmap: bool = False) -> dict[str, Any]:
    """``torch.load`` a shard file with ``weights_only``; a clear ValueError when it fails."""
    if not path.exists():
        raise ValueError(
            f"the shard file {path} is missing; rerun write_shards with the same input to "
            "rewrite it"
        )
    try:
        shard = torch.load(path, weights_only=True, mmap=mmap)
    except Exception as err:  # a damaged file fails in zipfile, pickle or torch
        raise ValueError(
            f"the shard file {path} cannot be read ({type(err).__name__}: {err}); delete it "
            "and rerun write_shards with the same input to rewrite it"
        ) from None
    if not isinstance(shard, dict) or set(SHARD_KEYS) - set(shard):
        raise ValueError(f"the shard file {path} is not a mimoe shard (fields missing)")
    return shard


def _check_shard(shard: dict[str, Any], path: Path, molecules: int) -> dict[str, Any]:
    """Check shapes against each other and the manifest's molecule count."""
    ptr = shard["atom_ptr"]
    sizes = {len(shard[k]) for k in ("y", "y_mask", "topo", "row", "smiles", "mol_id")}
    if (
        sizes != {molecules}
        or len(ptr) != molecules + 1
        or int(ptr[-1]) != len(shard["z"])
        or len(shard["pos"]) != len(shard["z"])
    ):
        raise ValueError(
            f"the shard file {path} does not match the manifest ({molecules} molecules "
            "expected); delete it and rerun write_shards with the same input to rewrite it"
        )
    return shard


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

    def labels(self) -> np.ndarray:
        """``[len(self), num_targets]`` float64 labels of the view (reads only labels)."""
        return self._dataset._labels[self.indices]

    def shuffled_positions(self, generator: torch.Generator | None = None) -> list[int]:
        """A random order of the view's positions ``0..len-1`` that reads each shard once."""
        where = {int(i): p for p, i in enumerate(self.indices)}
        return [where[i] for i in self._dataset.grouped_order(self.indices, generator)]


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
        """The decoded shard ``k`` (a dict of the module doc's fields), through the cache."""
        if k in self._cache:
            self._cache.move_to_end(k)
            return self._cache[k]
        path = self.shard_files[k]
        shard = _check_shard(_load_shard(path), path, self.shard_counts[k])
        self._cache[k] = shard
        while len(self._cache) > self.max_cached_shards:
            self._cache.popitem(last=False)
        return shard

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
