"""Featurization: a :class:`MoleculeTable` -> one PyG ``Data`` per molecule, cached on disk.

Each molecule gets a 3D conformer (:mod:`mimoe_core.conformers`) and its descriptor
trajectory over the filtration grid (:mod:`mimoe_core.topology`). Both are cached in one SQLite
file keyed by the input and every setting that changes the result; conformers that miss the
cache are computed in parallel worker processes with a progress bar. Every row that does not
become a molecule is reported with its row number and reason.
"""

from __future__ import annotations

import dataclasses
import multiprocessing
import os
import re
import signal
import time
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch_geometric.data import Data
from tqdm.auto import tqdm

from mimoe_core import keys
from mimoe_core.atom_attributes import atom_attributes as attributes_of
from mimoe_core.cache import ArrayCache, cache_key, default_cache_dir
from mimoe_core.conformers import (
    CONFORMER_VERSION,
    Conformer,
    ConformerSettings,
    EmbeddingTimeout,
    MoleculeRejected,
    canonical_smiles,
    embed_smiles,
    prepare_molecule,
    structure_conformer,
)
from mimoe_core.data.table import MoleculeTable, SkipRecord, skipped_frame
from mimoe_core.topology import DEFAULT_RADII, DESCRIPTOR_NAMES, descriptor_trajectories

# Bump when the descriptor definitions change: it invalidates cached trajectories.
DESCRIPTOR_VERSION = 1
CACHE_FILE = "featurize.sqlite"
# Finished results reach the cache in chunks (one transaction each), so a killed or
# interrupted run keeps its work: every CACHE_CHUNK molecules or CACHE_FLUSH_SECONDS.
CACHE_CHUNK = 64
CACHE_FLUSH_SECONDS = 10.0
DESCRIPTOR_CHUNK = 256  # molecules per descriptor batch (and per cache write)


