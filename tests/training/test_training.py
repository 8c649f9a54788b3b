from __future__ import annotations

import json
import pickle

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.metrics import roc_auc_score
from tiny_training import TINY, quick

from mimoe_core.data import Split, make_split, read_csv
from mimoe_core.featurization import featurize
from mimoe_core.inference import predict
from mimoe_core.training import (
    ScaledMIMoE,
    TargetScaler,
    TrainingRun,
    TrainSettings,
    TrainState,
    classification_metrics,
    load_checkpoint,
    masked_loss,
    regression_metrics,
    train,
)

# freesolv40 (40 featurized FreeSolv molecules and a random split) comes from conftest.py.


# --- scaling, metrics, loss -----------------------------------------------------------------


def test_target_scaler_round_trip_and_constant_target():
    y = np.array([[1.0, 5.0], [3.0, 5.0], [np.nan, 5.0]])
    scaler = TargetScaler.fit(y, "regression")
    assert scaler.mean == [2.0, 5.0] and scaler.std == [1.0, 1.0]
    t = torch.tensor([[1.0, 5.0], [3.0, 5.0]])
    torch.testing.assert_close(scaler.inverse(scaler.transform(t)), t)
    assert TargetScaler.fit(y, "classification").std == [1.0, 1.0]
    with pytest.raises(ValueError, match="no label"):
        TargetScaler.fit(np.array([[np.nan]]), "regression")


def test_metrics_mask_missing_labels():
    pred = np.array([[1.0, 0.0], [2.0, 0.0], [3.0, 9.0]])
    target = np.array([[1.0, np.nan], [4.0, np.nan], [3.0, 9.0]])
    m = regression_metrics(pred, target)
    assert m["per_target"]["rmse"][0] == pytest.approx(np.sqrt(4 / 3))
    assert m["per_target"]["rmse"][1] == 0.0 and m["n"] == [3, 1]

    prob = np.array([[0.1, 0.5], [0.8, 0.5], [0.7, 0.2], [0.2, 0.1]])
    labels = np.array([[0, 1], [1, 1], [1, np.nan], [0, 1]], dtype=float)
    c = classification_metrics(prob, labels)
    assert c["per_target"]["roc_auc"][0] == roc_auc_score([0, 1, 1, 0], prob[:, 0])
    assert np.isnan(c["per_target"]["roc_auc"][1])  # one class only: not scored
    assert c["roc_auc"] == c["per_target"]["roc_auc"][0] and c["tasks_scored"] == 1


def test_masked_loss_ignores_missing_labels():
    pred = torch.tensor([[1.0, 2.0], [3.0, 4.0]])
    target = torch.tensor([[1.0, float("nan")], [2.0, float("nan")]])
    mask = ~torch.isnan(target)
    assert masked_loss(pred, target, mask, "regression").item() == pytest.approx(0.5)
    loss = masked_loss(pred, target, mask, "classification")
    assert torch.isfinite(loss)


# --- training -------------------------------------------------------------------------------


def test_train_writes_a_complete_run(freesolv40, tmp_path):
    ds, split = freesolv40
    result = train(ds, split, TINY, quick(), out_dir=tmp_path)
    for name in ("model.pt", "last.pt", "history.csv", "metrics.json", "splits.json",
                 "skipped.csv", "test_predictions.csv"):  # fmt: skip
        assert (tmp_path / name).is_file(), name
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["task"] == "regression" and metrics["targets"] == ["expt"]
    assert (metrics["n_train"], metrics["n_val"], metrics["n_test"]) == split.sizes()
    assert set(metrics["test"]) >= {"rmse", "mae"} and metrics["split"] == "random"
    history = pd.read_csv(tmp_path / "history.csv")
    assert len(history) == 2
    assert {"loss", "aux_loss", "val_rmse", "lr", "usage_1", "usage_5"} <= set(history.columns)
    usage = history[[f"usage_{e}" for e in range(1, 6)]].to_numpy()
    np.testing.assert_allclose(usage.sum(1), 2.0)  # top-2: two experts per molecule
    assert result.model.config["out_channels"] == 1


