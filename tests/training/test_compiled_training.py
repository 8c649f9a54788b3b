"""``TrainSettings(compile=True)`` / ``mimoe train --compile``: the experts' blocks compiled
for the run, the same training to rounding, a plain model returned."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from tiny_training import TINY, quick

from mimoe_core.cli import main
from mimoe_core.models import compiled
from mimoe_core.models.compiled import is_compiled
from mimoe_core.training import trainer
from mimoe_core.training.trainer import TrainingRun


@pytest.fixture
def traced_compile(monkeypatch):
    """``compile=True`` compiles with ``aot_eager`` (the traced graph without inductor's
    build time), and records which experts were compiled during the run."""
    seen = []

    def compile_and_record(model):
        count = compiled.compile_experts(model, backend="aot_eager")
        seen.append([is_compiled(e) for e in model.experts])
        return count

    monkeypatch.setattr(trainer, "compile_experts", compile_and_record)
    return seen


def _test_rmse(result) -> float:
    return result.metrics["test"]["rmse"]


def test_a_compiled_run_trains_like_an_eager_one_and_returns_a_plain_model(
    freesolv40, traced_compile, tmp_path
):
    ds, split = freesolv40
    eager = trainer.train(ds, split, TINY, quick(epochs=2))
    run = TrainingRun(ds, split, TINY, quick(epochs=2, compile=True), out_dir=tmp_path)
    assert traced_compile == [[True] * 5]
    assert all(is_compiled(e) for e in run.model.experts)
    result = run.fit()
    assert not any(is_compiled(e) for e in result.model.experts)
    np.testing.assert_allclose(_test_rmse(result), _test_rmse(eager), rtol=1e-5)
    eager_history = eager.history.drop(columns="seconds")
    np.testing.assert_allclose(
        result.history.drop(columns="seconds").to_numpy(), eager_history.to_numpy(), rtol=1e-4
    )
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["settings"]["compile"] is True
    state = torch.load(tmp_path / "model.pt", weights_only=True)["state_dict"]
    assert state.keys() == eager.model.state_dict().keys()


def test_mimoe_train_compile_reaches_the_settings(tmp_path, monkeypatch, capsys):
    captured = []

    def stop_at_training(dataset, split, config, settings, **kwargs):
        captured.append(settings.compile)
        raise KeyboardInterrupt  # not an error the CLI reports: it ends the call here

    monkeypatch.setattr("mimoe_core.training.train", stop_at_training)
    args = ["train", "--dataset", "freesolv", "--limit", "30", "--epochs", "1"]
    for extra in ([], ["--compile"], ["--compile", "--quiet"]):
        with pytest.raises(KeyboardInterrupt):
            main([*args, *extra, "--out", str(tmp_path / f"run{len(extra)}")])
        said = capsys.readouterr().out
        # the long first epoch is announced, unless --quiet
        assert ("first epoch" in said) == (extra == ["--compile"])
    assert captured == [False, True, True]


@pytest.mark.slow
def test_inductor_compiled_training_matches_eager_and_repeats_itself(freesolv40):
    ds, split = freesolv40
    eager = trainer.train(ds, split, TINY, quick(epochs=3))
    runs = [trainer.train(ds, split, TINY, quick(epochs=3, compile=True)) for _ in range(2)]
    np.testing.assert_allclose(_test_rmse(runs[0]), _test_rmse(eager), rtol=1e-3)
    assert _test_rmse(runs[0]) == _test_rmse(runs[1])  # deterministic under the seed
    for a, b in zip(runs[0].model.parameters(), runs[1].model.parameters(), strict=True):
        assert torch.equal(a, b)