@dataclass
class FeaturizedDataset:
    """Molecules ready for the model, and an account of every input row.

    Attributes:
        data_list: One ``Data`` per kept molecule (fields in :mod:`mimoe_core.keys`).
        table: The table that was featurized.
        kept: ``[len(data_list)]`` positions in ``table`` of the kept molecules.
        skipped: Rows not kept (read-time and featurization skips), with reasons.
        conformers: How each kept molecule's structure was made (embedding, force field,
            energy, fragments, converged; for an ensemble also ``distinct`` and the ranked
            ``ensemble_energies``), aligned with ``data_list``.
        settings: The conformer settings used.
        radii: The filtration grid in Å, shape ``[T]``.
        stats: Cache hits and misses, seconds, processes.
        normalize_descriptors: Whether ``topo`` holds the size-normalized descriptor forms.
    """

    data_list: list[Data]
    table: MoleculeTable
    kept: np.ndarray
    skipped: list[SkipRecord]
    conformers: list[dict]
    settings: ConformerSettings
    radii: np.ndarray
    stats: dict = field(default_factory=dict)
    normalize_descriptors: bool = True
    atom_attributes: bool = False

    def feature_settings(self) -> dict:
        """The settings the model's inputs depend on, besides conformer settings and grid.

        Stored in checkpoints and replayed by prediction.
        """
        return {
            "normalize_descriptors": bool(self.normalize_descriptors),
            "descriptor_version": DESCRIPTOR_VERSION,
            "atom_attributes": bool(self.atom_attributes),
        }

    def __len__(self) -> int:
        return len(self.data_list)

    def __getitem__(self, index: int) -> Data:
        return self.data_list[index]

    def __repr__(self) -> str:
        return (
            f"FeaturizedDataset(name={self.table.name!r}, molecules={len(self)}, "
            f"skipped={len(self.skipped)}, targets={self.table.target_names})"
        )

    @property
    def smiles(self) -> list[str]:
        """SMILES of the kept molecules (as embedded)."""
        return [d[keys.SMILES] for d in self.data_list]

    @property
    def rows(self) -> np.ndarray:
        """Source rows of the kept molecules, ``[num_molecules]`` int64."""
        return np.array([d[keys.ROW] for d in self.data_list], dtype=np.int64)

    @property
    def descriptors(self) -> np.ndarray:
        """Descriptor trajectories of the kept molecules, ``[num_molecules, T, D]``."""
        if not self.data_list:
            return np.zeros((0, len(self.radii), len(DESCRIPTOR_NAMES)), dtype=np.float32)
        return torch.cat([d[keys.TOPO] for d in self.data_list]).numpy()

    def summary(self) -> dict:
        """Counts and conformer statistics, as a JSON-ready dict."""
        atoms = np.array([d.num_nodes for d in self.data_list]) if self.data_list else np.zeros(1)
        reasons = Counter(_reason_kind(s.reason) for s in self.skipped)
        return {
            "dataset": self.table.name,
            "source": self.table.source,
            "task": self.table.task,
            "targets": self.table.target_names,
            "rows": self.table.n_rows,
            "kept": len(self),
            "skipped": len(self.skipped),
            "skip_reasons": dict(reasons.most_common()),
            "atoms": {
                "mean": float(atoms.mean()),
                "min": int(atoms.min()),
                "max": int(atoms.max()),
            },
            "embedding": dict(Counter(c["embedding"] for c in self.conformers)),
            "force_field": dict(Counter(c["force_field"] for c in self.conformers)),
            "multi_fragment_inputs": sum(c["n_fragments"] > 1 for c in self.conformers),
            "labels_present": self.table.mask[self.kept].sum(axis=0).tolist()
            if len(self.kept)
            else [],
            "conformer_settings": self.settings.to_dict(),
            "radii": [float(r) for r in self.radii],
            "descriptors": list(DESCRIPTOR_NAMES),
            **self.stats,
        }

    def summary_line(self) -> str:
        """One line: rows in, kept, skipped."""
        return (
            f"{self.table.name}: {self.table.n_rows} rows -> {len(self)} molecules kept, "
            f"{len(self.skipped)} skipped"
        )

    def without_rows(self, reasons: Mapping[int, str]) -> FeaturizedDataset:
        """This dataset without the kept molecules of the source rows in ``reasons``.

        Each one moves to :attr:`skipped` with its reason, so rows in = kept + skipped still
        holds. Rows that are not kept are ignored.
        """
        drop = np.isin(self.rows, np.fromiter(reasons, dtype=np.int64, count=len(reasons)))
        if not drop.any():
            return self
        table = self.table
        moved = [
            SkipRecord(int(table.rows[i]), table.ids[i], table.smiles_of(i) or "", reason)
            for i in self.kept[drop].tolist()
            for reason in [reasons[int(table.rows[i])]]
        ]
        keep = np.flatnonzero(~drop)
        return dataclasses.replace(
            self,
            data_list=[self.data_list[i] for i in keep],
            kept=self.kept[keep],
            skipped=sorted(self.skipped + moved, key=lambda s: s.row),
            conformers=[self.conformers[i] for i in keep],
        )

    def write_report(self, out_dir: str | Path) -> None:
        """Write ``summary.json`` and ``skipped.csv`` into ``out_dir``."""
        import json

        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        (out / "summary.json").write_text(json.dumps(self.summary(), indent=1))
        skipped_frame(self.skipped).to_csv(out / "skipped.csv", index=False)


def _reason_kind(reason: str) -> str:
    """Group reasons for the summary: quoted inputs and numbers blanked, text before a colon."""
    reason = re.sub(r"'[^']*'", "'…'", reason)
    return re.sub(r"\b\d+\b", "N", reason).split(":")[0].split(";")[0]


class _TimedOut(str):
    """The skip reason of a timeout: cached with ``timed_out``, so it can be retried."""

    __slots__ = ()