def test_same_seed_same_metrics(freesolv40):
    ds, split = freesolv40
    a = train(ds, split, TINY, quick(seed=3)).metrics
    b = train(ds, split, TINY, quick(seed=3)).metrics
    c = train(ds, split, TINY, quick(seed=4)).metrics
    assert a["test"] == b["test"] and a["val"] == b["val"]
    assert a["test"] != c["test"]


def test_resume_after_interruption_matches_uninterrupted_run(freesolv40, tmp_path):
    ds, split = freesolv40
    full = train(ds, split, TINY, quick(epochs=4), out_dir=tmp_path / "full")
    train(ds, split, TINY, quick(epochs=2), out_dir=tmp_path / "cut")  # "interrupted" at 2
    resumed = train(ds, split, TINY, quick(epochs=4), out_dir=tmp_path / "cut", resume=True)
    assert len(resumed.history) == 4
    pd.testing.assert_frame_equal(
        full.history.drop(columns="seconds"), resumed.history.drop(columns="seconds")
    )
    assert full.metrics["test"] == resumed.metrics["test"]


def test_training_run_is_what_train_drives(freesolv40, tmp_path):
    ds, split = freesolv40
    run = TrainingRun(ds, split, TINY, quick(epochs=2), out_dir=tmp_path)
    assert not run.resume()  # no last.pt yet
    result = run.fit()
    assert run.state.epoch == 2 and len(run.state.history) == 2
    again = train(ds, split, TINY, quick(epochs=2)).metrics
    assert result.metrics["timing"]["train_molecules_per_second"] > 0
    assert {**result.metrics, "timing": None} == {**again, "timing": None}
    assert isinstance(result.model, ScaledMIMoE) and result.model.scaler == result.scaler
    saved = torch.load(tmp_path / "last.pt", weights_only=True)["train_state"]
    assert TrainState.from_dict(saved) == run.state


def test_resuming_a_run_that_stopped_early_trains_no_more(freesolv40, tmp_path):
    ds, split = freesolv40
    # Patience 1: the first epoch that does not improve stops the run.
    first = train(ds, split, TINY, quick(epochs=8, patience=1, lr=0.05), out_dir=tmp_path)
    stopped = len(first.history)
    assert 1 < stopped < 8
    again = train(ds, split, TINY, quick(epochs=8, patience=1, lr=0.05), out_dir=tmp_path,
                  resume=True)  # fmt: skip
    assert len(again.history) == stopped
    assert again.metrics["test"] == first.metrics["test"]


def test_checkpoint_round_trip_gives_the_same_predictions(freesolv40, tmp_path):
    ds, split = freesolv40
    result = train(ds, split, TINY, quick(), out_dir=tmp_path)
    ckpt = load_checkpoint(tmp_path)
    assert ckpt.task == "regression" and ckpt.targets == ["expt"]
    assert ckpt.scaler == result.scaler and len(ckpt.radii) == 41
    smiles = [ds.smiles[i] for i in split.test]
    from_disk = predict(ckpt, smiles, n_jobs=1)
    frame = pd.read_csv(tmp_path / "test_predictions.csv")
    np.testing.assert_allclose(from_disk.prediction[:, 0], frame["expt_pred"], rtol=1e-5)


def test_corrupt_or_foreign_checkpoints_are_refused(tmp_path):
    with pytest.raises(FileNotFoundError):
        load_checkpoint(tmp_path / "missing.pt")
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"\x00not a checkpoint" * 10)
    with pytest.raises(ValueError, match="not a readable mimoe checkpoint"):
        load_checkpoint(bad)

    class Payload:  # an arbitrary object: weights_only loading must refuse to build it
        def __reduce__(self):
            return (print, ("unpickled!",))

    evil = tmp_path / "evil.pt"
    torch.save({"format": "mimoe-checkpoint/1", "x": Payload()}, evil)
    with pytest.raises(ValueError, match="not a readable mimoe checkpoint"):
        load_checkpoint(evil)
    foreign = tmp_path / "foreign.pt"
    torch.save({"state_dict": {}}, foreign)
    with pytest.raises(ValueError, match="expected format"):
        load_checkpoint(foreign)
    assert pickle  # the stdlib module is what weights_only guards against


