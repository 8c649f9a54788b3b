from __future__ import annotations

import dataclasses
import importlib
import json
import pkgutil
import re
import shutil
import subprocess
import sys

import matplotlib
import numpy as np
import pandas as pd
import pytest
from conftest import benzene, chain, make_result, water
from matplotlib.container import BarContainer
from sklearn.metrics import roc_auc_score

import mimoe_viz
from mimoe_core.results import PredictionResult
from mimoe_viz._style import expert_colors, expert_labels
from mimoe_viz.runs import (
    RunFolder,
    ablation_figure,
    ablation_mpl,
    load_run,
    metrics_table_html,
    parity_figure,
    parity_mpl,
    roc_figure,
    roc_mpl,
    training_curves_figure,
    training_curves_mpl,
)

matplotlib.use("Agg")
pytest.importorskip("plotly")

# tiny_run (a real two-epoch FreeSolv run folder) comes from conftest.py, session-scoped.


def history_frame(val_col="val_rmse", values=(3.0, 2.0, 2.5, 1.5, 1.8), k=3):
    n = len(values)
    frame = pd.DataFrame(
        {"loss": np.linspace(2, 1, n), "task_loss": np.linspace(1.9, 0.9, n),
         "aux_loss": np.linspace(0.1, 0.05, n)}
    )  # fmt: skip
    for e in range(k):
        frame[f"usage_{e + 1}"] = np.linspace(0.2, 0.6, n) * (e + 1) / k
    frame["epoch"] = np.arange(n)
    frame[val_col] = values
    return frame


def runs_frame():
    return pd.DataFrame(
        {"variant": ["sparse", "dense", "plain"] * 3,
         "seed": np.repeat([0, 1, 2], 3),
         "test_rmse": [1.0, 2.0, 3.0, 1.5, 2.5, 3.0, 2.0, 2.0, 3.5],
         "test_mae": np.arange(9.0)}
    )  # fmt: skip


# --- load_run -------------------------------------------------------------------------------


def test_load_run_reads_every_file(tiny_run):
    run = load_run(tiny_run)
    assert isinstance(run, RunFolder) and run.path == tiny_run
    assert run.task == "regression" and run.targets == run.metrics["targets"]
    assert run.cutoffs == run.metrics["model"]["cutoffs"]
    assert run.num_experts == len(run.cutoffs) == 5
    assert len(run.history) == 2 and {"loss", "task_loss", "aux_loss", "val_rmse"} <= set(
        run.history.columns
    )
    assert [f"usage_{e + 1}" for e in range(5)] == [
        c for c in run.history.columns if c.startswith("usage_")
    ]
    assert isinstance(run.test, PredictionResult) and run.test.labels is not None
    assert len(run.test) == run.metrics["n_test"]
    assert isinstance(run.skipped, pd.DataFrame)
    assert list(run.skipped.columns) == ["row", "mol_id", "input", "reason"]
    assert "regression" in repr(run) and "K=5" in repr(run)


def test_load_run_without_metrics_lists_the_folder(tmp_path):
    (tmp_path / "history.csv").write_text("loss\n1.0\n")
    (tmp_path / "test_explained").mkdir()
    with pytest.raises(FileNotFoundError, match=r"metrics\.json.*history\.csv.*test_explained/"):
        load_run(tmp_path)
    with pytest.raises(FileNotFoundError, match="no run folder"):
        load_run(tmp_path / "missing")
    (tmp_path / "metrics.json").write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        load_run(tmp_path)
    (tmp_path / "metrics.json").write_text('{"task": "regression"}')
    with pytest.raises(ValueError, match="targets"):
        load_run(tmp_path)


def test_load_run_tolerates_missing_optional_files(tiny_run, tmp_path):
    shutil.copy(tiny_run / "metrics.json", tmp_path / "metrics.json")
    run = load_run(tmp_path)
    assert run.test is None and run.history.empty and run.skipped.empty
    assert run.cutoffs == run.metrics["model"]["cutoffs"] and run.num_experts == 5
    # K comes from metrics.json alone: a history with other usage columns is an error
    shutil.copy(tiny_run / "history.csv", tmp_path / "history.csv")
    history = pd.read_csv(tmp_path / "history.csv").drop(columns=["usage_2", "usage_3"])
    history.to_csv(tmp_path / "history.csv", index=False)
    with pytest.raises(ValueError, match="5 expert cutoffs.*3 usage columns"):
        load_run(tmp_path)


