"""``bench_model`` and ``_timing``: variants take turns fairly, each timed on every batch."""

from __future__ import annotations

import sys
from pathlib import Path

import torch
from torch_geometric.data import Batch

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))
import bench_model  # noqa: E402
from _timing import epochs_side_by_side, turn_order  # noqa: E402


def test_each_variant_goes_first_and_last_once_per_round():
    for count in (1, 2, 5):
        turns = [turn_order(count, t) for t in range(count)]
        assert all(sorted(order) == list(range(count)) for order in turns)
        assert sorted(order[0] for order in turns) == list(range(count))
        assert sorted(order[-1] for order in turns) == list(range(count))


def test_interleaved_timing_steps_every_variant_on_every_batch(freesolv40, monkeypatch):
    dataset, _ = freesolv40
    batches = [Batch.from_data_list(dataset.data_list[i : i + 8]) for i in (0, 8)]
    seen = []
    original = bench_model.Variant.timed_step

    def recording(self, batch):
        seen.append((id(self), batch.num_graphs))
        return original(self, batch)

    monkeypatch.setattr(bench_model.Variant, "timed_step", recording)
    expert = {"hidden_channels": 16, "num_layers": 1}
    configs = {
        "sparse": {"backbone": "schnet", "variant": "sparse", "expert": expert},
        "worst": {"backbone": "schnet", "variant": "sparse", "expert": expert,
                  "force_largest": True},
    }  # fmt: skip
    result = bench_model.time_interleaved(configs, batches, torch.device("cpu"), repeats=2)
    assert list(result) == ["sparse", "worst"]
    assert len(seen) == 2 * 2 * 2  # variants x batches x repeats
    assert seen[0][0] != seen[2][0]  # the second turn starts with the other variant
    # forced onto the two largest cutoffs, every molecule reaches experts 4 and 5 only
    assert result["worst"]["usage"] == [0.0, 0.0, 0.0, 1.0, 1.0]
    assert all(r["seconds"] > 0 and r["params"] > 0 for r in result.values())


def test_epochs_side_by_side_rotates_and_averages_routing():
    calls = []

    class FakeRun:
        device = torch.device("cpu")

        def __init__(self, name, shares):
            self.name, self.shares = name, shares
            self.model = type("M", (), {"num_experts": len(shares)})()

        def train_epoch(self, epoch):
            calls.append((epoch, self.name))
            return {f"usage_{e + 1}": u * (1 + epoch % 2) for e, u in enumerate(self.shares)}

    runs = {"a": FakeRun("a", [0.5, 0.25]), "b": FakeRun("b", [0.0, 1.0])}
    median, usage, warmup, losses = epochs_side_by_side(runs, repeats=2)
    assert set(warmup) == {"a", "b"} and all(v >= 0 for v in warmup.values())
    assert all(len(values) == 3 for values in losses.values())
    assert set(median) == {"a", "b"} and all(v >= 0 for v in median.values())
    assert [name for _, name in calls] == ["a", "b", "b", "a", "a", "b"]
    # the warm-up epoch 0 is left out: epochs 1 and 2 scale the shares by 2 and 1
    assert usage == {"a": [0.75, 0.375], "b": [0.0, 1.5]}
