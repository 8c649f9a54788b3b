"""The feature cache under faults: corrupt files, two writers at once, a killed run.

The real-process tests start ``python -m mimoe_core featurize`` (or a thin wrapper around the
same ``main``) as subprocesses, so they exercise what a user sees: exit codes, files, the
SQLite file left behind by ``kill -9``.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mimoe_core.cache import ArrayCache
from mimoe_core.cli import main
from mimoe_core.data import load_dataset
from mimoe_core.featurization import CACHE_FILE

# A thin wrapper around the CLI for fault injection: a small cache chunk and a slower
# conformer step, so a kill lands after the first chunk and before the end.
WRAPPER = """
import sys, time
import mimoe_core.featurization as f
f.CACHE_CHUNK = int(sys.argv[1])
_embed = f._embed_job
def _slow(job, _delay=float(sys.argv[2])):
    time.sleep(_delay)
    return _embed(job)
f._embed_job = _slow
from mimoe_core.cli import main
sys.exit(main(sys.argv[3:]))
"""

# Outputs that must not depend on the cache: everything except timings and hit counts.
STAT_KEYS = {
    "seconds", "processes", "conformer_cache_hits", "conformers_computed",
    "descriptor_cache_hits",
}  # fmt: skip


def _env(cache_dir: Path) -> dict[str, str]:
    env = dict(os.environ, MIMOE_CACHE_DIR=str(cache_dir), OMP_NUM_THREADS="1")
    env.pop("MIMOE_DATA_URL", None)
    return env


def _featurize_argv(out: Path, limit: int, dataset: str = "freesolv") -> list[str]:
    return ["featurize", "--dataset", dataset, "--limit", str(limit), "--jobs", "1",
            "--out", str(out)]  # fmt: skip


def _start(argv: list[str], cache_dir: Path, chunk: int | None = None, delay: float = 0.0):
    if chunk is None:
        cmd = [sys.executable, "-m", "mimoe_core", *argv]
    else:
        cmd = [sys.executable, "-c", WRAPPER, str(chunk), str(delay), *argv]
    return subprocess.Popen(
        cmd, env=_env(cache_dir), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def _finish(proc: subprocess.Popen, timeout: float = 300) -> tuple[int, str, str]:
    out, err = proc.communicate(timeout=timeout)
    return proc.returncode, out, err


def _outputs(out: Path) -> dict:
    """What a featurize run wrote, in a comparable form."""
    with np.load(out / "descriptors.npz") as npz:
        arrays = {k: npz[k] for k in npz.files}
    summary = json.loads((out / "summary.json").read_text())
    return {
        "arrays": arrays,
        "molecules": pd.read_csv(out / "molecules.csv"),
        "skipped": pd.read_csv(out / "skipped.csv"),
        "splits": json.loads((out / "splits.json").read_text()),
        "summary": {k: v for k, v in summary.items() if k not in STAT_KEYS},
    }


def _assert_same_outputs(first: Path, second: Path) -> None:
    a, b = _outputs(first), _outputs(second)
    assert a["arrays"].keys() == b["arrays"].keys()
    for name in a["arrays"]:
        np.testing.assert_array_equal(a["arrays"][name], b["arrays"][name], err_msg=name)
    pd.testing.assert_frame_equal(a["molecules"], b["molecules"])
    pd.testing.assert_frame_equal(a["skipped"], b["skipped"])
    assert a["splits"] == b["splits"]
    assert a["summary"] == b["summary"]


def _rows_in_cache(path: Path) -> int:
    """Entries in the cache file, read through a separate read-only connection (0 if none)."""
    if not path.exists():
        return 0
    try:
        db = sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True, timeout=5)
        try:
            return db.execute("SELECT COUNT(*) FROM features").fetchone()[0]
        finally:
            db.close()
    except sqlite3.Error:  # not created yet, or the table is not there yet
        return 0


def _integrity(path: Path) -> str:
    db = sqlite3.connect(path)
    try:
        return db.execute("PRAGMA integrity_check").fetchone()[0]
    finally:
        db.close()


# --- corrupt cache files ----------------------------------------------------------------------


def _corrupt(path: Path, how: str) -> None:
    data = path.read_bytes()
    if how == "garbage":
        data = b"this is not a database\n" * 200
    elif how == "truncated":
        data = data[: len(data) // 2]
    elif how == "header_only":
        data = data[:100]
    elif how == "zeroed_pages":  # the header survives, later pages do not: found on read
        data = data[:4096] + bytes(len(data) - 4096)
    path.write_bytes(data)


def _fill(path: Path, n: int = 300) -> None:
    cache = ArrayCache(path, "features")
    rng = np.random.default_rng(0)
    cache.put_many((f"k{i}", {"v": rng.random(300)}, {"i": i}) for i in range(n))
    cache.close()
    # fold the WAL into the main file, so that corrupting the file corrupts the data
    db = sqlite3.connect(path)
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.close()


def _backups(path: Path) -> list[Path]:
    return sorted(path.parent.glob(path.name + ".corrupt-*"))


@pytest.mark.parametrize("how", ["garbage", "truncated", "header_only", "zeroed_pages"])
def test_corrupt_cache_is_moved_aside_and_rebuilt(tmp_path, how):
    path = tmp_path / "c.sqlite"
    _fill(path)
    _corrupt(path, how)
    with pytest.warns(UserWarning, match=r"corrupt.*c\.sqlite.*moved aside"):
        cache = ArrayCache(path, "features")
        found = cache.get_many([f"k{i}" for i in range(300)])
    assert found == {}  # a fresh, empty cache: every key is a miss
    cache.put_many([("new", {"v": np.arange(3)}, {})])
    assert len(cache) == 1 and cache.get_many(["new"])["new"][0]["v"].tolist() == [0, 1, 2]
    cache.close()
    backups = [p for p in _backups(path) if not p.name.endswith(("-wal", "-shm"))]
    assert len(backups) == 1 and backups[0].stat().st_size > 0
    assert _integrity(path) == "ok"


def test_corruption_found_on_write_is_recovered(tmp_path):
    path = tmp_path / "c.sqlite"
    _fill(path)
    cache = ArrayCache(path, "features")  # opens fine
    _corrupt(path, "zeroed_pages")  # then the file goes bad under it
    with pytest.warns(UserWarning, match="corrupt"):
        cache.put_many((f"k{i}", {"v": np.zeros(300)}, {}) for i in range(300))
    assert len(cache) == 300
    cache.close()
    assert _integrity(path) == "ok"


def test_an_empty_cache_file_is_fine(tmp_path):
    path = tmp_path / "c.sqlite"
    path.write_bytes(b"")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        cache = ArrayCache(path, "features")
        cache.put_many([("k", {"v": np.zeros(2)}, {})])
        assert len(cache) == 1
    cache.close()


def test_featurize_with_a_corrupt_cache_warns_and_matches_a_clean_run(
    tmp_path, cache_dir, quick_featurize
):
    table = load_dataset("freesolv", limit=6)
    clean = quick_featurize(table, cache_dir=tmp_path / "clean")
    (cache_dir / CACHE_FILE).write_bytes(b"garbage" * 1000)
    with pytest.warns(UserWarning, match=CACHE_FILE):
        again = quick_featurize(table)
    np.testing.assert_array_equal(again.descriptors, clean.descriptors)
    assert again.conformers == clean.conformers
    assert len(_backups(cache_dir / CACHE_FILE)) >= 1
    assert quick_featurize(table).stats["conformer_cache_hits"] == 6  # the new cache works


@pytest.mark.parametrize("how", ["garbage", "truncated"])
def test_cli_featurize_with_a_corrupt_cache(tmp_path, cache_dir, capsys, how):
    out = tmp_path / "out"
    assert main([*_featurize_argv(out, 8), "--quiet"]) == 0
    path = cache_dir / CACHE_FILE
    db = sqlite3.connect(path)
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.close()
    _corrupt(path, how)
    with pytest.warns(UserWarning, match="corrupt"):
        assert main([*_featurize_argv(tmp_path / "again", 8), "--quiet"]) == 0
    _assert_same_outputs(out, tmp_path / "again")
    assert _integrity(path) == "ok"


def test_cli_featurize_with_a_corrupt_cache_subprocess(tmp_path):
    cache_dir = tmp_path / "cache"
    cache_dir.mkdir()
    (cache_dir / CACHE_FILE).write_bytes(b"\x00garbage" * 4096)
    code, stdout, stderr = _finish(_start([*_featurize_argv(tmp_path / "o", 5), "--quiet"],
                                          cache_dir))  # fmt: skip
    assert code == 0, stderr
    assert "Traceback" not in stderr
    assert "corrupt" in stderr and str(cache_dir / CACHE_FILE) in stderr
    assert "5 molecules kept" in stdout


def test_unusable_cache_folder_is_one_line_exit_2(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("x")  # a file where the cache folder should be
    argv = [*_featurize_argv(tmp_path / "o", 3), "--quiet", "--cache-dir", str(blocker)]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and str(blocker) in err


# --- real processes -------------------------------------------------------------------------


def test_two_processes_share_one_cache(tmp_path):
    """Both runs start on an empty cache at the same moment and write in many transactions."""
    cache_dir = tmp_path / "cache"
    argv = [_featurize_argv(tmp_path / f"out{n}", 40) + ["--quiet"] for n in range(2)]
    procs = [_start(a, cache_dir, chunk=2, delay=0.005) for a in argv]
    results = [_finish(p) for p in procs]
    for code, _, stderr in results:
        assert code == 0, stderr
        assert "Traceback" not in stderr and "corrupt" not in stderr
    _assert_same_outputs(tmp_path / "out0", tmp_path / "out1")
    assert _integrity(cache_dir / CACHE_FILE) == "ok"
    code, _, stderr = _finish(_start(argv[0], cache_dir))
    summary = json.loads((tmp_path / "out0" / "summary.json").read_text())
    assert code == 0 and summary["conformers_computed"] == 0, stderr


def _kill_in_conformer_phase(
    argv: list[str], cache_dir: Path, total: int, chunk: int | None, delay: float
) -> int:
    """Start featurize, ``kill -9`` it once some but not all conformers are in the cache."""
    proc = _start(argv, cache_dir, chunk=chunk, delay=delay)
    path = cache_dir / CACHE_FILE
    first_chunk = chunk or 64
    deadline = time.monotonic() + 240
    rows = 0
    while proc.poll() is None and time.monotonic() < deadline:
        rows = _rows_in_cache(path)
        if first_chunk <= rows < total:
            proc.send_signal(signal.SIGKILL)
            break
        time.sleep(0.02)
    code, _, stderr = _finish(proc)
    assert code == -signal.SIGKILL, (
        f"the run was not killed half-way (exit {code}, {rows} cache rows of {total}): "
        f"results reach the cache only at the end\n{stderr[-2000:]}"
    )
    return rows


def _kill_rerun_compare(tmp_path: Path, dataset: str, limit: int, chunk, delay) -> None:
    cache_dir, fresh = tmp_path / "cache", tmp_path / "fresh"
    total = len(load_dataset(dataset, limit=limit))
    argv = [*_featurize_argv(tmp_path / "killed", limit, dataset), "--quiet"]
    rows = _kill_in_conformer_phase(argv, cache_dir, total, chunk, delay)
    assert rows > 0
    assert _integrity(cache_dir / CACHE_FILE) == "ok"

    # the re-run and a clean run into a fresh cache, side by side
    rerun = _start([*_featurize_argv(tmp_path / "rerun", limit, dataset), "--quiet"], cache_dir)
    clean = _start([*_featurize_argv(tmp_path / "clean", limit, dataset), "--quiet"], fresh)
    for code, _, stderr in (_finish(rerun), _finish(clean)):
        assert code == 0, stderr
        assert "Traceback" not in stderr and "corrupt" not in stderr
    _assert_same_outputs(tmp_path / "rerun", tmp_path / "clean")
    stats = json.loads((tmp_path / "rerun" / "summary.json").read_text())
    unique = json.loads((tmp_path / "clean" / "summary.json").read_text())["conformers_computed"]
    assert 0 < stats["conformer_cache_hits"] < unique  # the killed run's finished chunks
    assert stats["conformer_cache_hits"] + stats["conformers_computed"] == unique
    assert _integrity(cache_dir / CACHE_FILE) == "ok"


def test_killed_featurize_keeps_its_chunks_and_rerun_matches(tmp_path):
    """Fast version: 30 FreeSolv molecules, chunks of 8, killed after the first chunk."""
    _kill_rerun_compare(tmp_path, "freesolv", 30, chunk=8, delay=0.1)


@pytest.mark.slow
def test_killed_featurize_real_dataset(tmp_path):
    """ESOL (1128 molecules), the real chunk size, 1 worker, killed in the conformer phase."""
    _kill_rerun_compare(tmp_path, "esol", 1128, chunk=None, delay=0.0)


def test_opening_waits_for_a_process_that_is_creating_the_file(tmp_path):
    """The race of two first runs: one holds the write lock of the new file, still in
    rollback-journal mode, while the other switches it to WAL (SQLite does not wait there)."""
    import threading

    path = tmp_path / "c.sqlite"
    other = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    other.execute("BEGIN IMMEDIATE")
    other.execute("CREATE TABLE features (key TEXT PRIMARY KEY, header TEXT, blob BLOB)")
    threading.Timer(0.3, other.execute, args=("COMMIT",)).start()
    start = time.monotonic()
    cache = ArrayCache(path, "features")
    assert time.monotonic() - start >= 0.2  # it waited for the other writer
    cache.put_many([("k", {"v": np.zeros(2)}, {})])
    assert len(cache) == 1
    cache.close()
    other.close()