# --- training curves ------------------------------------------------------------------------


def test_training_curves_on_a_real_run(tiny_run):
    run = load_run(tiny_run)
    fig = training_curves_figure(run)
    usage = [t for t in fig.data if t.legendgroup == "usage"]
    assert [t.name for t in usage] == expert_labels(run.cutoffs)
    assert [t.line.color for t in usage] == expert_colors(5)
    for e, trace in enumerate(usage):
        np.testing.assert_allclose(trace.y, run.history[f"usage_{e + 1}"])
    best = run.history["val_rmse"].to_numpy().argmin()
    star = next(t for t in fig.data if t.name.startswith("best epoch"))
    assert star.x[0] == run.history["epoch"][best] == run.metrics["best_epoch"]
    assert star.y[0] == pytest.approx(run.history["val_rmse"].min())
    aux = next(t for t in fig.data if t.name.startswith("aux_loss"))
    assert aux.yaxis == "y2"


def test_training_curves_best_epoch_direction_and_labels():
    fig = training_curves_figure(history_frame(), layout={"height": 300})
    assert fig.layout.height == 300
    assert fig.layout.meta["best_epoch"] == 3 and fig.layout.meta["best_value"] == 1.5
    usage = [t for t in fig.data if t.legendgroup == "usage"]
    assert [t.name for t in usage] == ["E1", "E2", "E3"]
    auc = history_frame("val_roc_auc", (0.6, 0.8, 0.7, np.nan, 0.75), k=2)
    fig = training_curves_figure(auc, cutoffs=[2.0, 3.0])
    assert fig.layout.meta["best_epoch"] == 1 and fig.layout.meta["val_metric"] == "val_roc_auc"
    assert [t.name for t in fig.data if t.legendgroup == "usage"] == expert_labels([2.0, 3.0])


def test_training_curves_reject_bad_histories():
    with pytest.raises(ValueError, match="val_"):
        training_curves_figure(history_frame().drop(columns=["val_rmse"]))
    with pytest.raises(ValueError, match="empty"):
        training_curves_figure(history_frame().iloc[:0])
    with pytest.raises(ValueError, match="2 cutoffs given for 3 usage"):
        training_curves_figure(history_frame(), cutoffs=[2.0, 3.0])


def test_training_curves_mpl_lines():
    fig = training_curves_mpl(history_frame(k=3))
    ax_loss, ax_val, ax_usage, ax_aux = fig.axes
    assert len(ax_loss.lines) == 2 and len(ax_aux.lines) == 1
    assert len(ax_val.lines) == 2  # curve + best-epoch star
    assert ax_val.lines[1].get_xdata()[0] == 3
    assert len(ax_usage.lines) == 3
    assert [matplotlib.colors.to_hex(ln.get_color()) for ln in ax_usage.lines] == expert_colors(3)


def test_training_curves_cross_the_epochs_with_skipped_steps():
    history = history_frame()
    assert not [t for t in training_curves_figure(history).data if t.name == "steps skipped"]
    history["skipped_steps"] = [0, 2, 0, 1, 0]
    (crosses,) = [t for t in training_curves_figure(history).data if t.name == "steps skipped"]
    assert list(crosses.x) == [1, 3] and list(crosses.customdata) == [2, 1]
    np.testing.assert_allclose(crosses.y, history["loss"].iloc[[1, 3]])
    ax_loss = training_curves_mpl(history).axes[0]
    (marks,) = [ln for ln in ax_loss.lines if ln.get_label().startswith("steps skipped (3,")]
    assert list(marks.get_xdata()) == [1, 3]


# --- parity ---------------------------------------------------------------------------------


