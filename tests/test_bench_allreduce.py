"""``benchmarks/bench_allreduce.py`` runs its 2 gloo ranks and reports the step and the
all-reduce of as many values as the model has parameters (a small run: the script works)."""

from __future__ import annotations

import sys
from pathlib import Path

from mimoe_core.models.registry import create_model

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import bench_allreduce  # noqa: E402


def test_two_ranks_report_the_step_and_the_all_reduce(tmp_path):
    out = tmp_path / "allreduce.md"
    argv = ["--dataset", "freesolv", "--batch", "4", "--repeats", "1", "--out", str(out)]
    assert bench_allreduce.main(argv) == 0
    text = out.read_text()
    model = create_model({"backbone": "schnet", "variant": "sparse", "top_k": 2})
    assert f"{sum(p.numel() for p in model.parameters()):,} parameters" in text
    assert "4 molecules of freesolv drawn at random (seed 0), 2 per rank" in text
    assert "| forward + backward, slowest rank | " in text and " | 1.000 |" in text
    assert "| all-reduce, one flat tensor | " in text
    assert "| all-reduce, 1 bucket(s) of up to 25 MB | " in text
