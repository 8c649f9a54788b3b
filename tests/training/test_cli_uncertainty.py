"""``mimoe train --ensemble-size/--uncertainty``, ``mimoe predict --interval``, ``embed``."""

from __future__ import annotations

import json
import re
import warnings

import numpy as np
import pandas as pd
import pytest
import torch

from mimoe_core.cli import main
from mimoe_core.results import EmbeddingResult

TINY = ["--hidden", "8", "--epochs", "2", "--batch-size", "16", "--quiet", "--jobs", "1",
        "--device", "cpu", "--split", "random", "--dataset", "freesolv",
        "--limit", "100"]  # fmt: skip
QUERY = "smiles\nCCO\nnot a smiles\nc1ccccc1O\n"


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """One ensemble run and one run with the experts' disagreement, sharing a cache."""
    root = tmp_path_factory.mktemp("unc")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MIMOE_CACHE_DIR", str(root / "cache"))
        assert main(["train", *TINY, "--ensemble-size", "2", "--out", str(root / "ens")]) == 0
        assert main(["train", *TINY, "--uncertainty", "experts", "--calibration", "zscale",
                     "--out", str(root / "exp")]) == 0  # fmt: skip
        assert main(["train", *TINY, "--out", str(root / "plain")]) == 0
    (root / "q.csv").write_text(QUERY)
    return root


def test_an_ensemble_run_records_its_uncertainty_and_predicts_intervals(runs):
    metrics = json.loads((runs / "ens" / "metrics.json").read_text())
    assert metrics["ensemble_size"] == 2 and metrics["uncertainty"]["estimator"] == "ensemble"
    assert 0 <= metrics["uncertainty"]["test"]["coverage"] <= 1
    out = runs / "p.csv"
    args = ["predict", "--model", str(runs / "ens"), "--data", str(runs / "q.csv"), "--quiet"]
    assert main([*args, "--out", str(out), "--interval", "0.8"]) == 0
    frame = pd.read_csv(out)
    assert list(frame.columns[5:9]) == ["expt", "expt_std", "expt_lower", "expt_upper"]
    ok = frame["status"] == "ok"
    assert (frame.loc[ok, "expt_lower"] < frame.loc[ok, "expt"]).all()
    assert (frame.loc[ok, "expt"] < frame.loc[ok, "expt_upper"]).all()
    assert frame.loc[~ok, ["expt_std", "expt_lower", "expt_upper"]].isna().all().all()
    assert main([*args, "--out", str(runs / "p90.csv"), "--interval", "0.9"]) == 0
    wide = pd.read_csv(runs / "p90.csv")
    width = (frame.expt_upper - frame.expt_lower)[ok]
    assert ((wide.expt_upper - wide.expt_lower)[ok] >= width).all()


def test_the_experts_disagreement_is_stored_in_the_checkpoint(runs):
    payload = torch.load(runs / "exp" / "model.pt", weights_only=True)
    assert payload["calibration"]["estimator"] == "experts"
    assert payload["calibration"]["method"] == "zscale"
    metrics = json.loads((runs / "exp" / "metrics.json").read_text())
    assert metrics["uncertainty"]["estimator"] == "experts"
    out = runs / "e.csv"
    assert main(["predict", "--model", str(runs / "exp"), "--data", str(runs / "q.csv"),
                 "--out", str(out), "--quiet"]) == 0  # fmt: skip
    frame = pd.read_csv(out)
    assert {"expt_std", "expt_lower", "expt_upper"} <= set(frame.columns)
    assert (frame.loc[frame.status == "ok", "expt_std"] >= 0).all()


@pytest.mark.parametrize(
    "extra, message",
    [(["--ensemble-size", "0"], "--ensemble-size must be >= 1"),
     (["--interval", "1.5"], r"--interval must be in \(0, 1\)"),
     (["--uncertainty", "ensemble"], "needs --ensemble-size of at least 2"),
     (["--ensemble-size", "3", "--uncertainty", "experts"], "its uncertainty is ensemble")],
)  # fmt: skip
def test_bad_uncertainty_options_are_exit_2(tmp_path, capsys, extra, message):
    assert main(["train", *TINY, *extra, "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert re.search(message, err) and "Traceback" not in err


def test_intervals_from_a_model_without_uncertainty_are_exit_2(runs, capsys):
    args = ["predict", "--model", str(runs / "plain"), "--data", str(runs / "q.csv"),
            "--out", str(runs / "x.csv"), "--quiet"]  # fmt: skip
    assert main([*args, "--interval", "0.9"]) == 2
    assert "no uncertainty" in capsys.readouterr().err
    assert main([*args, "--interval", "2"]) == 2
    assert main(args) == 0  # without --interval: plain predictions
    assert "expt_std" not in pd.read_csv(runs / "x.csv").columns


def test_embed_writes_npz_and_csv_and_refuses_other_suffixes(runs, capsys):
    base = ["embed", "--model", str(runs / "plain"), "--data", str(runs / "q.csv"), "--quiet"]
    assert main([*base, "--out", str(runs / "emb.npz")]) == 0
    emb = EmbeddingResult.load(runs / "emb.npz")
    assert emb.status == ["ok", "skipped", "ok"] and np.isnan(emb.mixture[1]).all()
    assert "3 rows: 2 embedded" in capsys.readouterr().out
    assert main([*base, "--out", str(runs / "emb.csv")]) == 0
    frame = pd.read_csv(runs / "emb.csv")
    assert len(frame) == 3 and "mix_1" in frame.columns and "alpha_1" in frame.columns
    assert main([*base, "--out", str(runs / "emb.parquet")]) == 2
    assert ".npz or .csv" in capsys.readouterr().err


def test_a_classification_ensemble_reports_calibration_before_and_after(tmp_path, capsys):
    from mimoe_core.data import load_dataset

    # A random sample: BACE's first rows are all actives, and calibration needs both classes.
    sample = load_dataset("bace").sample(80, seed=0)
    data = tmp_path / "bace.csv"
    pd.DataFrame({"smiles": sample.smiles, "Class": sample.targets[:, 0]}).to_csv(data)
    args = ["train", "--data", str(data), "--target-cols", "Class", "--task", "classification",
            "--hidden", "8", "--epochs", "2", "--batch-size", "16", "--quiet", "--jobs", "1",
            "--device", "cpu", "--split", "random", "--ensemble-size", "2",
            "--out", str(tmp_path / "ens")]  # fmt: skip
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)  # both classes reach the calibrator
        assert main(args) == 0
    unc = json.loads((tmp_path / "ens" / "metrics.json").read_text())["uncertainty"]
    assert unc["estimator"] == "ensemble"
    for part in ("val", "test"):
        assert {"ece", "brier"} <= set(unc[part])
        assert {"ece", "brier"} <= set(unc[part]["before_calibration"])
    (tmp_path / "q.csv").write_text(QUERY)
    out = tmp_path / "p.csv"
    assert main(["predict", "--model", str(tmp_path / "ens"), "--data", str(tmp_path / "q.csv"),
                 "--out", str(out), "--quiet"]) == 0  # fmt: skip
    frame = pd.read_csv(out)
    assert "Class_std" in frame.columns and "Class_lower" not in frame.columns
    ok = frame["status"] == "ok"
    assert frame.loc[ok, "Class"].between(0, 1).all()
