"""``benchmarks/bench_shard_index.py`` measures the memory of the shard writer's duplicate
index before and now, beside the table's (a small run: the script works)."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import bench_shard_index  # noqa: E402


def test_a_small_run_reports_both_indexes_per_molecule(tmp_path):
    out = tmp_path / "index.md"
    args = ["--datasets", "freesolv", "--limit", "80", "--out", str(out)]
    assert bench_shard_index.main(args) == 0
    row = next(line for line in out.read_text().splitlines() if line.startswith("| freesolv"))
    cells = [cell.strip() for cell in row.strip("|").split("|")]
    assert cells[1] == "80"
    table, before, now, ratio = (float(cell) for cell in cells[2:])
    assert table > 0 and before > 0 and now > 0
    assert abs(ratio - now / before) < 0.02  # the bytes are rounded to whole numbers