def _embed_job(job: tuple[int, str, ConformerSettings, bool]) -> tuple[int, Conformer | str]:
    index, smiles, settings, polymer = job
    try:
        return index, embed_smiles(smiles, settings, polymer)
    except EmbeddingTimeout as err:
        return index, _TimedOut(err)
    except MoleculeRejected as err:
        return index, str(err)
    except (ValueError, RuntimeError) as err:
        # An RDKit failure we did not foresee costs this molecule, never the whole run.
        return index, f"RDKit failed while making the conformer: {type(err).__name__}: {err}"


def _conformer_entry(conf: Conformer) -> tuple[dict[str, np.ndarray], dict]:
    meta = {
        "ok": True,
        "smiles": conf.smiles,
        "embedding": conf.embedding,
        "force_field": conf.force_field,
        "energy": conf.energy,
        "n_fragments": conf.n_fragments,
        "converged": conf.converged,
    }
    arrays = {"z": conf.z.astype(np.uint8), "pos": conf.pos}
    if conf.ensemble is not None:
        arrays["ensemble"] = conf.ensemble
        meta["ensemble_energies"] = [float(e) for e in conf.ensemble_energies]
        meta["distinct"] = conf.distinct
    return arrays, meta


def _conformer_from_entry(arrays: dict[str, np.ndarray], meta: dict) -> Conformer | str:
    if not meta["ok"]:
        return meta["reason"]
    return Conformer(
        z=arrays["z"].astype(np.int64),
        pos=arrays["pos"].copy(),
        smiles=meta["smiles"],
        embedding=meta["embedding"],
        force_field=meta["force_field"],
        energy=float(meta["energy"]) if meta["energy"] is not None else float("nan"),
        n_fragments=meta["n_fragments"],
        converged=meta.get("converged"),  # absent from entries written before it was recorded
        ensemble=arrays["ensemble"].copy() if "ensemble" in arrays else None,
        ensemble_energies=(
            np.array(meta["ensemble_energies"], dtype=np.float64) if "ensemble" in arrays else None
        ),
        distinct=int(meta.get("distinct", 1)),
    )


