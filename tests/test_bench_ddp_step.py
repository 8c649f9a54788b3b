"""``benchmarks/bench_ddp_step.py``: its report's arithmetic, and (slow) a whole small run."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import bench_ddp_step as bench  # noqa: E402


def test_the_report_takes_medians_and_pairs_the_ratios_within_rounds():
    # Two rounds: the 2-rank default is 2x the 1-process rate in round 1 and 1.5x in round 2,
    # so the paired median is 1.75x, while the rows' medians give 325 / 200 = 1.62x.
    rates = {(32, case): [100.0, 300.0] for case in bench.CASES}
    rates[(32, bench.NOW)] = [200.0, 450.0]
    args = argparse.Namespace(batches=[32], molecules=64, rounds=2)
    text = bench.render(rates, ["| 32 | 2 | 1.00 % | 0.50 % |"], args, "python benchmarks/x.py")
    assert "| 32 | 2 gloo ranks (default) | 325.0 | 1.62x | 200, 450 |" in text
    label = "2 ranks / 1 process (issue 17's target: >= 1.6)"
    assert f"| 32 | {label} | 1.75x | 2.00, 1.50 |" in text
    assert "| 32 | 2 ranks: default / snake-order deal | 1.75x | 2.00, 1.50 |" in text
    assert text.rstrip().endswith("| 32 | 2 | 1.00 % | 0.50 % |")
    assert "- command: `python benchmarks/x.py`" in text


def test_the_deal_table_compares_the_slowest_rank_of_both_deals():
    # snake: 10, 7, 6 against 9, 8, 1 (23 and 18); by size: 21 and 20, over a mean of 20.5
    sizes = np.array([10, 9, 8, 7, 6, 1])
    assert bench.snake_deal(sizes, 2).tolist() == [0, 1, 1, 0, 0, 1]
    rows = bench.deal_balance(sizes, [6], len(sizes))
    assert rows[0] == "| 6 | 2 | 12.20 % | 2.44 % |"
    assert [row.split(" | ")[1] for row in rows] == ["2", "4"]  # 8 ranks: more than 6


def test_the_dataset_rows_hold_the_training_molecules_asked_for():
    for molecules in (1, 64, 1024):
        assert int(0.8 * bench._rows(molecules)) >= molecules


@pytest.mark.slow
def test_a_small_run_measures_every_case(tmp_path):
    out = tmp_path / "ddp_step.md"
    argv = ["--molecules", "32", "--batches", "16", "--rounds", "1", "--out", str(out)]
    assert bench.main(argv) == 0
    text = out.read_text()
    for case in bench.CASES:
        assert f"| 16 | {case} | " in text
    assert "| 16 | 2 | " in text  # the deal table