def test_parity_traces_hold_the_ok_entries(result):
    fig = parity_figure(result)
    points = [t for t in fig.data if t.name != "y = x"]
    index = np.concatenate([np.asarray(t.customdata)[:, 0] for t in points]).astype(int)
    x = np.concatenate([t.x for t in points])
    y = np.concatenate([t.y for t in points])
    ok = np.flatnonzero(result.ok)
    assert sorted(index) == list(ok) and 5 not in index
    np.testing.assert_allclose(x, result.labels[index, 0])
    np.testing.assert_allclose(y, result.prediction[index, 0])
    colors, labels = expert_colors(result.num_experts), expert_labels(result.cutoffs)
    for t in points:
        e = labels.index(t.name)
        assert t.marker.color == colors[e]
        rows = np.asarray(t.customdata)[:, 0].astype(int)
        assert (result.alpha[rows].argmax(axis=1) == e).all()
    assert any(result.smiles[0] in text for t in points for text in t.text)


def test_parity_title_metrics_match_numpy(result):
    fig = parity_figure(result, target="y")
    ok = result.ok
    err = result.prediction[ok, 0] - result.labels[ok, 0]
    rmse = float(np.sqrt(np.mean(err**2)))
    title = fig.layout.title.text
    assert float(re.search(r"RMSE ([\d.]+)", title).group(1)) == pytest.approx(rmse, abs=5e-4)
    assert f"n = {ok.sum()}" in title
    assert fig.layout.meta["rmse"] == pytest.approx(rmse)
    assert fig.layout.meta["mae"] == pytest.approx(np.mean(np.abs(err)))
    y = result.labels[ok, 0]
    r2 = 1 - np.sum(err**2) / np.sum((y - y.mean()) ** 2)
    assert fig.layout.meta["r2"] == pytest.approx(r2)
    line = fig.data[-1]
    assert line.name == "y = x" and list(line.x) == list(line.y)


def test_parity_rejects_bad_input(result, classification_result):
    with pytest.raises(ValueError, match="regression"):
        parity_figure(classification_result)
    with pytest.raises(ValueError, match="no labels"):
        parity_figure(dataclasses.replace(result, labels=None))
    with pytest.raises(ValueError, match="unknown target"):
        parity_figure(result, target="logP")
    with pytest.raises(ValueError, match="out of range"):
        parity_mpl(result, target=3)


def test_parity_mpl(result):
    ax = parity_mpl(result)
    dominant = result.alpha[result.ok].argmax(axis=1)
    assert len(ax.collections) == len(np.unique(dominant))
    assert len(ax.lines) == 1
    assert sum(len(c.get_offsets()) for c in ax.collections) == result.ok.sum()
    assert "RMSE" in ax.get_title()


# --- ROC ------------------------------------------------------------------------------------


def two_targets(res: PredictionResult) -> PredictionResult:
    """A second target whose labels are all 1 (one class only: no ROC curve)."""
    return dataclasses.replace(
        res,
        targets=["active", "<b>toxic</b>"],
        prediction=np.hstack([res.prediction, res.prediction[:, ::-1] * 0.5]),
        labels=np.hstack([res.labels, np.ones_like(res.labels)]),
    )


def test_roc_auc_in_the_legend(classification_result):
    res = classification_result
    auc = roc_auc_score(res.labels[:, 0], res.prediction[:, 0])
    fig = roc_figure(res)
    assert fig.data[0].name == f"y (AUC = {auc:.3f})"
    assert fig.layout.meta["auc"]["y"] == pytest.approx(auc)
    assert fig.data[-1].name == "chance"
    assert fig.data[0].x[0] == 0 and fig.data[0].y[-1] == 1


def test_roc_skips_one_class_targets(classification_result):
    res = two_targets(classification_result)
    fig = roc_figure(res, pr=True, layout={"width": 900})
    curves = [t for t in fig.data if t.name != "chance"]
    assert len(curves) == 2  # ROC and PR of the first target only
    assert fig.layout.meta["skipped"] == ["<b>toxic</b>"]
    assert "(one class only): &lt;b&gt;toxic&lt;/b&gt;" in fig.layout.title.text
    assert fig.layout.width == 900 and curves[1].name.startswith("active (AP = ")
    ax = roc_mpl(res)
    assert len(ax.lines) == 2 and "one class only" in ax.get_title()
    assert ax.get_legend().get_texts()[0].get_text().startswith("active (AUC = ")


