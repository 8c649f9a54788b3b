"""``benchmarks/diagnose_loss_spike.py`` records every training step's loss through a wrapper of
``trainer.masked_loss`` (a short run: the wrapper keeps up with the loss's signature)."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import diagnose_loss_spike  # noqa: E402


def test_one_epoch_records_its_steps(tmp_path, monkeypatch):
    monkeypatch.setenv("MIMOE_CACHE_DIR", str(tmp_path / "cache"))
    out = tmp_path / "spike.md"
    argv = ["--dataset", "freesolv", "--epochs", "1", "--out", str(out)]
    diagnose_loss_spike.main(argv)
    text = out.read_text()
    assert "| epoch | mean training loss |" in text and "\n| 0 | " in text
    assert ", 0 training steps per epoch" not in text  # the wrapper saw every step
    assert "| step | epoch | loss | max abs output | molecules |" in text