def default_n_jobs() -> int:
    """Cores this process may use."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def worker_pool(n_jobs: int):
    """A process pool for featurization work, whose workers take SIGTERM's default action.

    Leaving the pool's ``with`` block terminates the workers with SIGTERM. Under torchrun
    the parent has a SIGTERM handler that raises (see ``training.distributed``); a worker
    that inherited it would raise wherever the signal lands, possibly halfway through
    sending a result, and hang the pool. Resetting it in every worker keeps termination
    clean.
    """
    # fork starts workers without re-importing torch; workers use RDKit and numpy.
    method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
    return multiprocessing.get_context(method).Pool(n_jobs, initializer=_default_sigterm)


def _default_sigterm() -> None:
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


def _run_jobs(jobs: list, n_jobs: int, progress: bool, desc: str) -> Iterator:
    """Run ``_embed_job`` over jobs, in worker processes when it pays off.

    Yields each ``(index, outcome)`` as it finishes (in any order), so callers can store
    results while the rest are still running.
    """
    bar = tqdm(total=len(jobs), desc=desc, disable=not progress, unit="mol")
    try:
        if n_jobs <= 1 or len(jobs) < 4 * n_jobs:
            for job in jobs:
                yield _embed_job(job)
                bar.update()
        else:
            with worker_pool(n_jobs) as pool:
                for result in pool.imap_unordered(_embed_job, jobs, chunksize=4):
                    yield result
                    bar.update()
    finally:
        bar.close()


class _ChunkWriter:
    """Collects cache entries and writes them every CACHE_CHUNK entries or few seconds."""

    def __init__(self, cache: ArrayCache | None) -> None:
        self.cache = cache
        self.entries: list = []
        self.last = time.monotonic()

    def add(self, entry: tuple) -> None:
        if self.cache is None:
            return
        self.entries.append(entry)
        waited = time.monotonic() - self.last
        if len(self.entries) >= CACHE_CHUNK or waited > CACHE_FLUSH_SECONDS:
            self.flush()

    def flush(self) -> None:
        if self.cache is not None and self.entries:
            self.cache.put_many(self.entries)
        self.entries = []
        self.last = time.monotonic()


def make_conformers(
    table: MoleculeTable,
    settings: ConformerSettings,
    cache: ArrayCache | None,
    n_jobs: int,
    progress: bool,
    drop_duplicates: bool,
    retry_timeouts: bool = False,
) -> tuple[dict[int, Conformer], list[SkipRecord], dict]:
    """Conformers for every table entry, from the cache or computed; plus the skips.

    Failures are cached like results; a cached timeout is computed again only with
    ``retry_timeouts``.

    Each SMILES is prepared here first (parsed, capped, its fragment chosen) so duplicates
    are found on the structure that is embedded: with ``drop_duplicates`` the first row of
    each embedded structure is kept and later ones are skipped as duplicates of it. A SMILES
    that preparation rejects goes to the conformer step like any other (which reports the
    reason and caches it); its duplicates are found on its canonical SMILES.
    """
    skipped: list[SkipRecord] = []
    conformers: dict[int, Conformer] = {}
    jobs_by_key: dict[str, tuple[int, str]] = {}
    waiting: dict[str, list[int]] = {}
    first_of: dict[str, tuple[int, str, int]] = {}  # embedded SMILES -> (i, canonical, frags)

    def skip(i: int, reason: str) -> None:
        smiles = table.smiles_of(i) or ""
        skipped.append(SkipRecord(int(table.rows[i]), table.ids[i], smiles, reason))

    for i, item in enumerate(table.inputs):
        if not isinstance(item, str):
            try:
                conformers[i] = structure_conformer(item, settings)
            except MoleculeRejected as err:
                skip(i, str(err))
            continue
        try:
            canonical = canonical_smiles(item)
        except MoleculeRejected as err:
            skip(i, str(err))
            continue
        if drop_duplicates:
            embedded, n_fragments = _embedded_structure(item, canonical, settings, table.polymer)
            if embedded in first_of:
                this = (i, canonical, n_fragments)
                skip(i, _duplicate_reason(table, settings, first_of[embedded], this))
                continue
            first_of[embedded] = (i, canonical, n_fragments)
        key = cache_key(
            "conformer",
            CONFORMER_VERSION,
            _rdkit_version(),
            settings.to_dict(),
            table.polymer,
            canonical,
        )
        jobs_by_key.setdefault(key, (i, canonical))
        waiting.setdefault(key, []).append(i)

    found = cache.get_many(jobs_by_key) if cache is not None else {}
    if retry_timeouts:
        found = {key: entry for key, entry in found.items() if not entry[1].get("timed_out")}
    misses = [key for key in jobs_by_key if key not in found]
    results: dict[str, Conformer | str] = {
        key: _conformer_from_entry(*entry) for key, entry in found.items()
    }
    jobs = [(n, jobs_by_key[key][1], settings, table.polymer) for n, key in enumerate(misses)]
    writer = _ChunkWriter(cache)  # finished chunks survive a killed run
    for n, outcome in _run_jobs(jobs, n_jobs, progress, f"conformers {table.name}"):
        key = misses[n]
        results[key] = outcome
        if isinstance(outcome, Conformer):
            writer.add((key, *_conformer_entry(outcome)))
        else:
            timed_out = isinstance(outcome, _TimedOut)
            writer.add((key, {}, {"ok": False, "reason": outcome, "timed_out": timed_out}))
    writer.flush()

    for key, positions in waiting.items():
        for i in positions:
            outcome = results[key]
            if isinstance(outcome, Conformer):
                conformers[i] = outcome
            else:
                skip(i, outcome)
    stats = {"conformer_cache_hits": len(found), "conformers_computed": len(misses)}
    return conformers, skipped, stats


def _embedded_structure(
    smiles: str, canonical: str, settings: ConformerSettings, polymer: bool
) -> tuple[str, int]:
    """Canonical SMILES of the structure that will be embedded, and the input's fragments.

    Only salts, mixtures and polymer repeat units change on the way to embedding (fragment
    choice, capping), so any other input is its own canonical SMILES and is not prepared a
    second time here. A SMILES that preparation rejects is keyed apart; the conformer job
    reports why.
    """
    if "." not in canonical and "*" not in canonical:
        return canonical, 1
    from rdkit import Chem

    try:
        mol, n_fragments = prepare_molecule(smiles, settings, polymer)
    except (ValueError, RuntimeError):  # MoleculeRejected, or RDKit
        return f"rejected:{canonical}", 1
    return Chem.MolToSmiles(mol), n_fragments


def _duplicate_reason(
    table: MoleculeTable,
    settings: ConformerSettings,
    first: tuple[int, str, int],
    this: tuple[int, str, int],
) -> str:
    """``duplicate of row N (how)``, plus ``with different labels`` when the labels differ."""
    (i, canonical, n_fragments), (j, this_canonical, this_fragments) = first, this
    if canonical == this_canonical:
        how = "same canonical SMILES"
    elif settings.fragments == "largest" and max(n_fragments, this_fragments) > 1:
        how = "same structure after salt stripping"
    elif table.polymer and "*" in canonical + this_canonical:
        how = "same structure after capping '*'"
    else:
        how = "same embedded structure"
    reason = f"duplicate of row {int(table.rows[i])} ({how})"
    if not np.array_equal(table.targets[i], table.targets[j], equal_nan=True):
        reason += " with different labels"
    return reason


def _rdkit_version() -> str:
    from rdkit import rdBase

    return rdBase.rdkitVersion


def _descriptor_job(job: tuple[list[np.ndarray], np.ndarray, bool]) -> np.ndarray:
    positions, radii, normalize = job
    return descriptor_trajectories(positions, radii, normalize=normalize)


def _descriptor_chunks(jobs: list, n_jobs: int) -> Iterator[np.ndarray]:
    """Each chunk's trajectories, in order; in worker processes when there are enough chunks."""
    if n_jobs <= 1 or len(jobs) < 2:
        yield from map(_descriptor_job, jobs)
        return
    with worker_pool(min(n_jobs, len(jobs))) as pool:
        yield from pool.imap(_descriptor_job, jobs)


