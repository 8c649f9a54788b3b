"""``benchmarks/bench_loader.py``: its report's arithmetic, and (slow) a whole small run."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import bench_loader as bench  # noqa: E402

INLINE, AHEAD = bench.CASES


def test_the_report_gives_the_time_per_molecule_and_pairs_the_ratios_within_rounds():
    # Round 1: the worker's run 1.2x the in-line one; round 2: 0.9x. The paired median is
    # 1.05x, while the rows' medians give 165 / 150 = 1.10x.
    found = {
        (32, INLINE): [{"per_second": 100.0, "pss": 2**29}, {"per_second": 200.0, "pss": 2**29}],
        (32, AHEAD): [{"per_second": 120.0, "pss": 2**30}, {"per_second": 180.0, "pss": 2**30}],
    }
    args = argparse.Namespace(molecules=64, batches=[32], rounds=2)
    text = bench.render({32: 25_000.0}, found, args, ["--rounds", "2"])
    assert "| 32 | 25,000 | 40.0 | 40% |" in text  # 40 us of a molecule's 100 us
    assert "| 32 | in line (default) | 150.0 | 100, 200 | 512 |" in text
    assert "| 32 | 1 loader worker | 150.0 | 120, 180 | 1024 |" in text
    assert "| 32 | 1.05x | 1.20, 0.90 |" in text
    assert "- command: `python benchmarks/bench_loader.py --rounds 2`" in text


@pytest.mark.slow  # featurizes 70 rows
def test_assembly_is_timed_at_each_batch_size():
    rates = bench.assembly_rates(16, [4, 16], repeats=1)
    assert set(rates) == {4, 16} and all(rate > 0 for rate in rates.values())


@pytest.mark.slow
def test_a_small_run_measures_every_case(tmp_path):
    out = tmp_path / "loader.md"
    assert (
        bench.main(["--molecules", "32", "--batches", "16", "--rounds", "1", "--out", str(out)])
        == 0
    )
    text = out.read_text()
    for case in bench.CASES:
        assert f"| 16 | {case} | " in text
