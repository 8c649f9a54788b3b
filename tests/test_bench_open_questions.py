"""``benchmarks/bench_open_questions.py``: what its training runs are told (fast), and each
question's run function training one epoch (slow)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))
import bench_open_questions as bench  # noqa: E402


def test_runs_take_the_epochs_and_compile_only_when_asked():
    assert bench.training_options(argparse.Namespace(epochs=100, compile=False)) == {"epochs": 100}
    assert bench.training_options(argparse.Namespace(epochs=7, compile=True)) == {
        "epochs": 7,
        "compile": True,
    }


@pytest.mark.slow
def test_every_question_trains_a_run_with_the_options_it_is_given():
    eager = {"epochs": 1}
    rows = [
        bench.gate_backbone_run("freesolv", 0, "schnet", "transformer", eager),
        bench.learnable_cutoffs_run("freesolv", 0, eager, "held"),
        bench.shared_trunk_run("freesolv", 0, eager, "trunk at 2 Å"),
        bench.conformer_ensemble_run("freesolv", 0, eager),
    ]
    assert [row["question"] for row in rows] == [
        "gate_backbone", "learnable_cutoffs", "shared_trunk", "conformers"
    ]  # fmt: skip
    assert all(row["epochs_run"] == 1 and "compiled" not in row for row in rows)
    assert all("fused_optimizer" not in row for row in rows)  # pinned: EARLIER_DEFAULTS
    faster = {"epochs": 1, "compile": True}
    compiled = bench.gate_backbone_run("freesolv", 0, "schnet", "mlp", faster)
    assert compiled["compiled"] is True and compiled["epochs_run"] == 1
