"""The run folder module: names, writer and reader round trip, one source for K, no torch."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from import_guard import assert_imports_without

from mimoe_core import run_folder
from mimoe_core.data import Split
from mimoe_core.results import PredictionResult
from mimoe_core.run_folder import RunFolder, listing, load_run, write_run

CUTOFFS = [2.0, 3.0, 4.0]


def _result(cutoffs=CUTOFFS) -> PredictionResult:
    rng = np.random.default_rng(0)
    k = len(cutoffs)
    alpha = rng.random((2, k))
    return PredictionResult(
        task="regression", targets=["y"], ids=["a", "b"], smiles=["CCO", "CCN"], rows=[3, 7],
        status=["ok", "ok"], reason=["", ""], prediction=np.array([[1.0], [2.0]]),
        alpha=alpha / alpha.sum(1, keepdims=True), expert_predictions=rng.random((2, k, 1)),
        topo=rng.random((2, 4, 5)), radii=[1.0, 2.0, 3.0, 4.0], cutoffs=list(cutoffs),
        descriptor_names=list("abcde"), baseline=[0.5], labels=np.array([[1.5], [np.nan]]),
        atomic_numbers=[np.array([6, 6, 8]), np.array([6, 6, 7])],
        positions=[rng.random((3, 3)), rng.random((3, 3))],
    )  # fmt: skip


def _metrics(cutoffs=CUTOFFS) -> dict:
    return {"task": "regression", "targets": ["y"], "n_test": 2,
            "model": {"backbone": "schnet", "variant": "sparse", "top_k": 2,
                      "cutoffs": list(cutoffs)}}  # fmt: skip


def _history(k=3) -> pd.DataFrame:
    frame = pd.DataFrame({"loss": [2.0, 1.0], "epoch": [0, 1], "val_rmse": [1.5, 1.2]})
    for e in range(k):
        frame[f"usage_{e + 1}"] = [2 / k, 2 / k]
    return frame


def _write(folder, **kw):
    args = {
        "metrics": _metrics(),
        "history": _history(),
        "split": Split(np.array([0]), np.array([1]), np.array([2]), method="random", seed=0),
        "skipped": pd.DataFrame(
            [(5, "m5", "xx", "invalid SMILES")], columns=run_folder.SKIPPED_COLUMNS
        ),  # fmt: skip
        "test": _result(),
    }
    write_run(folder, **{**args, **kw})
    return folder


def test_write_then_load_round_trips(tmp_path):
    folder = _write(tmp_path / "run")
    assert listing(folder) == sorted(
        [run_folder.HISTORY, run_folder.METRICS, run_folder.SPLITS, run_folder.SKIPPED,
         run_folder.TEST_PREDICTIONS, run_folder.TEST_EXPLAINED + "/"]
    )  # fmt: skip
    run = load_run(folder)
    assert isinstance(run, RunFolder) and run.path == folder
    assert run.metrics == _metrics() and run.task == "regression" and run.targets == ["y"]
    assert run.cutoffs == CUTOFFS and run.num_experts == 3
    pd.testing.assert_frame_equal(run.history, _history())
    assert run.skipped.to_dict("records") == [
        {"row": 5, "mol_id": "m5", "input": "xx", "reason": "invalid SMILES"}
    ]
    np.testing.assert_array_equal(run.test.alpha, _result().alpha)
    np.testing.assert_array_equal(run.test.labels, _result().labels)
    assert json.loads((folder / run_folder.SPLITS).read_text())["test"] == [2]
    # test_predictions.csv is to_frame with labels: row, smiles, label, <target>_pred, alpha
    frame = pd.read_csv(folder / run_folder.TEST_PREDICTIONS)
    expected = _result().to_frame(with_labels=True)
    assert list(frame.columns) == list(expected.columns)
    assert {"row", "smiles", "y", "y_pred", "alpha_1", "alpha_3"} <= set(frame.columns)
    np.testing.assert_allclose(frame["y"], [1.5, np.nan])
    np.testing.assert_allclose(frame["y_pred"], [1.0, 2.0])
    assert frame["row"].tolist() == [3, 7]


def test_to_frame_with_labels_needs_labels():
    result = _result()
    assert "y_pred" not in result.to_frame().columns
    result.labels = None
    with pytest.raises(ValueError, match="no labels"):
        result.to_frame(with_labels=True)


def test_the_plain_files_are_optional(tmp_path):
    write_run(tmp_path, metrics=_metrics(), history=_history())
    assert listing(tmp_path) == [run_folder.HISTORY, run_folder.METRICS]
    run = load_run(tmp_path)
    assert run.test is None and run.skipped.empty and run.num_experts == 3


def test_k_has_one_source_and_disagreeing_files_are_an_error(tmp_path):
    _write(tmp_path / "a", history=_history(k=1))
    with pytest.raises(ValueError, match=r"3 expert cutoffs.*history\.csv has 1 usage"):
        load_run(tmp_path / "a")
    _write(tmp_path / "b", test=_result(cutoffs=[2.0, 5.0, 6.0]))
    with pytest.raises(ValueError, match=r"test_explained/ has cutoffs \[2\.0, 5\.0, 6\.0\]"):
        load_run(tmp_path / "b")
    metrics = {"task": "regression", "targets": ["y"]}
    _write(tmp_path / "c", metrics=metrics)
    with pytest.raises(ValueError, match="lacks model.cutoffs"):
        load_run(tmp_path / "c")


def test_the_viz_names_are_the_core_ones():
    import mimoe_viz
    import mimoe_viz.run_folder
    import mimoe_viz.runs
    from mimoe_viz._runs import usage_columns

    for module in (mimoe_viz, mimoe_viz.run_folder, mimoe_viz.runs):
        assert module.load_run is load_run and module.RunFolder is RunFolder
    assert usage_columns is run_folder.usage_columns


def test_importing_the_run_folder_loads_no_torch():
    forbidden = ("torch", "mimoe_core.training", "mimoe_core.models", "mimoe_core.inference")
    assert_imports_without("mimoe_core.run_folder", forbidden)
