"""Writing a shard folder: :func:`write_shards`, chunk by chunk, resumable.

Each chunk of the table is featurized, encoded in the format of
:mod:`mimoe_core.shards._format` and written atomically; duplicates across chunks are skipped
as one ``featurize`` call would skip them.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch_geometric.data import Data
from tqdm.auto import tqdm

import mimoe_core
from mimoe_core import keys
from mimoe_core.conformers import (
    CONFORMER_VERSION,
    ConformerSettings,
    MoleculeRejected,
    canonical_smiles,
)
from mimoe_core.data.table import MoleculeTable, SkipRecord
from mimoe_core.featurization import (
    DESCRIPTOR_VERSION,
    _duplicate_reason,
    _embedded_structure,
    _rdkit_version,
    featurize,
)
from mimoe_core.shards._format import (
    MANIFEST_FILE,
    SHARD_FORMAT,
    SHARD_FORMAT_VERSION,
    SKIPPED_FILE,
    ShardTableInfo,
    _check_same_run,
    _encode_shard,
    _read_manifest,
    _read_skipped,
    _save_shard,
    _skipped_name,
    _write_json,
    _write_skipped,
    input_fingerprint,
    shard_name,
)
from mimoe_core.shards.reader import ShardedDataset
from mimoe_core.topology import DEFAULT_RADII, DESCRIPTOR_NAMES


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


def _structure(
    table: MoleculeTable, settings: ConformerSettings, i: int
) -> tuple[str, str, int] | None:
    """Entry ``i``'s (embedded structure, canonical SMILES, fragments), as ``featurize`` keys it.

    None for a 3D structure (used as given) and for a SMILES that does not parse (which
    ``featurize`` reports).
    """
    item = table.inputs[i]
    if not isinstance(item, str):
        return None
    try:
        canonical = canonical_smiles(item)
    except MoleculeRejected:
        return None
    embedded, n_fragments = _embedded_structure(item, canonical, settings, table.polymer)
    return embedded, canonical, n_fragments


def _digest(embedded: str) -> int:
    return int.from_bytes(hashlib.blake2b(embedded.encode(), digest_size=8).digest(), "little")


def _cross_chunk_duplicates(
    table: MoleculeTable,
    settings: ConformerSettings,
    start: int,
    stop: int,
    first_of: dict[int, int | tuple[int, ...]],
) -> tuple[list[int], list[SkipRecord]]:
    """Split entries ``start:stop`` into those to featurize and duplicates of earlier chunks.

    Uses the key that ``featurize(drop_duplicates=True)`` uses (the embedded structure) and
    its wording, so a sharded run keeps and skips exactly what one ``featurize`` call on the
    whole table would. Duplicates within the chunk are left to ``featurize``.

    ``first_of`` maps a 64-bit digest of each structure seen so far to its first entry (to
    a tuple of them if different structures share a digest), and is updated with the
    chunk's: it holds about two integers per molecule instead of the structure's strings,
    since it lives as long as the whole run (a few million molecules). A matching digest is
    checked against the earlier entries' structures, so a collision changes nothing.
    """
    keep: list[int] = []
    skipped: list[SkipRecord] = []
    for i in range(start, stop):
        this = _structure(table, settings, i)
        if this is None:
            keep.append(i)  # 3D structures are never deduplicated; featurize reports the rest
            continue
        embedded, canonical, n_fragments = this
        digest = _digest(embedded)
        seen = first_of.get(digest, ())
        seen = (seen,) if isinstance(seen, int) else seen
        first = None
        for j in seen:
            earlier_embedded, earlier_canonical, earlier_fragments = _structure(table, settings, j)
            if earlier_embedded == embedded:
                first = (j, earlier_canonical, earlier_fragments)
                break
        if first is not None and first[0] < start:
            reason = _duplicate_reason(table, settings, first, (i, canonical, n_fragments))
            skipped.append(SkipRecord(int(table.rows[i]), table.ids[i], table.inputs[i], reason))
            continue
        if first is None:
            first_of[digest] = (*seen, i) if seen else i
        keep.append(i)
    return keep, skipped


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
    retry_timeouts: bool = False,
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
        retry_timeouts: Embed again molecules whose embedding timed out on an earlier run,
            in the shards still to write (finished shards are kept as they are).

    Returns:
        The :class:`ShardedDataset` of the folder; ``table.n_rows == len(result) +
        len(result.skipped)``.

    Raises:
        ValueError: ``shard_size`` is below 1, a conformer ensemble (``keep_conformers`` >
            1; shards hold one conformer per molecule), or ``out_dir`` holds shards written
            for other input, settings, shard format or mimoe version (the message names the
            field), or files that are not shards.
    """
    if shard_size < 1:
        raise ValueError(f"shard_size must be at least 1, got {shard_size}")
    settings = settings or ConformerSettings()
    if settings.keep_conformers > 1:
        raise ValueError(
            f"shards hold one conformer per molecule, and {settings.keep_conformers} were asked "
            "(--conformers); featurize and train from --dataset or --data instead"
        )
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
    first_of: dict[int, int | tuple[int, ...]] = {}  # structure digest -> first entry
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
                retry_timeouts=retry_timeouts,
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
