"""``benchmarks/bench_compile.py``: its run list, its rows, and (slow) one row end to end."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))
import bench_compile  # noqa: E402


def test_runs_name_datasets_and_their_backbones_in_order():
    pairs = bench_compile.parse_runs("freesolv:schnet,painn; bace:schnet;")
    assert pairs == [("freesolv", "schnet"), ("freesolv", "painn"), ("bace", "schnet")]
    assert bench_compile.parse_runs(bench_compile.RUNS)[0] == ("freesolv", "schnet")
    with pytest.raises(SystemExit, match="names no backbones"):
        bench_compile.parse_runs("freesolv")


def test_a_row_says_when_compiling_never_pays_off():
    row = {"dataset": "freesolv", "backbone": "schnet", "eager": 2.0, "compiled": 2.5,
           "ratio": 1.25, "compilation": 20.0, "ahead_after": None,
           "prediction_difference": 1e-6, "loss_difference": 0.0}  # fmt: skip
    assert bench_compile.table_row(row).startswith("| freesolv | schnet | 2.00 | 2.50 | 1.25 |")
    assert "| never |" in bench_compile.table_row(row)
    assert bench_compile.table_row(row).count("|") == bench_compile.COLUMNS.count("|")


@pytest.mark.slow
def test_one_row_end_to_end(tmp_path):
    out = tmp_path / "compile.md"
    bench_compile.main(["--runs", "freesolv:schnet", "--repeats", "1", "--out", str(out)])
    report = out.read_text()
    (row,) = [line for line in report.splitlines() if line.startswith("| freesolv |")]
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert float(cells[2]) > 0 and float(cells[3]) > 0
    assert float(cells[7]) < 1e-3  # the same weights predict the same, to rounding
