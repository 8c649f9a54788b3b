"""A shared trunk through training, the run folder, prediction, fine-tuning and the CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from tiny_training import TINY, quick

from mimoe_core.trained import TrainedModel
from mimoe_core.training import train
from mimoe_core.training.trainer import TrainingRun

LEAN = {
    **TINY,
    "expert": {**TINY["expert"], "num_layers": 2},
    "shared_trunk": {"enabled": True, "layers": 1},
}


@pytest.fixture(scope="module")
def lean_run(freesolv40, tmp_path_factory):
    ds, split = freesolv40
    out = tmp_path_factory.mktemp("trunk") / "run"
    train(ds, split, LEAN, quick(epochs=2), out_dir=out)
    return out


def test_the_run_records_the_trunk_and_prediction_replays_it(lean_run):
    metrics = json.loads((lean_run / "metrics.json").read_text())
    assert metrics["model"]["shared_trunk_layers"] == 1
    trained = TrainedModel.load(lean_run)
    assert trained.model.trunk is not None and trained.model.trunk.num_layers == 1
    result = trained.predict(["CCO", "c1ccccc1O", "CC(=O)N"], n_jobs=1)
    assert result.ok.all() and np.isfinite(result.prediction).all()


def test_freezing_the_experts_holds_the_trunk_too(lean_run, freesolv40):
    ds, split = freesolv40
    theirs = TrainedModel.load(lean_run).model.state_dict()
    settings = quick(epochs=2, lr=1e-2, init_from=str(lean_run), freeze="experts")
    after = train(ds, split, settings=settings).model.state_dict()
    held = [k for k in after if k.startswith(("trunk.", "experts."))]
    assert any(k.startswith("trunk.") for k in held)
    assert all(torch.equal(after[k], theirs[k]) for k in held)
    assert any(not torch.equal(after[k], theirs[k]) for k in after if k.startswith("gate."))


def test_starting_a_trunk_model_from_independent_experts_is_an_architecture_mismatch(
    freesolv40, tmp_path
):
    ds, split = freesolv40
    independent = {**LEAN, "shared_trunk": {"enabled": False}}
    train(ds, split, independent, quick(epochs=1), out_dir=tmp_path / "source")
    with pytest.raises(ValueError, match="shared_trunk"):
        TrainingRun(ds, split, LEAN, quick(init_from=str(tmp_path / "source")))
