"""The on-disk shard format: names, manifest, encoding, atomic writes and checks.

Everything that both :mod:`mimoe_core.shards.writer` and :mod:`mimoe_core.shards.reader` need
lives here; the layout itself is described in :mod:`mimoe_core.shards`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch_geometric.data import Data

from mimoe_core import keys
from mimoe_core.cache import cache_key
from mimoe_core.data.table import MoleculeTable, SkipRecord, Task, skipped_frame
from mimoe_core.topology import DESCRIPTOR_NAMES

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


def _encode_shard(data_list: Sequence[Data], n_targets: int, n_radii: int) -> dict[str, Any]:
    """Concatenate ``featurize`` molecules into the CSR shard dict (layout: the package doc)."""
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