def test_roc_rejects_bad_input(result, classification_result):
    with pytest.raises(ValueError, match="classification"):
        roc_figure(result)
    only_ones = dataclasses.replace(
        classification_result, labels=np.ones_like(classification_result.labels)
    )
    with pytest.raises(ValueError, match="both classes"):
        roc_mpl(only_ones)


# --- ablation -------------------------------------------------------------------------------


def test_ablation_bars_are_summarize_means_and_stds():
    from mimoe_core.analysis.tables import summarize

    runs = runs_frame()
    fig = ablation_figure(runs)
    bar = fig.data[0]
    summary = summarize(runs.assign(seconds=1.0))
    assert list(bar.x) == ["sparse", "dense", "plain"] == list(summary.index)
    np.testing.assert_allclose(bar.y, summary["test_rmse_mean"])
    np.testing.assert_allclose(bar.error_y.array, summary["test_rmse_std"])
    np.testing.assert_allclose(bar.error_y.array, runs.groupby("variant", sort=False)[
        "test_rmse"].std(ddof=1))  # fmt: skip
    assert len(fig.data[1].y) == 9  # the seeds
    fig = ablation_figure(runs, metric="test_mae")
    np.testing.assert_allclose(fig.data[0].y, [3.0, 4.0, 5.0])


def test_ablation_one_panel_per_dataset_from_csv(tmp_path):
    reg = runs_frame().assign(dataset="esol")
    cls = (
        runs_frame()
        .drop(columns=["test_rmse", "test_mae"])
        .assign(dataset="bace", test_roc_auc=np.linspace(0.6, 0.9, 9))
    )
    path = tmp_path / "accuracy_cpu.csv"
    pd.concat([reg, cls]).to_csv(path, index=False)
    fig = ablation_figure(path)
    bars = [t for t in fig.data if t.type == "bar"]
    assert len(bars) == 2
    titles = [a.text for a in fig.layout.annotations]
    assert titles[0].startswith("esol · test_rmse") and titles[1].startswith("bace · test_roc_auc")
    np.testing.assert_allclose(bars[1].y, cls.groupby("variant", sort=False)["test_roc_auc"].mean())
    assert bars[1].xaxis == "x2"
    fig = ablation_figure(path, metric="test_rmse")
    assert fig.layout.meta["left_out"] == ["bace"] and "bace" in fig.layout.title.text
    (tmp_path / "runs.csv").write_text(runs_frame().to_csv(index=False))
    assert len(ablation_figure(tmp_path).data) == 2
    with pytest.raises(ValueError, match="pass dataset="):
        ablation_mpl(path)
    ax = ablation_mpl(path, dataset="bace")
    assert len(ax.patches) == 3 and "test_roc_auc" in ax.get_ylabel()


def test_ablation_rejects_bad_tables(tmp_path):
    with pytest.raises(ValueError, match="variant"):
        ablation_figure(runs_frame().drop(columns=["variant"]))
    with pytest.raises(ValueError, match="test_rmse nor test_roc_auc"):
        ablation_figure(runs_frame().drop(columns=["test_rmse"]))
    with pytest.raises(ValueError, match="no column 'test_r2'"):
        ablation_figure(runs_frame(), metric="test_r2")
    with pytest.raises(FileNotFoundError, match="no runs table"):
        ablation_figure(tmp_path / "nothing.csv")


def test_ablation_mpl_bars_and_error_bars():
    runs = runs_frame()
    ax = ablation_mpl(runs)
    heights = [p.get_height() for p in ax.patches]
    np.testing.assert_allclose(heights, runs.groupby("variant", sort=False)["test_rmse"].mean())
    assert [t.get_text() for t in ax.get_xticklabels()] == ["sparse", "dense", "plain"]
    (bars,) = [c for c in ax.containers if isinstance(c, BarContainer)]
    (errorbar,) = bars.errorbar.lines[2]
    segments = errorbar.get_segments()
    np.testing.assert_allclose(
        [s[1, 1] - s[0, 1] for s in segments],
        2 * runs.groupby("variant", sort=False)["test_rmse"].std(ddof=1),
    )


# --- metrics table, imports -----------------------------------------------------------------


