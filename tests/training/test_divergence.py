"""Steps with non-finite gradients are skipped and counted; an epoch of nothing else stops the
run with a clear error (fault injection: NaN losses in chosen steps). The same on two ranks:
``tests/training/test_distributed.py``."""

from __future__ import annotations

import math

import pandas as pd
import pytest
import torch
from ddp_fault import nan_losses_at
from tiny_training import TINY, quick

from mimoe_core.cli import main
from mimoe_core.training import TrainingDiverged, train, trainer


def _nan_losses_at(monkeypatch, steps: set[int]) -> None:
    """The training loss of these training steps (0-based, counted over the run) is NaN."""
    monkeypatch.setattr(trainer, "masked_loss", nan_losses_at(steps, trainer.masked_loss))


def _steps_taken(last: dict) -> int:
    """How many optimizer steps AdamW took (its most stepped parameter: an expert no molecule
    was routed to in a step takes none), from a ``last.pt``."""
    return max(int(state["step"]) for state in last["optimizer"]["state"].values())


@pytest.mark.parametrize("clip_norm", [10.0, 0.0])
def test_a_step_with_a_nan_loss_is_skipped_and_counted(
    freesolv40, tmp_path, monkeypatch, clip_norm
):
    ds, split = freesolv40
    _nan_losses_at(monkeypatch, {1})  # the second step of epoch 0
    with pytest.warns(UserWarning, match="epoch 0: 1 of 2 training steps skipped"):
        result = train(ds, split, TINY, quick(clip_norm=clip_norm), out_dir=tmp_path)
    assert result.history["skipped_steps"].tolist() == [1, 0]
    assert pd.read_csv(tmp_path / "history.csv")["skipped_steps"].tolist() == [1, 0]
    # taken, the NaN gradient would have made every weight NaN from then on
    assert all(torch.isfinite(p).all() for p in result.model.state_dict().values())
    assert math.isfinite(result.metrics["test"]["rmse"])
    last = torch.load(tmp_path / "last.pt", weights_only=True)
    assert _steps_taken(last) == 3  # 2 epochs of 2 steps, one skipped


def test_a_run_without_bad_steps_skips_none(freesolv40):
    ds, split = freesolv40
    assert train(ds, split, TINY, quick()).history["skipped_steps"].tolist() == [0, 0]


def test_an_epoch_of_only_bad_steps_stops_the_run_with_a_clear_error(
    freesolv40, tmp_path, monkeypatch
):
    ds, split = freesolv40
    _nan_losses_at(monkeypatch, {2, 3})  # both steps of epoch 1
    with pytest.raises(TrainingDiverged, match="all 2 training steps of epoch 1") as caught:
        train(ds, split, TINY, quick(epochs=3), out_dir=tmp_path)
    assert "the last checkpoint is from epoch 0" in str(caught.value)
    last = torch.load(tmp_path / "last.pt", weights_only=True)
    assert last["train_state"]["epoch"] == 1 and _steps_taken(last) == 2


def test_the_cli_reports_a_diverged_run_in_one_line(tmp_path, monkeypatch, capsys):
    _nan_losses_at(monkeypatch, set(range(10**6)))
    args = ["train", "--dataset", "freesolv", "--limit", "40", "--epochs", "2", "--hidden",
            "8", "--batch-size", "16", "--device", "cpu", "--split", "random", "--quiet",
            "--out", str(tmp_path / "run")]  # fmt: skip
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "training diverged: all 2 training steps of epoch 0" in err
    assert "nothing was trained" in err and "Traceback" not in err