def make_descriptors(
    geometries: Sequence[Conformer | tuple[np.ndarray, np.ndarray]],
    radii: np.ndarray,
    normalize: bool,
    cache: ArrayCache | None,
    progress: bool,
    n_jobs: int = 1,
) -> tuple[np.ndarray, dict]:
    """Descriptor trajectories ``[num_geometries, T, D]`` float32, cached per geometry.

    ``geometries`` are conformers or ``(z, pos)`` pairs. Those that miss the cache are
    computed in chunks of ``DESCRIPTOR_CHUNK`` (on ``n_jobs`` worker processes), each chunk
    stored in the cache as it finishes.
    """
    pairs = [(g.z, g.pos) if isinstance(g, Conformer) else g for g in geometries]
    keys_ = [
        cache_key("descriptors", DESCRIPTOR_VERSION, radii, normalize, z, pos) for z, pos in pairs
    ]
    found = cache.get_many(set(keys_)) if cache is not None else {}
    out = np.zeros((len(pairs), len(radii), len(DESCRIPTOR_NAMES)), dtype=np.float32)
    todo = [i for i, key in enumerate(keys_) if key not in found]
    for i, key in enumerate(keys_):
        if key in found:
            out[i] = found[key][0]["topo"]
    # A molecule's values do not depend on its chunk, nor on the process that computes it.
    chunks = [
        todo[start : start + DESCRIPTOR_CHUNK] for start in range(0, len(todo), DESCRIPTOR_CHUNK)
    ]
    jobs = [([pairs[i][1].astype(np.float64) for i in c], radii, normalize) for c in chunks]
    bar = tqdm(total=len(todo), desc="descriptors", disable=not progress or not todo, unit="mol")
    for chunk, values in zip(chunks, _descriptor_chunks(jobs, n_jobs), strict=True):
        out[chunk] = values
        if cache is not None:
            cache.put_many((keys_[i], {"topo": out[i]}, {}) for i in chunk)
        bar.update(len(chunk))
    bar.close()
    return out, {"descriptor_cache_hits": len(pairs) - len(todo)}