def test_checkpoint_checksum_catches_changed_weights_and_old_files_still_load(freesolv40, tmp_path):
    ds, split = freesolv40
    train(ds, split, TINY, quick(epochs=1), out_dir=tmp_path)
    payload = torch.load(tmp_path / "model.pt", weights_only=True)
    name = next(iter(payload["state_dict"]))
    payload["state_dict"][name] = payload["state_dict"][name] + 1e-3
    torch.save(payload, tmp_path / "changed.pt")
    with pytest.raises(ValueError, match="checksum"):
        load_checkpoint(tmp_path / "changed.pt")
    del payload["sha256"]  # a checkpoint from before the checksum
    torch.save(payload, tmp_path / "old.pt")
    assert load_checkpoint(tmp_path / "old.pt").targets == ["expt"]


def test_classification_multitask_with_missing_labels(write_csv, tmp_path):
    rows = [
        ("CCO", 1, ""), ("CCC", 0, 1), ("CCN", 1, 0), ("c1ccccc1", 0, ""), ("CC(=O)O", 1, 1),
        ("CCCl", 0, 0), ("OCCO", 1, ""), ("CCCC", 0, 1), ("c1ccncc1", 1, 0), ("CC#N", 0, 1),
        ("CCOC", 1, 0), ("CCCO", 0, 1),
    ]  # fmt: skip
    path = write_csv(rows, header=("smiles", "a", "b"))
    table = read_csv(path, target_cols=["a", "b"], task="classification")
    ds = featurize(table, progress=False, n_jobs=1)
    split = make_split("random", ds.smiles, fractions=(0.5, 0.25, 0.25))
    result = train(ds, split, TINY, quick(epochs=2), out_dir=tmp_path)
    assert result.model.out_channels == 2
    assert set(result.metrics["val"]) >= {"roc_auc", "pr_auc", "tasks_scored"}
    assert np.isfinite(pd.read_csv(tmp_path / "history.csv")["loss"]).all()


def test_prediction_replays_raw_descriptor_trajectories(freesolv40, tmp_path):
    ds, split = freesolv40
    raw = featurize(ds.table, normalize_descriptors=False, progress=False, n_jobs=1)
    assert raw.feature_settings()["normalize_descriptors"] is False
    train(raw, split, TINY, quick(epochs=1), out_dir=tmp_path)
    ckpt = load_checkpoint(tmp_path)
    assert ckpt.featurization == {
        "normalize_descriptors": False,
        "descriptor_version": 1,
        "atom_attributes": False,
    }
    smiles = [raw.data_list[i].smiles for i in split.test[:3]]
    result = predict(ckpt, list(smiles), n_jobs=1)
    expected = np.stack([raw.data_list[i].topo[0].numpy() for i in split.test[:3]])
    np.testing.assert_allclose(result.topo, expected, rtol=1e-6)
    assert result.topo.max() > 1.5  # raw Wiener indices, not the [0, 1] normalized forms


def test_a_checkpoint_from_another_descriptor_version_is_refused(freesolv40, tmp_path):
    ds, split = freesolv40
    train(ds, split, TINY, quick(epochs=1), out_dir=tmp_path)
    ckpt = load_checkpoint(tmp_path)
    ckpt.featurization["descriptor_version"] = 99
    with pytest.raises(ValueError, match="descriptor version 99"):
        predict(ckpt, ["CCO"], n_jobs=1)


def test_resume_on_differently_featurized_data_is_an_error(freesolv40, tmp_path):
    ds, split = freesolv40
    train(ds, split, TINY, quick(epochs=1), out_dir=tmp_path)
    raw = featurize(ds.table, normalize_descriptors=False, progress=False, n_jobs=1)
    with pytest.raises(ValueError, match="featurized differently.*normalize_descriptors"):
        train(raw, split, TINY, quick(epochs=2), out_dir=tmp_path, resume=True)


