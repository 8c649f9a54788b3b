"""A small on-disk key-value cache (SQLite) for conformers and descriptor trajectories.

Keys are SHA-256 digests of the input and every setting that changes the result, so a changed
setting is a miss, never a stale hit. Values are raw array bytes plus a JSON header. The cache
lives in ``$MIMOE_CACHE_DIR`` (default ``~/.cache/mimoe``) unless a folder is given. The cache
is disposable: a corrupt file is moved aside with a warning and rebuilt empty.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import time
import warnings
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import TypeVar

import numpy as np

_T = TypeVar("_T")

#: The cache file's layout, stamped in SQLite's ``user_version``; bump when it changes.
CACHE_FORMAT = 1


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


def _check_format(db: sqlite3.Connection, path: Path) -> None:
    """Stamp a new file with :data:`CACHE_FORMAT`; refuse one written in another format.

    Files from before the stamp (``user_version`` 0) have today's layout and are stamped.
    """
    found = db.execute("PRAGMA user_version").fetchone()[0]
    if found == 0:
        db.execute(f"PRAGMA user_version = {CACHE_FORMAT}")
    elif found != CACHE_FORMAT:
        raise CacheError(
            f"the cache {path} was written by another mimoe version (cache format {found}; "
            f"this one reads format {CACHE_FORMAT}): use another --cache-dir or "
            "MIMOE_CACHE_DIR, or delete that file (it only holds recomputable results)"
        )


class CacheError(RuntimeError):
    """The cache file cannot be used (folder not writable, file locked too long, disk full).

    A *corrupt* cache is not an error: it is moved aside and rebuilt with a
    :class:`CorruptCacheWarning`.
    """


class CorruptCacheWarning(UserWarning):
    """A corrupt cache file was moved aside and replaced by an empty one."""


def _error_name(err: sqlite3.Error) -> str:
    return getattr(err, "sqlite_errorname", "") or ""


def _is_corrupt(err: sqlite3.Error) -> bool:
    """SQLITE_CORRUPT / SQLITE_NOTADB (a damaged or foreign file), not a lock or a full disk."""
    if _error_name(err):
        return _error_name(err).startswith(("SQLITE_CORRUPT", "SQLITE_NOTADB"))
    return "malformed" in str(err) or "not a database" in str(err)


def _is_busy(err: sqlite3.Error) -> bool:
    if _error_name(err):
        return _error_name(err).startswith(("SQLITE_BUSY", "SQLITE_LOCKED"))
    return "locked" in str(err) or "busy" in str(err)


def _inode(path: Path) -> tuple[int, int] | None:
    try:
        stat = path.stat()
    except FileNotFoundError:
        return None
    return stat.st_dev, stat.st_ino


class ArrayCache:
    """Named tables of ``key -> (arrays, meta)`` in one SQLite file.

    Several processes may read and write the same file at once: it is in WAL mode, writers
    wait for each other (up to ``timeout`` seconds) and each :meth:`put_many` is one
    transaction, so a killed process leaves every finished transaction and nothing half
    written. A corrupt file (found on open or on any read or write) is renamed to
    ``<name>.corrupt-<timestamp>-<pid>`` with a :class:`CorruptCacheWarning`, and the
    operation continues on a new, empty cache: the cache only ever costs recomputation.

    Args:
        path: The SQLite file (its folder is created).
        table: Table name, e.g. ``"conformers"`` or ``"descriptors"``.
        timeout: Seconds to wait for another process's write lock; default 60.

    Raises:
        CacheError: The file cannot be opened or written (permissions, a file where the
            folder should be, a full disk, a lock held longer than ``timeout``).
    """

    def __init__(self, path: str | Path, table: str, timeout: float = 60.0) -> None:
        if not table.isidentifier():
            raise ValueError(f"table name must be an identifier, got {table!r}")
        self.path = Path(path)
        self.table = table
        self.timeout = timeout
        self._db: sqlite3.Connection | None = None
        self._inode: tuple[int, int] | None = None
        self._run(lambda db: None)

    def __repr__(self) -> str:
        return f"ArrayCache(path='{self.path}', table={self.table!r}, entries={len(self)})"

    def _connect(self) -> sqlite3.Connection:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise CacheError(
                f"cannot create the cache folder {self.path.parent} ({err.strerror or err}); "
                "choose another with --cache-dir or MIMOE_CACHE_DIR, or use --no-cache"
            ) from None
        # Autocommit mode: transactions are explicit (BEGIN IMMEDIATE in put_many).
        db = sqlite3.connect(self.path, timeout=self.timeout, isolation_level=None)
        try:
            self._inode = _inode(self.path)
            deadline = time.monotonic() + self.timeout
            while True:
                # Switching a new file to WAL does not wait for a lock held by another
                # process that is creating the same file: retry until the timeout.
                try:
                    db.execute("PRAGMA journal_mode=WAL").fetchall()
                    break
                except sqlite3.OperationalError as err:
                    if not _is_busy(err) or time.monotonic() > deadline:
                        raise
                    time.sleep(0.05)
            _check_format(db, self.path)
            db.execute(
                f"CREATE TABLE IF NOT EXISTS {self.table} "
                "(key TEXT PRIMARY KEY, header TEXT, blob BLOB)"
            )
            db.execute(f"SELECT key, header FROM {self.table} LIMIT 1").fetchall()
        except BaseException:
            db.close()
            raise
        return db

    def _run(self, operation: Callable[[sqlite3.Connection], _T]) -> _T:
        """``operation(connection)``, recovering once from a corrupt file."""
        for attempt in (0, 1):
            try:
                if self._db is None:
                    self._db = self._connect()
                return operation(self._db)
            except (sqlite3.ProgrammingError, sqlite3.IntegrityError, sqlite3.InterfaceError):
                raise  # a bug in the caller, not a problem with the file
            except sqlite3.DatabaseError as err:
                if attempt == 0 and _is_corrupt(err):
                    self._move_aside(err)
                    continue
                raise CacheError(
                    f"cannot use the cache file {self.path} ({err}); choose another folder "
                    "with --cache-dir or MIMOE_CACHE_DIR, or use --no-cache"
                ) from err
        raise AssertionError("unreachable")  # pragma: no cover

    def _move_aside(self, err: sqlite3.Error) -> None:
        """Rename the corrupt file (and its WAL) out of the way; the next open starts empty."""
        if self._db is not None:
            try:
                self._db.close()
            except sqlite3.Error:
                pass
            self._db = None
        stamp = time.strftime("%Y%m%d-%H%M%S")
        backup = self.path.with_name(f"{self.path.name}.corrupt-{stamp}-{os.getpid()}")
        current = _inode(self.path)
        if current is not None and current != self._inode and self._inode is not None:
            # Another process has already replaced the file: use its new one.
            warnings.warn(
                f"the cache file {self.path} was corrupt ({err}); another process already "
                "moved it aside, continuing with the new cache",
                CorruptCacheWarning,
                stacklevel=4,
            )
            return
        try:
            if current is not None:
                os.replace(self.path, backup)
            wal = self.path.with_name(self.path.name + "-wal")
            if wal.exists():
                os.replace(wal, backup.with_name(backup.name + "-wal"))
            self.path.with_name(self.path.name + "-shm").unlink(missing_ok=True)
        except OSError as move_err:
            raise CacheError(
                f"the cache file {self.path} is corrupt ({err}) and cannot be moved aside "
                f"({move_err.strerror or move_err}); delete it, or use --cache-dir or --no-cache"
            ) from None
        warnings.warn(
            f"the cache file {self.path} is corrupt ({err}); moved aside to {backup.name} "
            "and started an empty cache (results are recomputed)",
            CorruptCacheWarning,
            stacklevel=4,
        )

    def __len__(self) -> int:
        query = f"SELECT COUNT(*) FROM {self.table}"
        return self._run(lambda db: db.execute(query).fetchone()[0])

    def get_many(self, keys: Iterable[str]) -> dict[str, tuple[dict[str, np.ndarray], dict]]:
        """The entries found among ``keys`` (missing keys are absent from the result)."""
        keys = list(keys)

        def read(db: sqlite3.Connection) -> list[tuple[str, str, bytes]]:
            rows = []
            for start in range(0, len(keys), 500):  # SQLite caps the bound parameters
                batch = keys[start : start + 500]
                marks = ",".join("?" * len(batch))
                query = f"SELECT key, header, blob FROM {self.table} WHERE key IN ({marks})"
                rows += db.execute(query, batch).fetchall()
            return rows

        found: dict[str, tuple[dict[str, np.ndarray], dict]] = {}
        for key, header, blob in self._run(read):
            try:
                found[key] = _decode(header, blob)
            except (ValueError, TypeError, KeyError):
                pass  # an entry that does not decode is a miss; it is rewritten on put
        return found

    def put_many(self, items: Iterable[tuple[str, dict[str, np.ndarray], dict]]) -> None:
        """Store ``(key, arrays, meta)`` entries (replacing existing keys) in one transaction."""
        rows = [(key, *_encode(arrays, meta)) for key, arrays, meta in items]
        if not rows:
            return
        query = f"INSERT OR REPLACE INTO {self.table} VALUES (?, ?, ?)"

        def write(db: sqlite3.Connection) -> None:
            db.execute("BEGIN IMMEDIATE")  # take the write lock now, waiting up to timeout
            try:
                db.executemany(query, rows)
            except BaseException:
                db.rollback()
                raise
            db.execute("COMMIT")

        self._run(write)

    def keys(self) -> Iterator[str]:
        """All keys in the table."""
        query = f"SELECT key FROM {self.table}"
        yield from (key for (key,) in self._run(lambda db: db.execute(query).fetchall()))

    def close(self) -> None:
        """Close the database connection."""
        if self._db is not None:
            self._db.close()
            self._db = None