def featurize(
    table: MoleculeTable,
    settings: ConformerSettings | None = None,
    radii: Sequence[float] | np.ndarray = DEFAULT_RADII,
    normalize_descriptors: bool = True,
    cache_dir: str | Path | None = None,
    use_cache: bool = True,
    n_jobs: int | None = None,
    progress: bool = True,
    drop_duplicates: bool = True,
    retry_timeouts: bool = False,
    atom_attributes: bool = False,
) -> FeaturizedDataset:
    """Make one PyG ``Data`` per molecule: conformer, labels and descriptor trajectory.

    Args:
        table: Molecules and labels (from ``load_dataset``, ``read_csv``, ``read_sdf``...).
        settings: Conformer settings (defaults when None).
        radii: Filtration grid in Å, shape ``[T]`` (default 1.0 to 5.0 by 0.1).
        normalize_descriptors: Store the size-normalized descriptor forms (what the gate uses).
        cache_dir: Cache folder (default ``$MIMOE_CACHE_DIR`` or ``~/.cache/mimoe``).
        use_cache: Read and write the cache.
        n_jobs: Worker processes for conformers and descriptors (default: all cores this
            process may use).
        progress: Show tqdm progress bars.
        drop_duplicates: Skip a SMILES whose embedded structure (canonical SMILES after the
            fragment choice and polymer capping) appeared in an earlier row (for training;
            prediction keeps every row). The reason names the kept row and says when the
            labels differ.
        retry_timeouts: Embed again the molecules whose embedding timed out on an earlier
            run (the cache remembers timeouts; without this they are skipped as before).
        atom_attributes: Add each atom's chemical features (``keys.ATOM_ATTR``,
            :mod:`mimoe_core.atom_attributes`), read again from the input's molecule (they are
            cheap; the cache is unchanged). Default False.

    Returns:
        A :class:`FeaturizedDataset`; ``table.n_rows == len(result) + len(result.skipped)``.

    Raises:
        ValueError: ``atom_attributes`` for structures without bonds (QM9's coordinates).
    """
    start = time.perf_counter()
    settings = settings or ConformerSettings()
    radii = np.asarray(radii, dtype=np.float64)
    n_jobs = n_jobs or default_n_jobs()
    cache = None
    if use_cache:
        cache = ArrayCache(Path(cache_dir or default_cache_dir()) / CACHE_FILE, "features")
    try:
        conformers, skipped, stats = make_conformers(
            table, settings, cache, n_jobs, progress, drop_duplicates, retry_timeouts
        )
        kept = np.array(sorted(conformers), dtype=np.int64)
        confs = [conformers[i] for i in kept]
        # One trajectory per conformer: an ensemble's M, each cached on its own coordinates.
        geometries = [
            (c.z, pos) for c in confs for pos in (c.ensemble if c.ensemble is not None else [c.pos])
        ]
        topo, topo_stats = make_descriptors(
            geometries, radii, normalize_descriptors, cache, progress, n_jobs
        )
    finally:
        if cache is not None:
            cache.close()

    data_list = []
    keep = settings.keep_conformers
    topo = topo.reshape(len(confs), keep, *topo.shape[1:])
    # Every tensor below owns its memory: a view would keep the whole array it came from
    # alive in each molecule (and inside every saved copy of it), n molecules x n rows.
    label_mask = table.mask
    for n, (i, conf) in enumerate(zip(kept, confs, strict=True)):
        attr = {}
        if atom_attributes:
            attr[keys.ATOM_ATTR] = torch.from_numpy(
                _atom_attr(table.inputs[i], conf, settings, table.polymer)
            )
        if keep > 1:
            attr[keys.CONF_POS] = torch.from_numpy(conf.ensemble).transpose(0, 1).contiguous()
            attr[keys.CONF_TOPO] = torch.from_numpy(topo[n].copy()).unsqueeze(0)
        data_list.append(
            Data(
                **attr,
                **{
                    keys.Z: torch.from_numpy(conf.z),
                    keys.POS: torch.from_numpy(conf.pos),
                    keys.Y: torch.tensor(table.targets[i], dtype=torch.float32).view(1, -1),
                    keys.Y_MASK: torch.from_numpy(label_mask[i].copy()).view(1, -1),
                    keys.TOPO: torch.from_numpy(topo[n, :1].copy()),
                    keys.SMILES: conf.smiles,
                    keys.ROW: int(table.rows[i]),
                    keys.MOL_ID: table.ids[i],
                },
            )
        )
    fields = ("embedding", "force_field", "energy", "n_fragments", "converged")
    info = [{k: getattr(c, k) for k in fields} for c in confs]
    if keep > 1:  # an ensemble's ranked energies, and how many of its M are distinct
        for entry, c in zip(info, confs, strict=True):
            entry["distinct"] = c.distinct
            entry["ensemble_energies"] = [float(e) for e in c.ensemble_energies]
    stats |= topo_stats
    stats["seconds"] = round(time.perf_counter() - start, 3)
    stats["processes"] = n_jobs
    return FeaturizedDataset(
        data_list=data_list,
        table=table,
        kept=kept,
        skipped=sorted(table.skipped + skipped, key=lambda s: s.row),
        conformers=info,
        settings=settings,
        radii=radii,
        stats=stats,
        normalize_descriptors=bool(normalize_descriptors),
        atom_attributes=bool(atom_attributes),
    )


