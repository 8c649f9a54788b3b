"""A small on-disk key-value cache (SQLite) for conformers and descriptor trajectories.

Keys are SHA-256 digests of the input and every setting that changes the result, so a changed
setting is a miss, never a stale hit. Values are raw array bytes plus a JSON header. The cache
lives in ``$MIMOE_CACHE_DIR`` (default ``~/.cache/mimoe``) unless a folder is given.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np


def default_cache_dir() -> Path:
    """``$MIMOE_CACHE_DIR`` if set, else ``~/.cache/mimoe``."""
    env = os.environ.get("MIMOE_CACHE_DIR")
    return Path(env) if env else Path.home() / ".cache" / "mimoe"


def cache_key(*parts: object) -> str:
    """SHA-256 hex digest of JSON-serializable parts (numpy arrays hash by dtype, shape, bytes)."""
    digest = hashlib.sha256()
    for part in parts:
        if isinstance(part, np.ndarray):
            arr = np.asarray(part, order="C")
            digest.update(f"{arr.dtype.str}{arr.shape}".encode())
            digest.update(arr.tobytes())
        else:
            digest.update(json.dumps(part, sort_keys=True, default=str).encode())
        digest.update(b"\x1f")
    return digest.hexdigest()


def _encode(arrays: dict[str, np.ndarray], meta: dict) -> tuple[str, bytes]:
    header = {"meta": meta, "arrays": []}
    chunks = []
    for name, arr in arrays.items():
        arr = np.asarray(arr, order="C")
        header["arrays"].append([name, arr.dtype.str, list(arr.shape)])
        chunks.append(arr.tobytes())
    return json.dumps(header), b"".join(chunks)


def _decode(header_text: str, blob: bytes) -> tuple[dict[str, np.ndarray], dict]:
    header = json.loads(header_text)
    arrays, offset = {}, 0
    for name, dtype, shape in header["arrays"]:
        dt = np.dtype(dtype)
        count = int(np.prod(shape)) if shape else 1
        arrays[name] = np.frombuffer(blob, dtype=dt, count=count, offset=offset).reshape(shape)
        offset += count * dt.itemsize
    return arrays, header["meta"]


class ArrayCache:
    """Named tables of ``key -> (arrays, meta)`` in one SQLite file.

    Args:
        path: The SQLite file (its folder is created).
        table: Table name, e.g. ``"conformers"`` or ``"descriptors"``.
    """

    def __init__(self, path: str | Path, table: str) -> None:
        if not table.isidentifier():
            raise ValueError(f"table name must be an identifier, got {table!r}")
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.table = table
        self._db = sqlite3.connect(self.path, timeout=60)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(
            f"CREATE TABLE IF NOT EXISTS {table} (key TEXT PRIMARY KEY, header TEXT, blob BLOB)"
        )
        self._db.commit()

    def __repr__(self) -> str:
        return f"ArrayCache(path='{self.path}', table={self.table!r}, entries={len(self)})"

    def __len__(self) -> int:
        return self._db.execute(f"SELECT COUNT(*) FROM {self.table}").fetchone()[0]

    def get_many(self, keys: Iterable[str]) -> dict[str, tuple[dict[str, np.ndarray], dict]]:
        """The entries found among ``keys`` (missing keys are absent from the result)."""
        keys = list(keys)
        found: dict[str, tuple[dict[str, np.ndarray], dict]] = {}
        for start in range(0, len(keys), 500):  # SQLite caps the number of bound parameters
            batch = keys[start : start + 500]
            marks = ",".join("?" * len(batch))
            query = f"SELECT key, header, blob FROM {self.table} WHERE key IN ({marks})"
            for key, header, blob in self._db.execute(query, batch):
                found[key] = _decode(header, blob)
        return found

    def put_many(self, items: Iterable[tuple[str, dict[str, np.ndarray], dict]]) -> None:
        """Store ``(key, arrays, meta)`` entries (replacing existing keys) in one transaction."""
        rows = [(key, *_encode(arrays, meta)) for key, arrays, meta in items]
        self._db.executemany(f"INSERT OR REPLACE INTO {self.table} VALUES (?, ?, ?)", rows)
        self._db.commit()

    def keys(self) -> Iterator[str]:
        """All keys in the table."""
        for (key,) in self._db.execute(f"SELECT key FROM {self.table}"):
            yield key

    def close(self) -> None:
        """Close the database connection."""
        self._db.close()
