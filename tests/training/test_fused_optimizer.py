"""The fused optimizer kernel: on by default, the same update as torch's per-tensor loop,
checkpoints that resume across the two, and the switch from the CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from tiny_training import TINY, quick

from mimoe_core.cli import build_parser, main
from mimoe_core.training import TrainSettings, train
from mimoe_core.training.trainer import TrainingRun, fused_option


def test_runs_use_the_fused_kernel_by_default_and_the_loop_when_told(freesolv40):
    ds, split = freesolv40
    fused = TrainingRun(ds, split, TINY, quick())
    loop = TrainingRun(ds, split, TINY, quick(fused_optimizer=False))
    assert TrainSettings().fused_optimizer is True
    assert fused.optimizer.defaults["fused"] is True
    assert not loop.optimizer.defaults["fused"]


def test_the_kernel_is_asked_for_only_where_torch_has_it():
    on_cpu = [{"params": [torch.zeros(2, requires_grad=True)]}]
    assert fused_option(on_cpu, fused=True) == {"fused": True}
    assert fused_option(on_cpu, fused=False) == {}
    on_meta = [{"params": [torch.zeros(2, device="meta", requires_grad=True)]}]
    assert fused_option(on_meta, fused=True) == {}  # no fused kernel there: the loop
    assert fused_option([{"params": []}], fused=True) == {}


def test_the_fused_kernel_makes_the_update_of_the_loop_to_rounding(freesolv40):
    ds, split = freesolv40
    loop = train(ds, split, TINY, quick(epochs=3, fused_optimizer=False))
    fused = train(ds, split, TINY, quick(epochs=3))
    for name, weight in loop.model.state_dict().items():
        assert torch.allclose(fused.model.state_dict()[name], weight, rtol=1e-4, atol=1e-6), name
    # Not the same code: the two runs are not equal bit for bit (else this test proves nothing).
    assert any(
        not torch.equal(fused.model.state_dict()[name], weight)
        for name, weight in loop.model.state_dict().items()
    )
    np.testing.assert_allclose(fused.history["val_rmse"], loop.history["val_rmse"], rtol=1e-4)


def test_a_run_checkpointed_with_the_loop_resumes_with_the_fused_kernel(freesolv40, tmp_path):
    ds, split = freesolv40
    train(ds, split, TINY, quick(epochs=2, fused_optimizer=False), out_dir=tmp_path)
    resumed = train(ds, split, TINY, quick(epochs=4), out_dir=tmp_path, resume=True)
    straight = train(ds, split, TINY, quick(epochs=4, fused_optimizer=False))
    assert len(resumed.history) == 4
    # The optimizer's moments and step counts carried over: the same trajectory to rounding.
    np.testing.assert_allclose(resumed.history["val_rmse"], straight.history["val_rmse"], rtol=1e-4)


def test_the_cli_switches_the_kernel_off_and_records_it(tmp_path, capsys):
    args = build_parser().parse_args(["train", "--dataset", "freesolv", "--out", "x"])
    assert args.no_fused_optimizer is False
    out = tmp_path / "run"
    code = main([
        "train", "--dataset", "freesolv", "--limit", "40", "--epochs", "1", "--quiet",
        "--hidden", "8", "--device", "cpu", "--split", "random", "--no-fused-optimizer",
        "--out", str(out),
    ])  # fmt: skip
    assert code == 0, capsys.readouterr()
    assert json.loads((out / "metrics.json").read_text())["settings"]["fused_optimizer"] is False


@pytest.mark.parametrize("fused", [True, False])
def test_two_runs_from_one_seed_are_equal_with_either_kernel(freesolv40, fused):
    ds, split = freesolv40
    first = train(ds, split, TINY, quick(fused_optimizer=fused))
    second = train(ds, split, TINY, quick(fused_optimizer=fused))
    for name, weight in first.model.state_dict().items():
        assert torch.equal(second.model.state_dict()[name], weight), name
