"""``benchmarks/bench_ddp_step.py``: its report's arithmetic, and (slow) a whole small run."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import bench_ddp_step as bench  # noqa: E402


def test_the_report_takes_medians_and_pairs_the_ratios_within_rounds():
    # Two rounds: the 2-rank default is 2x the 1-process fused rate in round 1 and 1.5x in
    # round 2, so the paired median is 1.75x, while the rows' medians give 325 / 200 = 1.62x.
    rates = {(32, case): [100.0, 300.0] for case in bench.CASES}
    rates[(32, bench.FUSED)] = [100.0, 300.0]
    rates[(32, bench.NOW)] = [200.0, 450.0]
    args = argparse.Namespace(batches=[32], molecules=64, rounds=2)
    text = bench.render(rates, {"loop": 8.0, "fused": 2.0}, args, "python benchmarks/x.py")
    assert (
        "| 32 | 2 gloo ranks, fused, buffers once (default) | 325.0 | 1.62x | 1.62x | 200, 450 |"
        in text
    )
    label = "2 ranks, default / 1 process, fused (issue 17's target: >= 1.6)"
    assert f"| 32 | {label} | 1.75x | 2.00, 1.50 |" in text
    assert "per-tensor loop 8.00 ms, fused kernel 2.00 ms (0.25x)" in text
    assert "- command: `python benchmarks/x.py`" in text


def test_the_dataset_rows_hold_the_training_molecules_asked_for():
    for molecules in (1, 64, 1024):
        assert int(0.8 * bench._rows(molecules)) >= molecules


def test_the_optimizer_step_is_timed_with_the_loop_and_the_kernel():
    assert bench.optimizer_step_ms(False, repeats=3) > 0
    assert bench.optimizer_step_ms(True, repeats=3) > 0


@pytest.mark.slow
def test_a_small_run_measures_every_case(tmp_path):
    out = tmp_path / "ddp_step.md"
    argv = ["--molecules", "32", "--batches", "16", "--rounds", "1", "--out", str(out)]
    assert bench.main(argv) == 0
    text = out.read_text()
    for case in bench.CASES:
        assert f"| 16 | {case} | " in text
    assert "One AdamW step over MI-MoE(SchNet)'s parameters" in text
