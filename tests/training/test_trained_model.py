"""The self-contained trained model: in-model target scaling, TrainedModel, import layering."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch

from mimoe_core.conformers import ConformerSettings
from mimoe_core.featurization import featurize
from mimoe_core.forward import prepare_batch
from mimoe_core.models import create_model
from mimoe_core.scaling import ScaledMIMoE, TargetScaler, UnscaleTransform
from mimoe_core.topology import DEFAULT_RADII
from mimoe_core.trained import (
    TrainedModel,
    load_checkpoint,
    payload_digest,
    table_from_smiles,
)

TINY = {"expert": {"hidden_channels": 8, "num_layers": 1, "num_filters": 8, "num_rbf": 10},
        "gate": {"name": "mlp", "hidden_channels": 8}, "out_channels": 2}  # fmt: skip
SMILES = ["CCO", "CCN", "c1ccccc1", "CC(=O)O", "OCCO", "CCCl"]
SCALER = TargetScaler([10.0, -3.0], [4.0, 0.5])


@pytest.fixture
def data():
    return featurize(table_from_smiles(SMILES), progress=False, n_jobs=1).data_list


@pytest.fixture
def trained():
    model = ScaledMIMoE(create_model(TINY), SCALER).eval()
    return TrainedModel(model, "regression", ["a", "b"], list(DEFAULT_RADII), ConformerSettings())


def test_unscale_transform_is_identity_in_train_mode_and_affine_in_eval():
    t = UnscaleTransform(SCALER.mean, SCALER.std)
    y = torch.randn(5, 2)
    torch.testing.assert_close(t.train()(y), y)
    torch.testing.assert_close(t.eval()(y), SCALER.inverse(y))
    torch.testing.assert_close(t.transform(t.inverse(y)), y)
    assert t.to_scaler() == SCALER  # float64 buffers: exact round trip
    assert set(t.state_dict()) == {"mean", "std"}


def test_model_is_standardized_in_train_mode_and_in_original_units_in_eval(trained, data):
    model = trained.model
    batch = prepare_batch(data, "cpu", torch.float32)
    with torch.no_grad():
        raw = model.moe.eval().forward_batch(batch)
        evaluated = model.eval().forward_batch(batch)
        training = model.train().forward_batch(batch)
    torch.testing.assert_close(evaluated.y, raw.y * torch.tensor(SCALER.std)
                               + torch.tensor(SCALER.mean))  # fmt: skip
    torch.testing.assert_close(training.y, raw.y)
    torch.testing.assert_close(training.expert_predictions, raw.expert_predictions)
    torch.testing.assert_close(evaluated.alpha, raw.alpha)


@pytest.mark.parametrize("compute_all", [False, True])
def test_contributions_sum_to_the_prediction_in_original_units(trained, data, compute_all):
    batch = prepare_batch(data, "cpu", torch.float64)
    model = trained.model.double().eval()
    with torch.no_grad():
        out = model.forward_batch(batch, compute_all=compute_all)
    torch.testing.assert_close(out.alpha.sum(1), torch.ones(len(data), dtype=torch.float64))
    torch.testing.assert_close(out.contributions().sum(1), out.y)
    if not compute_all:  # experts that did not run contribute exactly nothing
        assert (out.expert_predictions[~out.selected] == 0).all()
    # So it does in the result explain() returns (NaN where an expert did not run).
    result = trained.explain(data)
    total = np.nansum(result.alpha[..., None] * result.expert_predictions, axis=1)
    np.testing.assert_allclose(total, result.prediction, rtol=1e-5, atol=1e-5)  # float32
    assert result.baseline == SCALER.mean


def test_predict_explain_save_round_trip(trained, data, tmp_path):
    first = trained.predict(SMILES[:3] + ["not a smiles"], device="cpu", n_jobs=1)
    assert first.status == ["ok", "ok", "ok", "skipped"]
    trained.save(tmp_path / "model.pt", epoch=3)
    again = TrainedModel.load(tmp_path)  # a run folder holding model.pt
    assert again.scaler == SCALER and again.targets == ["a", "b"] and again.extra["epoch"] == 3
    assert again.radii == trained.radii and again.featurization == trained.featurization
    assert not again.model.training
    second = again.predict(SMILES[:3] + ["not a smiles"], device="cpu", n_jobs=1)
    np.testing.assert_array_equal(first.prediction, second.prediction)
    np.testing.assert_array_equal(first.expert_predictions, second.expert_predictions)
    np.testing.assert_array_equal(trained.explain(data).prediction, again.explain(data).prediction)
    # Saving what was loaded writes the same model again.
    again.save(tmp_path / "copy.pt")
    copied = load_checkpoint(tmp_path / "copy.pt").explain(data).prediction
    np.testing.assert_array_equal(copied, again.explain(data).prediction)
    assert copied.shape == (len(data), 2)


def test_the_checkpoint_keeps_the_scaler_entry_and_holds_the_buffers(trained, tmp_path):
    trained.save(tmp_path / "model.pt")
    payload = torch.load(tmp_path / "model.pt", weights_only=True)
    assert payload["scaler"] == SCALER.to_dict()  # for readers that predate the buffers
    assert payload["state_dict"]["output_transform.mean"].tolist() == SCALER.mean
    assert payload["state_dict"]["output_transform.std"].tolist() == SCALER.std
    assert payload["sha256"] == payload_digest(payload)
    # The inner model's keys are unchanged: an old reader's create_model(config) fits them.
    inner = set(create_model(payload["model_config"]).state_dict())
    assert set(payload["state_dict"]) - inner == {"output_transform.mean", "output_transform.std"}


@pytest.mark.parametrize("keep_digest", [False, True])
def test_an_old_checkpoint_without_the_buffers_still_loads(trained, data, tmp_path, keep_digest):
    trained.save(tmp_path / "model.pt")
    payload = torch.load(tmp_path / "model.pt", weights_only=True)
    for key in ("output_transform.mean", "output_transform.std"):
        del payload["state_dict"][key]
    if keep_digest:  # written after the digest, before the buffers
        payload["sha256"] = payload_digest(payload)
    else:
        del payload["sha256"]
    torch.save(payload, tmp_path / "old.pt")
    old = load_checkpoint(tmp_path / "old.pt")
    assert old.scaler == SCALER  # the buffers come from the payload's scaler
    np.testing.assert_array_equal(old.explain(data).prediction, trained.explain(data).prediction)


def test_a_bare_mimoe_is_wrapped_with_identity_scaling(data):
    model = create_model(TINY).eval()
    tm = TrainedModel(model, "regression", ["a", "b"], list(DEFAULT_RADII))
    assert tm.scaler == TargetScaler.identity(2)
    batch = prepare_batch(data, "cpu", torch.float32)
    with torch.no_grad():
        torch.testing.assert_close(tm.model.eval().forward_batch(batch).y,
                                   model.forward_batch(batch).y)  # fmt: skip


@pytest.mark.parametrize(
    ("imported", "absent"),
    [("mimoe_core.inference", "mimoe_core.training"),
     ("mimoe_core.training", "mimoe_core.inference"),
     ("mimoe_core.trained", "mimoe_core.training"),
     ("mimoe_core.trained", "mimoe_core.inference")],
)  # fmt: skip
def test_training_and_inference_do_not_import_each_other(imported, absent):
    code = f"import sys, {imported}; print({absent!r} in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False", f"importing {imported} imports {absent}"
