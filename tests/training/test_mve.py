"""Mean-variance estimation: a variance head, the Gaussian NLL, unscaled variances."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from tiny_training import TINY, quick

from mimoe_core.cli import main
from mimoe_core.models import create_model
from mimoe_core.scaling import ScaledMIMoE, TargetScaler
from mimoe_core.trained import TrainedModel
from mimoe_core.training import TrainSettings, train
from mimoe_core.training.trainer import masked_gaussian_nll


def test_the_nll_matches_torch_and_masks_missing_labels():
    torch.manual_seed(0)
    mean, log_var, target = torch.randn(3, 7, 2).unbind(0)
    mask = torch.ones_like(target, dtype=torch.bool)
    ours = masked_gaussian_nll(mean, log_var, target, mask)
    ref = F.gaussian_nll_loss(mean, target, log_var.exp(), reduction="mean")
    torch.testing.assert_close(ours, ref)
    mask[0, 0] = False
    bad = target.clone()
    bad[0, 0] = 1e6  # a missing label holds anything
    kept = masked_gaussian_nll(mean, log_var, bad, mask)
    per = 0.5 * (log_var + (target - mean) ** 2 / log_var.exp())
    torch.testing.assert_close(kept, per[mask].mean())


def test_the_variance_head_is_optional_and_unscaled_in_eval(freesolv120):
    ds, _ = freesolv120
    from mimoe_core.inference import prepare_batch

    batch = prepare_batch(ds.data_list[:5], "cpu", torch.float64)
    torch.manual_seed(0)
    plain = create_model(TINY).double()
    assert plain.var_head is None and plain.forward_batch(batch).log_var is None
    torch.manual_seed(0)
    scaled = ScaledMIMoE(create_model({**TINY, "variance_head": True}),
                         TargetScaler([1.5], [3.0])).double()  # fmt: skip
    scaled.train()
    standardized = scaled.forward_batch(batch).log_var
    scaled.eval()
    original = scaled.forward_batch(batch).log_var
    assert standardized.shape == (5, 1)
    torch.testing.assert_close(original, standardized + 2 * np.log(3.0))


def test_training_with_mve_warms_up_on_mse_then_predicts_a_calibrated_std(freesolv120, tmp_path):
    ds, split = freesolv120
    settings = quick(epochs=3, uncertainty="mve", mve_warmup=1)
    result = train(ds, split, TINY, settings, out_dir=tmp_path / "run")
    history = result.history
    assert (history["task_loss"].iloc[:1] >= 0).all()  # MSE during the warm start
    assert result.model.config["variance_head"] is True
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["uncertainty"]["estimator"] == "mve"
    trained = TrainedModel.load(tmp_path / "run")
    raw = trained.explain(ds.data_list[:5])
    assert raw.uncertainty == "mve" and (raw.std > 0).all()
    scale = trained.calibration.zscale.scale_
    prediction = trained.predict(["CCO", "c1ccccc1O"], n_jobs=1)
    assert prediction.std.shape == (2, 1) and np.isfinite(prediction.upper).all()
    uncalibrated = TrainedModel.load(tmp_path / "run")
    uncalibrated.extra.pop("calibration")
    bare = uncalibrated.predict(["CCO", "c1ccccc1O"], n_jobs=1)
    np.testing.assert_allclose(prediction.std, bare.std * scale, rtol=1e-6)


def test_mve_is_for_regression_and_reachable_from_the_cli(tmp_path, capsys):
    with pytest.raises(ValueError, match="uncertainty is none, experts, mve or conformers"):
        TrainSettings(uncertainty="evidential")
    args = ["train", "--dataset", "bace", "--limit", "60", "--hidden", "8", "--epochs", "1",
            "--quiet", "--jobs", "1", "--device", "cpu", "--split", "random",
            "--uncertainty", "mve", "--out", str(tmp_path / "c")]  # fmt: skip
    assert main(args) == 2
    assert "for regression targets" in capsys.readouterr().err