def test_metrics_table_html(tiny_run):
    run = load_run(tiny_run)
    table = metrics_table_html(run)
    assert table.startswith("<table") and table.endswith("</table>")
    assert f"{run.metrics['test']['rmse']:.4g}" in table
    assert f"{run.metrics['val']['mae']:.4g}" in table
    for key in ("n_train", "n_val", "n_test", "n_skipped", "backbone", "variant", "top_k"):
        assert f"<td>{key}</td>" in table
    assert "2, 2.5, 3, 3.5, 4" in table
    hostile = {**run.metrics, "targets": ["<script>alert(1)</script>"]}
    assert "&lt;script&gt;" in metrics_table_html(hostile) and "<script>" not in (
        metrics_table_html(hostile)
    )
    with pytest.raises(TypeError, match="dict or RunFolder"):
        metrics_table_html([1, 2])


def test_missing_plotly_names_the_extra(monkeypatch, result):
    monkeypatch.setitem(sys.modules, "plotly.graph_objects", None)
    with pytest.raises(ImportError, match=re.escape('pip install "mimoe[viz]"')):
        parity_figure(result)
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    with pytest.raises(ImportError, match=re.escape('pip install "mimoe[viz]"')):
        parity_mpl(result)


# Every module of mimoe_viz, the split-out ones included; a new module is added here.
VIZ_MODULES = {
    "_checks", "_deps", "_marks", "_mol3d_html", "_mol3d_png", "_routing", "_runs", "_style",
    "ablation_figures", "analysis", "assets", "curves", "dashboards", "dataset_routing",
    "evaluation_figures", "export", "mol3d", "notebook", "panels", "persistence", "report",
    "routing", "run_folder", "runs", "tables", "teaching", "training_figures",
    "uncertainty_figures", "embedding_figures", "cost_figures",
}  # fmt: skip


_NO_TORCH = (
    "bad = [m for m in sys.modules if m.startswith(('mimoe_core.training', "
    "'mimoe_core.models', 'mimoe_core.inference', 'torch'))]\n"
    "assert not bad, bad\n"
)


def test_the_visual_layer_imports_no_training_or_model_code():
    found = {m.name for m in pkgutil.iter_modules(mimoe_viz.__path__)}
    assert found == VIZ_MODULES, found ^ VIZ_MODULES
    code = (
        "import importlib, sys\n"
        f"for name in {sorted(VIZ_MODULES)!r}:\n"
        "    importlib.import_module('mimoe_viz.' + name)\n"
        + _NO_TORCH
        + "print(' '.join(sorted(m for m in sys.modules if m.startswith('mimoe_core'))))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    core = out.stdout.split()
    # The numbers behind the figures come from the torch-free analysis layer.
    assert "mimoe_core.analysis" in core, core
    # Every mimoe_core module the visual layer uses imports without torch on its own, in a
    # fresh interpreter that has not imported mimoe_viz.
    code = (
        "import importlib, sys\n"
        f"for name in {core!r}:\n"
        "    importlib.import_module(name)\n"
        + _NO_TORCH
        + "assert not [m for m in sys.modules if m.startswith('mimoe_viz')]\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("runs", ("run_folder", "training_figures", "evaluation_figures", "ablation_figures",
                  "tables")),
        ("curves", ("persistence",)),
        ("routing", ("dataset_routing",)),
    ],
)  # fmt: skip
def test_split_modules_stay_importable_from_the_old_ones(old, new):
    module = importlib.import_module(f"mimoe_viz.{old}")
    moved = [importlib.import_module(f"mimoe_viz.{name}") for name in new]
    for part in moved:
        for name in part.__all__:
            assert getattr(module, name) is getattr(part, name), (old, name)
    assert set(module.__all__) >= {n for part in moved for n in part.__all__}
    for name in module.__all__:
        assert getattr(mimoe_viz, name, getattr(module, name)) is getattr(module, name)


def test_parity_with_top1_routing_round_trips_json():
    res = make_result([benzene(), water(), chain(4)], top_k=1)
    fig = parity_figure(res)
    assert json.loads(fig.to_json())["layout"]["meta"]["n"] == 3
    assert sum(len(t.x) for t in fig.data[:-1]) == 3
