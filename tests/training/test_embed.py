"""Per-molecule embeddings: MIMoE.embed, TrainedModel.embed, EmbeddingResult, inference.embed."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import tiny_training
import torch

from mimoe_core.conformers import ConformerSettings
from mimoe_core.featurization import featurize
from mimoe_core.forward import prepare_batch
from mimoe_core.inference.embed import embed
from mimoe_core.models import create_model
from mimoe_core.results import EmbeddingResult
from mimoe_core.scaling import ScaledMIMoE, TargetScaler
from mimoe_core.topology import DEFAULT_RADII
from mimoe_core.trained import TrainedModel, table_from_smiles

TINY = {**tiny_training.TINY, "out_channels": 2}  # two targets, a and b
SMILES = ["CCO", "CCN", "c1ccccc1", "CC(=O)O", "OCCO", "CCCl"]
INPUTS = [*SMILES[:3], "not a smiles", *SMILES[3:]]  # row 3 is skipped
SCALER = TargetScaler([10.0, -3.0], [4.0, 0.5])


@pytest.fixture(scope="module")
def data():
    return featurize(table_from_smiles(SMILES), progress=False, n_jobs=1).data_list


def make_trained(**config) -> TrainedModel:
    torch.manual_seed(0)
    model = ScaledMIMoE(create_model({**TINY, **config}), SCALER).eval()
    return TrainedModel(model, "regression", ["a", "b"], list(DEFAULT_RADII), ConformerSettings())


@pytest.fixture
def trained() -> TrainedModel:
    return make_trained()


@pytest.fixture
def embedded(trained) -> EmbeddingResult:
    return trained.embed(INPUTS, device="cpu", n_jobs=1)


# --- the model ------------------------------------------------------------------------------


@pytest.mark.parametrize("variant", ["sparse", "dense", "one_expert"])
@pytest.mark.parametrize("compute_all", [False, True])
def test_the_head_of_the_mixture_is_the_forward_prediction(data, variant, compute_all):
    torch.manual_seed(0)
    moe = create_model({**TINY, "variant": variant}).double().eval()
    batch = prepare_batch(data, "cpu", torch.float64)
    with torch.no_grad():
        out = moe.forward_batch(batch, compute_all=compute_all)
        emb = moe.embed_batch(batch, compute_all=compute_all)
        again = moe.forward_batch(batch, compute_all=compute_all)
    torch.testing.assert_close(moe.head(emb.mixture), out.y, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(again.y, out.y, rtol=0, atol=0)  # forward is unchanged by embed
    assert torch.equal(emb.alpha, out.alpha) and torch.equal(emb.selected, out.selected)
    # Each expert's embedding gives that expert's own prediction through the head.
    run = emb.selected | compute_all
    torch.testing.assert_close(moe.head(emb.experts)[run], out.expert_predictions[run])
    if not compute_all:  # zero where an expert did not run
        assert (emb.experts[~emb.selected] == 0).all()
    mix = (emb.alpha.unsqueeze(-1) * emb.experts).sum(1)
    torch.testing.assert_close(emb.mixture, mix, rtol=0, atol=0)
    assert emb.mixture.shape == (len(data), moe.head.in_features)
    assert emb.experts.shape == (len(data), moe.num_experts, moe.head.in_features)


def test_sparse_dispatch_and_compute_all_give_the_same_mixture(data):
    torch.manual_seed(0)
    moe = create_model(TINY).double().eval()
    batch = prepare_batch(data, "cpu", torch.float64)
    with torch.no_grad():
        sparse = moe.embed_batch(batch)
        dense = moe.embed_batch(batch, compute_all=True)
    torch.testing.assert_close(sparse.mixture, dense.mixture)
    torch.testing.assert_close(sparse.experts[sparse.selected], dense.experts[sparse.selected])
    assert (dense.experts[~sparse.selected] != 0).any()  # compute_all ran the others too


# --- the trained model and the result -------------------------------------------------------


def test_the_head_of_the_mixture_reproduces_predict(trained, embedded):
    predicted = trained.predict(INPUTS, device="cpu", n_jobs=1)
    ok = embedded.ok
    assert embedded.status == predicted.status and embedded.rows == predicted.rows
    assert embedded.ids == predicted.ids and embedded.smiles == predicted.smiles
    head = trained.model.moe.head
    with torch.no_grad():
        standardized = head(torch.from_numpy(embedded.mixture[ok]).float()).double()
    unscaled = standardized.numpy() * np.array(SCALER.std) + np.array(SCALER.mean)
    np.testing.assert_allclose(unscaled, predicted.prediction[ok], rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(embedded.alpha, predicted.alpha)  # NaN rows included
    np.testing.assert_array_equal(embedded.gate_input, predicted.topo)
    assert embedded.cutoffs == predicted.cutoffs and embedded.radii == predicted.radii
    assert embedded.descriptor_names == predicted.descriptor_names
    # Each selected expert's embedding through the head is its prediction in predict.
    with torch.no_grad():
        per_expert = head(torch.from_numpy(np.nan_to_num(embedded.experts)).float()).numpy()
    per_expert = per_expert * np.array(SCALER.std) + np.array(SCALER.mean)
    chosen = embedded.alpha > 0
    np.testing.assert_allclose(
        per_expert[chosen], predicted.expert_predictions[chosen], rtol=1e-5, atol=1e-5
    )


def test_mixture_is_the_alpha_weighted_sum_of_the_selected_experts(embedded):
    ok = embedded.ok
    alpha, experts = embedded.alpha[ok], embedded.experts[ok]
    assert np.array_equal(np.isnan(experts).all(-1), alpha == 0)  # NaN exactly where unselected
    assert not np.isnan(experts).any(-1)[alpha > 0].any()
    assert ((alpha > 0).sum(1) == 2).all()  # sparse Top-2 of K = 5
    mix = np.nansum(alpha[..., None] * experts, axis=1)
    np.testing.assert_allclose(embedded.mixture[ok], mix, rtol=1e-6, atol=1e-6)
    assert np.isfinite(embedded.mixture[ok]).all()


def test_skipped_rows_are_kept_with_their_reason_and_nan_arrays(embedded):
    assert len(embedded) == len(INPUTS)
    assert embedded.rows == list(range(len(INPUTS)))
    assert embedded.status == ["ok"] * 3 + ["skipped"] + ["ok"] * 3
    assert embedded.smiles[3] == "not a smiles" and embedded.reason[3]
    assert [r for i, r in enumerate(embedded.reason) if i != 3] == [""] * 6
    for array in (embedded.mixture, embedded.experts, embedded.alpha, embedded.gate_input):
        assert len(array) == len(INPUTS)
        assert np.isnan(array[3]).all()
    assert embedded.mixture.shape == (7, 8) and embedded.experts.shape == (7, 5, 8)
    assert embedded.gate_input.shape == (7, len(DEFAULT_RADII), 5)
    assert embedded.num_experts == 5 and embedded.hidden_channels == 8


def test_embeddings_are_deterministic(trained, embedded):
    again = trained.embed(INPUTS, device="cpu", n_jobs=1, batch_size=2)
    np.testing.assert_allclose(again.mixture, embedded.mixture, rtol=1e-6, atol=1e-6)
    third = trained.embed(INPUTS, device="cpu", n_jobs=1)
    np.testing.assert_array_equal(third.mixture, embedded.mixture)
    np.testing.assert_array_equal(third.experts, embedded.experts)


def test_one_expert_models_embed_with_weight_one():
    result = make_trained(variant="one_expert").embed(SMILES[:3], device="cpu", n_jobs=1)
    np.testing.assert_array_equal(result.alpha, np.ones((3, 1)))
    np.testing.assert_array_equal(result.mixture, result.experts[:, 0])


def test_npz_round_trip_is_identical(embedded, tmp_path):
    embedded.save(tmp_path / "emb.npz")
    back = EmbeddingResult.load(tmp_path / "emb.npz")
    for name in ("ids", "smiles", "rows", "status", "reason", "cutoffs", "radii",
                 "descriptor_names"):  # fmt: skip
        assert getattr(back, name) == getattr(embedded, name), name
    for name in ("mixture", "experts", "alpha", "gate_input"):
        np.testing.assert_array_equal(getattr(back, name), getattr(embedded, name))
        assert getattr(back, name).dtype == np.float64
    with np.load(tmp_path / "emb.npz", allow_pickle=False) as npz:
        assert set(npz.files) == {"mixture", "experts", "alpha", "gate_input", "metadata"}


def test_csv_has_the_documented_columns(embedded, tmp_path):
    embedded.save(tmp_path / "emb.csv")
    frame = pd.read_csv(tmp_path / "emb.csv", keep_default_na=False)
    alpha = [f"alpha_{e}" for e in range(1, 6)]
    mix = [f"mix_{h}" for h in range(1, 9)]
    assert list(frame.columns) == ["row", "id", "smiles", "status", "reason", *alpha, *mix]
    assert len(frame) == len(INPUTS) and frame["status"].tolist() == embedded.status
    ok = embedded.ok
    np.testing.assert_allclose(frame.loc[ok, mix].to_numpy(float), embedded.mixture[ok])
    np.testing.assert_allclose(frame.loc[ok, alpha].to_numpy(float), embedded.alpha[ok])
    assert (frame.loc[~ok, mix] == "").all(axis=None)  # NaN is written as an empty cell


def test_other_suffixes_and_damaged_files_are_clear_errors(embedded, tmp_path):
    with pytest.raises(ValueError, match=r"\.npz or \.csv"):
        embedded.save(tmp_path / "emb.parquet")
    embedded.save(tmp_path / "emb.csv")
    with pytest.raises(ValueError, match="not read back"):
        EmbeddingResult.load(tmp_path / "emb.csv")
    with pytest.raises(FileNotFoundError):
        EmbeddingResult.load(tmp_path / "missing.npz")
    (tmp_path / "bad.npz").write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="bad.npz is not an embeddings file"):
        EmbeddingResult.load(tmp_path / "bad.npz")
    np.savez(tmp_path / "other.npz", mixture=np.zeros((1, 2)))
    with pytest.raises(ValueError, match="lacks"):
        EmbeddingResult.load(tmp_path / "other.npz")


def test_the_functional_embed_takes_a_model_a_checkpoint_or_a_run_folder(
    trained, embedded, tmp_path
):
    trained.save(tmp_path / "model.pt")
    from_folder = embed(tmp_path, INPUTS, device="cpu", n_jobs=1)
    from_file = embed(tmp_path / "model.pt", INPUTS, device="cpu", n_jobs=1)
    from_object = embed(trained, INPUTS, device="cpu", n_jobs=1)
    for result in (from_folder, from_file, from_object):
        np.testing.assert_array_equal(result.mixture, embedded.mixture)
        assert result.status == embedded.status


def test_a_model_from_another_descriptor_version_is_refused(trained):
    trained.featurization = {**trained.featurization, "descriptor_version": -1}
    with pytest.raises(ValueError, match="descriptor version -1"):
        trained.embed(SMILES[:1], device="cpu", n_jobs=1)
