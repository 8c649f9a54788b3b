"""``bench_scale.measure_together``: commands at once, their peak memory summed, failures named."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))
import bench_scale  # noqa: E402

# Each holds about 200 MB for 1.5 s, printing the wall clock when it starts and stops holding.
HOLD = [sys.executable, "-c", "import time; b = bytearray(200 * 2**20); b[::4096] = b'x' * "
        "len(b[::4096]); print(time.time(), flush=True); time.sleep(1.5); "
        "print(time.time())"]  # fmt: skip


def _held(log: Path) -> tuple[float, float]:
    start, end = (float(line) for line in log.read_text().split())
    return start, end


def test_two_commands_run_at_once_and_their_memory_adds_up(tmp_path):
    logs = [tmp_path / "a.log", tmp_path / "b.log"]
    found = bench_scale.measure_together([HOLD, HOLD], dict(os.environ), logs)
    alone = bench_scale.measure(HOLD, dict(os.environ), tmp_path / "c.log")
    assert found["code"] == 0
    # Not one after the other: both held their memory at the same moment. (Comparing wall
    # times instead failed on a loaded 2-core machine, where starting Python is slow.)
    (start_a, end_a), (start_b, end_b) = _held(logs[0]), _held(logs[1])
    assert max(start_a, start_b) < min(end_a, end_b)
    assert alone["peak_rss"] > 200 * 2**20
    assert found["peak_rss"] > 1.6 * alone["peak_rss"]


def test_a_failing_command_is_named_with_its_log(tmp_path):
    fail = [sys.executable, "-c", "import sys; print('broken input'); sys.exit(3)"]
    with pytest.raises(RuntimeError, match=r"failed \(3\)[\s\S]*broken input"):
        bench_scale.measure_together(
            [HOLD, fail], dict(os.environ), [tmp_path / "a", tmp_path / "b"]
        )


def test_a_failed_part_keeps_the_rows_of_the_others(tmp_path, monkeypatch):
    """A QM9 run that failed at its last part once lost every row measured before it."""
    row = {"step": "train Tox21, 1 process", "processes": 1, "molecules": 10, "per_second": 5.0,
           "seconds": 2.0, "peak_rss": 2**30}  # fmt: skip

    def fails(*args, **kwargs):
        raise RuntimeError("mimoe featurize --dataset qm9 failed (2); see qm9.log:\nno qm9 here")

    monkeypatch.setattr(bench_scale, "train_rows", lambda *a, **k: [row])
    monkeypatch.setattr(bench_scale, "qm9_rows", fails)
    monkeypatch.setattr(bench_scale.importlib.util, "find_spec", lambda name: object())
    out = tmp_path / "scale.md"
    argv = ["--parts", "train,qm9", "--work", str(tmp_path / "w"), "--out", str(out)]
    assert bench_scale.main(argv) == 1
    text = out.read_text()
    assert "| train Tox21, 1 process | 1 | 10 | 5.0 |" in text
    assert "**Part qm9 failed**, its rows are missing: mimoe featurize" in text
    assert "no qm9 here" in text


def test_qm9_parts_stop_before_anything_runs_without_qm9pack(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(bench_scale.importlib.util, "find_spec", lambda name: None)
    monkeypatch.setattr(bench_scale, "train_rows", lambda *a, **k: pytest.fail("it ran"))
    with pytest.raises(SystemExit) as stop:
        bench_scale.main(["--parts", "train,qm9", "--work", str(tmp_path), "--out", "x.md"])
    assert stop.value.code == 2
    assert "pip install 'mimoe[qm9]'" in capsys.readouterr().err
