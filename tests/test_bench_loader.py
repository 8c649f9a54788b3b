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
    args = argparse.Namespace(molecules=64, batches=[32], rounds=2, memory_molecules=1000)
    assembly = {"pack_seconds": 0.012, 32: {"one by one": 25_000.0, "packed": 100_000.0}}
    memory = {
        "one by one": {"worker_uss": 3 * 2**20, "packed_copy": 0},
        "packed": {"worker_uss": 2**20, "packed_copy": 2**21},
    }
    shard_assembly = {32: {"one by one": 20_000.0, "packed": 50_000.0}}
    text = bench.render(assembly, shard_assembly, memory, found, args, ["--rounds", "2"])
    assert "| 32 | 50.0 | 20.0 | 2.5x |" in text  # from shards
    # 40 us one by one, 10 us packed: a tenth of a molecule's 100 us
    assert "| 32 | 25,000 | 40.0 | 100,000 | 10.0 | 4.0x | 10.0% |" in text
    assert "packing the 64 molecules once took 12 ms" in text
    assert "| one by one | 3 | 3,146 | 0 |" in text  # 3 MiB over 1,000 molecules
    assert "| packed | 1 | 1,049 | 2 |" in text
    assert "| 32 | in line (default) | 150.0 | 100, 200 | 512 |" in text
    assert "| 32 | 1 loader worker | 150.0 | 120, 180 | 1024 |" in text
    assert "| 32 | 1.05x | 1.20, 0.90 |" in text
    assert "- command: `python benchmarks/bench_loader.py --rounds 2`" in text


@pytest.mark.slow  # featurizes 70 rows
def test_assembly_is_timed_at_each_batch_size_and_a_worker_is_measured(tmp_path):
    train = bench._training_molecules(16)
    rates = bench.assembly_rates(train, [4, 16], repeats=1)
    assert set(rates) == {"pack_seconds", 4, 16}
    assert all(rate > 0 for batch in (4, 16) for rate in rates[batch].values())
    shard_rates = bench.shard_assembly_rates(16, [4, 16], tmp_path, repeats=1)
    assert set(shard_rates) == {4, 16}
    assert all(rate > 0 for rates in shard_rates.values() for rate in rates.values())
    memory = bench.worker_memory(train, 200, batch=64)
    assert set(memory) == {"one by one", "packed"}
    assert all(sizes["worker_uss"] > 0 for sizes in memory.values())
    assert memory["one by one"]["packed_copy"] == 0 < memory["packed"]["packed_copy"]


@pytest.mark.slow
def test_a_small_run_measures_every_case(tmp_path):
    out = tmp_path / "loader.md"
    argv = ["--molecules", "32", "--batches", "16", "--rounds", "1",
            "--memory-molecules", "300", "--out", str(out)]  # fmt: skip
    assert bench.main(argv) == 0
    text = out.read_text()
    for case in bench.CASES:
        assert f"| 16 | {case} | " in text
