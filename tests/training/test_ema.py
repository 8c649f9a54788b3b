"""The moving average of the weights: its arithmetic, its use in training, resume, bad input."""

from __future__ import annotations

import pandas as pd
import pytest
import torch
from tiny_training import TINY, quick

from mimoe_core.cli import main
from mimoe_core.training import TrainSettings, train
from mimoe_core.training.ema import WeightAverage


def test_the_average_follows_its_formula_and_applied_restores_the_weights():
    model = torch.nn.Linear(1, 1, bias=False)
    torch.nn.init.constant_(model.weight, 1.0)
    ema = WeightAverage(model, decay=0.9)
    expected = 1.0
    for step, value in enumerate([3.0, -1.0, 5.0], start=1):
        torch.nn.init.constant_(model.weight, value)
        ema.update(model)
        d = min(0.9, (1 + step) / (10 + step))
        expected = d * expected + (1 - d) * value
    assert ema.shadow["weight"].item() == pytest.approx(expected)
    with ema.applied(model):
        assert model.weight.item() == pytest.approx(expected)
    assert model.weight.item() == 5.0  # its own weights are back


def test_training_keeps_the_averaged_weights_and_resume_continues_the_average(freesolv40, tmp_path):
    ds, split = freesolv40
    settings = quick(epochs=4, ema_decay=0.9)
    full = train(ds, split, TINY, settings, out_dir=tmp_path / "full")
    plain = train(ds, split, TINY, quick(epochs=4, ema_decay=0.0))
    assert full.metrics["settings"]["ema_decay"] == 0.9
    assert not full.history["val_rmse"].equals(plain.history["val_rmse"])
    # Stop after two epochs, then resume: the same history as the uninterrupted run.
    train(ds, split, TINY, quick(epochs=2, ema_decay=0.9), out_dir=tmp_path / "cut")
    last = torch.load(tmp_path / "cut" / "last.pt", weights_only=True)
    assert last["ema"]["updates"] > 0
    resumed = train(ds, split, TINY, settings, out_dir=tmp_path / "cut", resume=True)
    pd.testing.assert_frame_equal(
        resumed.history.drop(columns="seconds"), full.history.drop(columns="seconds")
    )
    assert resumed.metrics["test"] == full.metrics["test"]


def test_a_decay_outside_zero_one_is_an_error(capsys):
    with pytest.raises(ValueError, match="ema_decay"):
        TrainSettings(ema_decay=1.0)
    code = main(["train", "--dataset", "freesolv", "--limit", "20", "--ema", "1.5", "--out",
                 "unused", "--quiet"])  # fmt: skip
    assert code == 2 and "ema_decay" in capsys.readouterr().err


def test_a_weight_that_does_not_move_stays_exact_and_buffers_are_copied():
    model = torch.nn.BatchNorm1d(3)  # parameters weight/bias, float buffers running_mean/var
    torch.nn.init.constant_(model.weight, 0.1)  # 0.1 is not exact in binary
    ema = WeightAverage(model, decay=0.999)
    for step in range(200):
        model.running_mean.fill_(float(step))  # a buffer that changes every step
        ema.update(model)
    assert torch.equal(ema.shadow["weight"], model.weight.detach())  # no rounding drift
    assert torch.equal(ema.shadow["running_mean"], model.running_mean)  # the last, not an average
    assert ema.shadow["num_batches_tracked"] == model.num_batches_tracked


def test_the_average_is_the_default_and_the_cli_agrees():
    from mimoe_core.cli import build_parser

    args = build_parser().parse_args(["train", "--dataset", "freesolv", "--out", "unused"])
    assert TrainSettings().ema_decay == args.ema == 0.999
