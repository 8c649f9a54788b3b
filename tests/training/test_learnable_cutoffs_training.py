"""Learnable cutoffs through training, the run folder, prediction, ensembles and the CLI."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from tiny_training import TINY, quick

from mimoe_core.cli import main
from mimoe_core.ensemble import Ensemble
from mimoe_core.run_folder import cutoff_columns, load_run
from mimoe_core.trained import TrainedModel
from mimoe_core.training import train, train_ensemble
from mimoe_core.training.trainer import TrainingRun
from mimoe_viz import training_curves_figure, training_curves_mpl

LEARNABLE = {**TINY, "learnable_cutoffs": {"enabled": True, "upper": 5.0}}
SMILES = ["CCO", "c1ccccc1O", "CC(=O)N"]


@pytest.fixture(scope="module")
def learnable_run(freesolv120, tmp_path_factory):
    """A FreeSolv run with learnable cutoffs; a high learning rate moves them visibly."""
    ds, split = freesolv120
    out = tmp_path_factory.mktemp("learnable") / "run"
    train(ds, split, LEARNABLE, quick(epochs=3, lr=2e-2), out_dir=out)
    return out


def test_the_run_records_the_learned_cutoffs_and_their_history(learnable_run):
    metrics = json.loads((learnable_run / "metrics.json").read_text())
    learned = metrics["model"]["learned_cutoffs"]
    assert metrics["model"]["initial_cutoffs"] == [2.0, 2.5, 3.0, 3.5, 4.0]
    assert metrics["model"]["cutoffs"] == learned
    assert len(learned) == 5 and all(1.0 < c < 5.0 for c in learned)
    assert np.all(np.diff(learned) > 0)
    assert np.abs(np.subtract(learned, [2.0, 2.5, 3.0, 3.5, 4.0])).max() > 0.01  # they moved
    history = pd.read_csv(learnable_run / "history.csv")
    columns = cutoff_columns(history)
    assert columns == [f"cutoff_{e}" for e in range(1, 6)]
    # the model kept is the best epoch's, and so are its cutoffs
    best = history.loc[history["epoch"] == metrics["best_epoch"], columns].to_numpy()[0]
    np.testing.assert_allclose(best, learned, rtol=1e-6)


def test_prediction_uses_the_learned_cutoffs(learnable_run):
    trained = TrainedModel.load(learnable_run)
    metrics = json.loads((learnable_run / "metrics.json").read_text())
    assert trained.model.cutoffs == pytest.approx(metrics["model"]["learned_cutoffs"])
    result = trained.predict(SMILES, n_jobs=1)
    assert result.cutoffs == pytest.approx(metrics["model"]["learned_cutoffs"])
    assert np.isfinite(result.prediction[result.ok]).all()


def test_the_training_curves_show_the_cutoffs_over_the_epochs(learnable_run):
    run = load_run(learnable_run)
    fig = training_curves_figure(run)
    cutoff_traces = [t for t in fig.data if t.legendgroup == "cutoffs"]
    assert len(cutoff_traces) == 5
    for e, trace in enumerate(cutoff_traces):
        np.testing.assert_allclose(trace.y, run.history[f"cutoff_{e + 1}"])
    assert "learned cutoffs" in [a.text for a in fig.layout.annotations]
    assert len(training_curves_mpl(run).axes) == 5  # loss, val, usage, cutoffs, aux


def test_fixed_cutoff_runs_have_no_cutoff_columns(freesolv40, tmp_path):
    ds, split = freesolv40
    result = train(ds, split, TINY, quick(epochs=1), out_dir=tmp_path / "fixed")
    assert cutoff_columns(result.history) == []
    assert "learned_cutoffs" not in result.metrics["model"]


def test_ensemble_members_learn_their_own_and_the_ensemble_shows_their_mean(freesolv40, tmp_path):
    ds, split = freesolv40
    out = tmp_path / "ens"
    train_ensemble(ds, split, 2, LEARNABLE, quick(epochs=2, lr=2e-2), out, calibration="none")
    ensemble = Ensemble.load(out)
    members = [m.model.cutoffs for m in ensemble.members]
    assert members[0] != members[1]
    result = ensemble.predict(SMILES, n_jobs=1)
    np.testing.assert_allclose(result.cutoffs, np.mean(members, axis=0))


def test_starting_from_a_fixed_cutoff_run_is_an_architecture_mismatch(freesolv40, tmp_path):
    ds, split = freesolv40
    train(ds, split, TINY, quick(epochs=1), out_dir=tmp_path / "source")
    with pytest.raises(ValueError, match="learnable_cutoffs"):
        TrainingRun(ds, split, LEARNABLE, quick(init_from=str(tmp_path / "source")))


@pytest.fixture
def train_csv(write_csv):
    smiles = ["CCO", "CCC", "CCN", "c1ccccc1", "CC(=O)O", "CCCl", "OCCO", "CCCC", "c1ccncc1",
              "CC#N", "CCOC", "CCCO"]  # fmt: skip
    return write_csv([(s, 0.3 * i) for i, s in enumerate(smiles)], header=("smiles", "logp"))


CLI_TINY = ["--hidden", "8", "--epochs", "2", "--batch-size", "4", "--quiet", "--jobs", "1",
            "--device", "cpu", "--split", "random"]  # fmt: skip


def test_the_cli_trains_with_learnable_cutoffs_and_bounds(train_csv, tmp_path):
    run = tmp_path / "run"
    assert main(["train", "--data", str(train_csv), "--target-cols", "logp", "--out", str(run),
                 "--learnable-cutoffs", "--cutoff-bounds", "1.5,5", *CLI_TINY]) == 0  # fmt: skip
    metrics = json.loads((run / "metrics.json").read_text())
    assert all(1.5 < c < 5.0 for c in metrics["model"]["learned_cutoffs"])
    assert TrainedModel.load(run).model.search_radius == 5.0


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--learnable-cutoffs", "--backbone", "visnet"], "not available for the visnet"),
        (["--learnable-cutoffs", "--variant", "plain"], "need a routed variant"),
        (["--cutoff-bounds", "1,6"], "add it"),
        (["--learnable-cutoffs", "--cutoff-bounds", "1"], "LOWER,UPPER"),
        (["--learnable-cutoffs", "--cutoff-bounds", "1,x"], "numbers"),
        (["--learnable-cutoffs", "--cutoff-bounds", "2.5,6"], "strictly inside"),
    ],
)
def test_the_cli_refuses_what_learnable_cutoffs_cannot_do(
    options, message, train_csv, tmp_path, capsys
):
    code = main(["train", "--data", str(train_csv), "--target-cols", "logp", "--out",
                 str(tmp_path / "x"), *options, *CLI_TINY])  # fmt: skip
    assert code == 2
    assert message in capsys.readouterr().err


def test_the_cutoff_learning_rate_scale_sets_their_group_and_zero_holds_them(freesolv40, tmp_path):
    ds, split = freesolv40
    scaled = TrainingRun(ds, split, LEARNABLE, quick(lr=1e-3, cutoff_lr_scale=10.0))
    rates = [(g["lr"], g.get("lr_scale", 1.0)) for g in scaled.optimizer.param_groups]
    assert rates == [(1e-3, 1.0), (pytest.approx(1e-2), 10.0)]
    warm = TrainingRun(ds, split, LEARNABLE, quick(lr=1e-3, cutoff_lr_scale=10.0, warmup_epochs=1))
    warm.train_epoch(0)  # the warmup sets each group's rate, scaled by its lr_scale
    first, second = warm.optimizer.param_groups
    assert second["lr"] == pytest.approx(10 * first["lr"])
    held = train(ds, split, LEARNABLE, quick(epochs=2, lr=2e-2, cutoff_lr_scale=0.0))
    assert held.metrics["model"]["learned_cutoffs"] == pytest.approx([2.0, 2.5, 3.0, 3.5, 4.0],
                                                                      abs=1e-5)  # fmt: skip
    assert held.metrics["settings"]["cutoff_lr_scale"] == 0.0


def test_a_cutoff_learning_rate_scale_needs_learnable_cutoffs(freesolv40):
    ds, split = freesolv40
    with pytest.raises(ValueError, match="this model has fixed cutoffs"):
        TrainingRun(ds, split, TINY, quick(cutoff_lr_scale=5.0))
    with pytest.raises(ValueError, match="cutoff_lr_scale must be finite and >= 0"):
        quick(cutoff_lr_scale=-1.0)
