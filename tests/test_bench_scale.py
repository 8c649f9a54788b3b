"""``bench_scale.measure_together``: commands at once, their peak memory summed, failures named."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))
import bench_scale  # noqa: E402

# Each holds about 200 MB for a second, so two at once peak near 400 MB.
HOLD = [sys.executable, "-c", "import time; b = bytearray(200 * 2**20); b[::4096] = b'x' * "
        "len(b[::4096]); time.sleep(1.0)"]  # fmt: skip


def test_two_commands_run_at_once_and_their_memory_adds_up(tmp_path):
    logs = [tmp_path / "a.log", tmp_path / "b.log"]
    found = bench_scale.measure_together([HOLD, HOLD], dict(os.environ), logs)
    alone = bench_scale.measure(HOLD, dict(os.environ), tmp_path / "c.log")
    assert found["code"] == 0
    assert found["seconds"] < 1.5 * alone["seconds"]  # not one after the other
    assert alone["peak_rss"] > 200 * 2**20
    assert found["peak_rss"] > 1.6 * alone["peak_rss"]


def test_a_failing_command_is_named_with_its_log(tmp_path):
    fail = [sys.executable, "-c", "import sys; print('broken input'); sys.exit(3)"]
    with pytest.raises(RuntimeError, match=r"failed \(3\)[\s\S]*broken input"):
        bench_scale.measure_together(
            [HOLD, fail], dict(os.environ), [tmp_path / "a", tmp_path / "b"]
        )