def test_one_class_validation_falls_back_to_the_validation_loss(write_csv, tmp_path):
    # Validation holds class 0 only: ROC-AUC is NaN at every epoch, and the old loop kept the
    # untrained epoch 0 without a word.
    rows = [
        ("CCO", 1),
        ("CCC", 0),
        ("CCN", 1),
        ("c1ccccc1", 0),
        ("CC(=O)O", 1),
        ("CCCl", 0),
        ("OCCO", 1),
        ("CCCC", 0),
        ("c1ccncc1", 0),
        ("CC#N", 0),
        ("CCOC", 0),
        ("CCCO", 1),
    ]
    table = read_csv(write_csv(rows), target_cols=["y"], task="classification")
    ds = featurize(table, progress=False, n_jobs=1)
    labels = np.array([float(d.y[0, 0]) for d in ds.data_list])
    zeros, ones = np.flatnonzero(labels == 0), np.flatnonzero(labels == 1)
    # Training is mostly class 0, so the validation loss (class 0 only) falls as it learns.
    split = Split(train=np.r_[zeros[:4], ones[:1]], val=zeros[4:6], test=np.r_[zeros[6:], ones[1:]],
                  method="manual")  # fmt: skip
    with pytest.warns(UserWarning, match="validation log-loss"):
        result = train(ds, split, TINY, quick(epochs=4, lr=5e-3), out_dir=tmp_path)
    history = pd.read_csv(tmp_path / "history.csv")
    assert result.metrics["selection_metric"] == "val_loss"
    assert np.isfinite(history["val_loss"]).all()
    assert result.metrics["best_epoch"] == int(history["val_loss"].idxmin())
    assert result.metrics["best_epoch"] > 0  # the loss did improve; epoch 0 is not kept blindly


def test_a_nan_score_never_counts_as_an_improvement_for_the_plateau_scheduler():
    from mimoe_core.training.schedule import make_scheduler, step_scheduler

    for maximize, good in ((True, 0.7), (False, 1.2)):
        opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
        scheduler = make_scheduler(opt, quick(patience=4), minimize=not maximize)
        step_scheduler(scheduler, good, maximize)
        for _ in range(3):
            step_scheduler(scheduler, float("nan"), maximize)
        assert scheduler.best == good  # NaN did not become the best value
        assert opt.param_groups[0]["lr"] == 0.5  # three bad epochs > patience 2: halved


def test_predict_keeps_input_order_and_explains(freesolv40, tmp_path):
    ds, split = freesolv40
    train(ds, split, TINY, quick(epochs=1), out_dir=tmp_path)
    result = predict(tmp_path, ["CCO", "xx", "", "c1ccccc1O", "[Na+]"], n_jobs=1)
    assert result.status == ["ok", "skipped", "skipped", "ok", "skipped"]
    assert "invalid SMILES" in result.reason[1] and result.reason[0] == ""
    ok = np.array(result.status) == "ok"
    assert np.isnan(result.prediction[~ok]).all() and np.isfinite(result.prediction[ok]).all()
    np.testing.assert_allclose(np.nansum(result.alpha[ok], 1), 1.0, rtol=1e-6)
    assert ((result.alpha[ok] > 0).sum(1) == 2).all()
    np.testing.assert_allclose(result.contributions()[ok].sum(1), result.prediction[ok], rtol=1e-5)
    assert result.topo.shape == (5, 41, 5)
    result.save(tmp_path / "expl")
    from mimoe_core.results import PredictionResult

    back = PredictionResult.load(tmp_path / "expl")
    np.testing.assert_array_equal(back.alpha, result.alpha)
    assert back.status == result.status
    # Structures: ethanol with hydrogens, kept in input order, none for skipped rows.
    assert back.num_atoms.tolist() == [9, 0, 0, 13, 0]
    z, pos = back.structure(0)
    assert sorted(z.tolist()) == [1] * 6 + [6, 6, 8] and pos.shape == (9, 3)
    np.testing.assert_array_equal(back.positions[3], result.positions[3])
    with pytest.raises(ValueError, match="skipped"):
        back.structure(1)
    # Contributions from the training mean add up to the prediction.
    base = np.asarray(back.baseline)
    steps = back.contributions_from_baseline()[ok].sum(1)
    np.testing.assert_allclose(base + steps, back.prediction[ok], rtol=1e-5)


