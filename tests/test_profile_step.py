"""``benchmarks/profile_step.py``: what it counts as a host wait, where, and per step."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from types import SimpleNamespace

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import profile_step as profile  # noqa: E402


def _event(name, start, end=None, parent=None, self_us=1.0):
    return SimpleNamespace(
        name=name,
        time_range=SimpleNamespace(start=start, end=start + 1 if end is None else end),
        cpu_parent=parent,
        self_cpu_time_total=self_us,
    )


def test_the_call_site_is_the_innermost_frame_of_the_package():
    stack = [
        "/env/torch/_tensor.py(40): wrapped",
        "/repo/mimoe_core/models/radius_graph.py(41): _check",
        "/repo/mimoe_core/models/mimoe.py(351): _expert_embeddings",
    ]
    assert profile.call_site(stack) == "models/radius_graph.py(41): _check"
    assert profile.call_site([]) == "outside mimoe_core"


def test_windows_hold_their_ends_and_nothing_between_them():
    windows = [(0.0, 10.0), (20.0, 30.0)]
    inside = [profile.in_windows(t, windows) for t in (-1, 0, 10, 10.5, 20, 30, 31)]
    assert inside == [False, True, True, False, True, True, False]
    assert not profile.in_windows(5.0, [])


def test_only_the_steps_waits_count_divided_by_the_steps():
    caller = _event("/r/mimoe_core/models/mimoe.py(363): _expert_embeddings", 0, 1000)
    optimizer = _event("aten::_fused_adamw_", 80, 90)
    events = [
        _event(profile.STEP_RANGE, 0, 100),
        _event(profile.STEP_RANGE, 200, 300),
        _event("aten::nonzero", 10, parent=_event("aten::index", 10, parent=caller)),
        _event("aten::nonzero", 210, parent=caller),
        _event("aten::_local_scalar_dense", 220),  # e.g. in the backward pass's thread
        _event("aten::_local_scalar_dense", 85, parent=optimizer),
        _event("aten::nonzero", 150, parent=caller),  # between the steps: batch assembly
        _event("aten::mm", 50, self_us=3000.0),
        _event("aten::mm", 250, self_us=1000.0),
        _event("cudaStreamSynchronize", 260),
    ]
    summary = profile.summarize(events, steps=2, on_device=False)
    assert summary["waits"] == 1.5
    assert summary["waits_by_op"] == {"aten::nonzero": 1.0, "aten::_local_scalar_dense": 0.5}
    assert summary["waits_by_site"] == {
        "models/mimoe.py(363): _expert_embeddings": 1.0,
        "outside mimoe_core": 0.5,
    }
    assert summary["cpu_kernel_reads"] == 0.5  # the CPU's fused AdamW: no wait on a GPU
    assert summary["self_ms"]["aten::mm"] == 2.0
    assert summary["calls"]["aten::mm"] == 1.0
    assert summary["device_waits"] == 0.5
    assert profile.STEP_RANGE not in summary["self_ms"]
    # on CUDA the optimizer's reads would be waits
    assert profile.summarize(events, steps=2, on_device=True)["waits"] == 2.0


def test_a_real_step_counts_every_read_of_a_device_value(monkeypatch):
    """Profiled twice: a step that reads one more scalar counts one more wait per step."""
    args = argparse.Namespace(
        dataset="freesolv", backbone="schnet", batch=8, steps=2, device="cpu", jobs=1
    )
    torch.manual_seed(0)
    first = profile.profile_run(profile.build_run(args), args.steps)
    assert first["waits"] > 0
    assert first["waits_by_op"]["aten::nonzero"] >= 1  # the routing's dispatch, at least
    assert any(site.startswith("models/") for site in first["waits_by_site"])

    run = profile.build_run(args)
    forward = run.model.forward_batch

    def reads_a_scalar(*a, **k):
        out = forward(*a, **k)
        float(out.y.detach().sum())  # one more host read
        return out

    monkeypatch.setattr(run.model, "forward_batch", reads_a_scalar)
    second = profile.profile_run(run, args.steps)
    reads = "aten::_local_scalar_dense"
    assert second["waits_by_op"][reads] == first["waits_by_op"].get(reads, 0) + 1
    assert second["waits"] == first["waits"] + 1

    text = profile.render(second, argparse.Namespace(**vars(args)), ["# t", ""])
    assert f"**Host waits per training step: {second['waits']:.1f}**" in text
    assert f"| `{reads}` | {second['waits_by_op'][reads]:.1f} |" in text
