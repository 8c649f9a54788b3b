"""The learning-rate warmup: its ramp, the schedule after it, resume, bad input."""

from __future__ import annotations

import pandas as pd
import pytest
import torch
from tiny_training import TINY, quick

from mimoe_core.cli import main
from mimoe_core.training import TrainSettings, train
from mimoe_core.training.schedule import warmup_lr


def test_the_rate_rises_linearly_to_lr_and_is_lr_again_after_the_warmup():
    settings = TrainSettings(epochs=10, lr=1e-3, warmup_epochs=2)
    rates = [warmup_lr(settings, e, s, 4) for e in range(2) for s in range(4)]
    assert rates == pytest.approx([1e-3 * k / 8 for k in range(1, 9)])
    assert warmup_lr(settings, 2, 0, 4) == 1e-3  # even if the last step was left out
    assert warmup_lr(settings, 2, 1, 4) is None and warmup_lr(settings, 5, 0, 4) is None
    assert warmup_lr(TrainSettings(), 0, 0, 4) is None  # off by default


def test_training_uses_the_ramp_and_resume_continues_it(freesolv40, tmp_path, monkeypatch):
    ds, split = freesolv40
    seen: list[float] = []
    step = torch.optim.AdamW.step

    def recording_step(self, *args, **kwargs):
        seen.append(self.param_groups[0]["lr"])
        return step(self, *args, **kwargs)

    monkeypatch.setattr(torch.optim.AdamW, "step", recording_step)
    settings = quick(epochs=4, lr=1e-3, warmup_epochs=2, scheduler="none")
    full = train(ds, split, TINY, settings, out_dir=tmp_path / "full")
    per_epoch = len(seen) // 4
    ramp = seen[: 2 * per_epoch]
    assert ramp == pytest.approx([1e-3 * k / (2 * per_epoch) for k in range(1, 2 * per_epoch + 1)])
    assert seen[2 * per_epoch :] == [1e-3] * (2 * per_epoch)
    assert full.history["lr"].tolist() == pytest.approx([5e-4, 1e-3, 1e-3, 1e-3])
    # Stop inside the warmup (epoch 1 fails), then resume: the uninterrupted run.
    from mimoe_core.training import trainer

    original = trainer.TrainingRun.train_epoch

    def failing(self, epoch):
        if epoch == 1:
            raise KeyboardInterrupt
        return original(self, epoch)

    monkeypatch.setattr(trainer.TrainingRun, "train_epoch", failing)
    with pytest.raises(KeyboardInterrupt):
        train(ds, split, TINY, settings, out_dir=tmp_path / "cut")
    monkeypatch.setattr(trainer.TrainingRun, "train_epoch", original)
    resumed = train(ds, split, TINY, settings, out_dir=tmp_path / "cut", resume=True)
    pd.testing.assert_frame_equal(
        resumed.history.drop(columns="seconds"), full.history.drop(columns="seconds")
    )


def test_warmup_outside_the_run_is_an_error(capsys):
    with pytest.raises(ValueError, match="warmup_epochs"):
        TrainSettings(epochs=5, warmup_epochs=5)
    code = main(["train", "--dataset", "freesolv", "--limit", "20", "--epochs", "3",
                 "--warmup-epochs", "3", "--out", "unused", "--quiet"])  # fmt: skip
    assert code == 2 and "warmup_epochs" in capsys.readouterr().err
