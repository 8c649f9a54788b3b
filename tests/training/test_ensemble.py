"""Deep ensembles: training into one folder, combining members, calibrated intervals."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from tiny_training import TINY, quick

from mimoe_core import run_folder
from mimoe_core.data import Split
from mimoe_core.ensemble import Ensemble, combine_members
from mimoe_core.trained import TrainedModel
from mimoe_core.training.ensemble import train_ensemble

SMILES = ["CCO", "not a smiles", "c1ccccc1O", "CC(=O)O"]


@pytest.fixture(scope="module")
def ensemble_run(freesolv120, tmp_path_factory):
    ds, split = freesolv120
    out = tmp_path_factory.mktemp("ens") / "run"
    result = train_ensemble(ds, split, 3, TINY, quick(), out)
    return out, result


def test_members_are_run_folders_with_their_own_seeds(ensemble_run):
    out, result = ensemble_run
    manifest = json.loads((out / run_folder.ENSEMBLE).read_text())
    assert manifest["members"] == [f"members/member_{i}" for i in range(3)]
    seeds = [
        json.loads((out / m / "metrics.json").read_text())["seed"] for m in manifest["members"]
    ]  # noqa: E501
    assert seeds == [0, 1, 2]
    assert result.metrics["ensemble_size"] == 3 and result.metrics["seeds"] == [0, 1, 2]
    assert [m["seed"] for m in result.metrics["members"]] == [0, 1, 2]
    unc = result.metrics["uncertainty"]
    assert unc["estimator"] == "ensemble" and unc["calibration"] == "conformal"
    assert {"nll", "spearman", "miscalibration_area", "ence", "coverage", "width"} <= set(
        unc["test"]
    )
    run = run_folder.load_run(out)  # the top level reads as an ordinary run folder
    assert run.test.uncertainty == "ensemble" and run.test.std is not None
    frame = pd.read_csv(out / run_folder.TEST_PREDICTIONS)
    assert {"expt_pred", "expt_std", "expt_lower", "expt_upper"} <= set(frame.columns)


def test_the_prediction_is_the_members_mean_and_the_raw_spread_their_sample_std(ensemble_run):
    out, _ = ensemble_run
    ensemble = Ensemble.load(out)
    members = [TrainedModel.load(out / f"members/member_{i}").predict(SMILES, n_jobs=1)
               for i in range(3)]  # fmt: skip
    preds = np.stack([m.prediction for m in members])
    result = ensemble.predict(SMILES, n_jobs=1)
    np.testing.assert_allclose(result.prediction, preds.mean(axis=0), rtol=1e-6)
    raw = combine_members(members)
    np.testing.assert_allclose(raw.std, preds.std(axis=0, ddof=1), rtol=1e-6)
    scale = ensemble.calibration.zscale.scale_
    np.testing.assert_allclose(result.std, raw.std * scale, rtol=1e-6)
    assert result.status == ["ok", "skipped", "ok", "ok"]
    assert np.isnan(result.std[1]).all() and np.isnan(result.lower[1]).all()
    ok = result.ok
    assert np.isfinite(result.lower[ok]).all() and np.isfinite(result.upper[ok]).all()
    assert (result.lower[ok] < result.prediction[ok]).all()
    assert (result.prediction[ok] < result.upper[ok]).all()
    assert result.coverage == 0.9


def test_the_combined_routing_still_adds_up_to_the_prediction(ensemble_run):
    out, _ = ensemble_run
    result = Ensemble.load(out).predict(SMILES, n_jobs=1)
    ok = result.ok
    np.testing.assert_allclose(result.alpha[ok].sum(axis=1), 1.0, rtol=1e-6)
    total = result.contributions_from_baseline().sum(axis=1) + np.asarray(result.baseline)
    np.testing.assert_allclose(total[ok], result.prediction[ok], rtol=1e-5, atol=1e-6)


def test_a_wider_coverage_gives_wider_intervals(ensemble_run):
    out, _ = ensemble_run
    ensemble = Ensemble.load(out)
    narrow = ensemble.predict(SMILES, coverage=0.5, n_jobs=1)
    wide = ensemble.predict(SMILES, coverage=0.8, n_jobs=1)
    ok = narrow.ok
    assert np.isfinite(wide.upper[ok]).all()
    assert ((wide.upper - wide.lower)[ok] > (narrow.upper - narrow.lower)[ok]).all()


def test_bad_ensemble_requests_are_clear_errors(freesolv120, tmp_path):
    ds, split = freesolv120
    with pytest.raises(ValueError, match="at least 2"):
        train_ensemble(ds, split, 1, TINY, quick(), tmp_path / "a")
    with pytest.raises(ValueError, match=r"coverage must be in \(0, 1\)"):
        train_ensemble(ds, split, 2, TINY, quick(), tmp_path / "b", coverage=1.5)
    no_val = Split(split.train, np.array([], dtype=int), split.test, method="random")
    with pytest.raises(ValueError, match="validation set"):
        train_ensemble(ds, no_val, 2, TINY, quick(), tmp_path / "c")
    with pytest.raises(FileNotFoundError, match="not an ensemble run"):
        Ensemble.load(tmp_path)


def test_members_with_a_variance_head_give_the_std_of_their_gaussian_mixture(freesolv120, tmp_path):
    ds, split = freesolv120
    out = tmp_path / "mve-ens"
    train_ensemble(ds, split, 2, {**TINY, "variance_head": True}, quick(mve_warmup=1), out,
                   calibration="none")  # fmt: skip
    members = [TrainedModel.load(out / f"members/member_{i}").predict(SMILES, n_jobs=1)
               for i in range(2)]  # fmt: skip
    assert all(m.uncertainty == "mve" for m in members)
    means = np.stack([m.prediction for m in members])
    noise = np.stack([m.std for m in members]) ** 2
    expected = np.sqrt(noise.mean(axis=0) + means.var(axis=0))
    np.testing.assert_allclose(combine_members(members).std, expected, rtol=1e-6)
    # calibration "none" shows the raw mixture std
    result = Ensemble.load(out).predict(SMILES, n_jobs=1)
    np.testing.assert_allclose(result.std[result.ok], expected[result.ok], rtol=1e-6)