def test_the_trainer_output_is_read_by_the_core_loader(freesolv40, tmp_path):
    from mimoe_core import run_folder

    ds, split = freesolv40
    result = train(ds, split, TINY, quick(epochs=1), out_dir=tmp_path)
    assert set(run_folder.TRAIN_OUTPUTS) <= {p.name for p in tmp_path.iterdir()}
    run = run_folder.load_run(tmp_path)
    assert run.metrics == result.metrics and run.targets == ["expt"]
    assert run.cutoffs == [float(c) for c in result.model.cutoffs]
    assert run.num_experts == result.model.num_experts == run.test.num_experts
    assert run_folder.usage_columns(run.history) == [f"usage_{e}" for e in range(1, 6)]
    frame = pd.read_csv(tmp_path / run_folder.TEST_PREDICTIONS)
    expected = run.test.to_frame(with_labels=True)
    assert list(frame.columns) == list(expected.columns)
    # the columns the file had before it came from to_frame are all still there
    assert {"row", "smiles", "expt", "expt_pred"} | {f"alpha_{e}" for e in range(1, 6)} <= set(
        frame.columns
    )
    np.testing.assert_allclose(frame["expt_pred"], run.test.prediction[:, 0])


def test_training_run_keeps_the_test_explanations(freesolv40, tmp_path):
    from mimoe_core.results import PredictionResult

    ds, split = freesolv40
    train(ds, split, TINY, quick(epochs=1), out_dir=tmp_path)
    explained = PredictionResult.load(tmp_path / "test_explained")
    frame = pd.read_csv(tmp_path / "test_predictions.csv")
    assert len(explained) == len(split.test) == len(frame)
    np.testing.assert_allclose(explained.labels[:, 0], frame["expt"])
    np.testing.assert_allclose(explained.prediction[:, 0], frame["expt_pred"])
    expected = [float(ds.data_list[i].y[0, 0]) for i in split.test]
    np.testing.assert_allclose(explained.labels[:, 0], expected)
    train_mean = np.mean([float(ds.data_list[i].y[0, 0]) for i in split.train])
    assert explained.baseline == pytest.approx([train_mean])
    assert explained.num_atoms.tolist() == [ds.data_list[i].z.numel() for i in split.test]


def test_one_progress_bar_over_the_epochs_shows_the_last_and_best_score(freesolv40, capsys):
    ds, split = freesolv40
    settings = TrainSettings(epochs=3, batch_size=16, progress=True, device="cpu")
    train(ds, split, TINY, settings)
    err = capsys.readouterr().err
    final = err.replace("\r", "\n").strip().splitlines()[-1]
    assert final.startswith("training") and "3/3" in final, final
    assert "val_rmse=" in final and "best=" in final and "(epoch " in final, final
    assert "batch" not in err  # no per-epoch batch bars any more


def test_ablation_runner_writes_one_table(freesolv40, tmp_path):
    from mimoe_core.training import ablation_variants, run_experiments

    ds, _ = freesolv40
    variants = ablation_variants({**TINY, "plain": {"cutoff": 4.0, "num_layers": 2}})
    assert list(variants) == ["plain", "one_expert", "dense", "sparse"]
    runs, summary = run_experiments(ds, variants, seeds=(0, 1), split_method="random",
                                    settings=quick(epochs=1), out_dir=tmp_path)  # fmt: skip
    assert len(runs) == 8 and set(runs["variant"]) == set(variants)
    assert list(summary.index) == ["plain", "one_expert", "dense", "sparse"]
    assert (summary["seeds"] == 2).all()
    mean = runs.groupby("variant")["test_rmse"].mean()
    assert summary.loc["dense", "test_rmse_mean"] == pytest.approx(mean["dense"])
    table = (tmp_path / "table.md").read_text()
    assert "| sparse |" in table and "±" in table
    assert (tmp_path / "runs.csv").is_file() and (
        tmp_path / "sparse" / "seed1" / "model.pt"
    ).is_file()
    where = runs.set_index(["variant", "seed"])["run_dir"]
    assert where["sparse", 1] == str(tmp_path / "sparse" / "seed1")