def _atom_attr(item, conf: Conformer, settings: ConformerSettings, polymer: bool) -> np.ndarray:
    """[N, F] float32 atom features of one kept molecule, in its conformer's atom order.

    A SMILES is prepared again exactly as for embedding (its canonical form, fragment
    choice, capping, hydrogens added), so the atoms come in the conformer's order; a 3D
    record brings its own.
    """
    from rdkit import Chem

    if not isinstance(item, str):
        if item.atom_attr is None:
            raise ValueError(
                "atom features need the molecule's bonds, and these structures are "
                "coordinates only (QM9's DFT geometries); featurize without atom features"
            )
        z, attr = np.asarray(item.z), item.atom_attr
    else:
        mol, _ = prepare_molecule(canonical_smiles(item), settings, polymer)
        mol = Chem.AddHs(mol)
        z, attr = np.array([a.GetAtomicNum() for a in mol.GetAtoms()]), attributes_of(mol)
    if not settings.hydrogens:
        z, attr = z[z > 1], attr[z > 1]
    if not np.array_equal(z, conf.z):  # a cached conformer made differently: never mix them
        raise RuntimeError(
            f"{conf.smiles}: the atoms read for the atom features are not the conformer's; "
            "clear the featurization cache and featurize again"
        )
    return attr.astype(np.float32)


def featurize_dataset(name: str, limit: int | None = None, **kwargs) -> FeaturizedDataset:
    """``featurize(load_dataset(name, limit), **kwargs)``: a bundled dataset, ready to use."""
    from mimoe_core.data.bundled import load_dataset

    return featurize(load_dataset(name, limit=limit), **kwargs)
