import subprocess
import sys

import numpy as np
import pytest

from mimoe_core.analysis.uncertainty import (
    ConformalRegressor,
    coverage_curve,
    miscalibration_area,
    rmv_rmse_bins,
)
from mimoe_viz._style import REFERENCE, SERIES

pytest.importorskip("plotly")

from mimoe_viz.uncertainty_figures import (  # noqa: E402 - after the plotly skip
    coverage_calibration_figure,
    error_vs_std_figure,
    parity_interval_figure,
)


def gaussian_data(m=200, t=2, seed=0):
    rng = np.random.default_rng(seed)
    pred = rng.normal(size=(m, t))
    std = rng.uniform(0.2, 2.0, size=(m, t))
    target = pred + std * rng.normal(size=(m, t))
    target[:5, -1] = np.nan
    return pred, std, target


def test_coverage_calibration_figure_draws_each_target_and_the_diagonal():
    pred, std, target = gaussian_data()
    expected, observed = coverage_curve(pred, std, target)
    fig = coverage_calibration_figure(expected, observed, target_names=["logS", "logP"])
    assert len(fig.data) == 3
    areas = miscalibration_area(expected, observed)
    for t, trace in enumerate(fig.data[:2]):
        np.testing.assert_allclose(trace.x, expected)
        np.testing.assert_allclose(trace.y, observed[:, t])
        assert trace.name == f"{['logS', 'logP'][t]} (area {areas[t]:.3f})"
        assert trace.line.color == SERIES[t]
    ideal = fig.data[2]
    assert ideal.name == "ideal" and list(ideal.x) == [0.0, 1.0] and list(ideal.y) == [0.0, 1.0]
    assert ideal.line.color == REFERENCE and ideal.line.dash == "dash"
    assert fig.layout.xaxis.title.text == "expected coverage"
    assert fig.layout.yaxis.title.text == "observed coverage"
    assert "Coverage calibration" in fig.layout.title.text
    assert fig.layout.meta["miscalibration_area"]["logP"] == pytest.approx(areas[1])


def test_coverage_calibration_figure_takes_one_curve_and_layout_overrides():
    fig = coverage_calibration_figure([0, 0.5, 1], [0, 0.25, 1], layout={"width": 300})
    assert [tr.name for tr in fig.data] == ["y (area 0.125)", "ideal"]
    assert fig.layout.width == 300
    with pytest.raises(ValueError, match="one row per level"):
        coverage_calibration_figure([0, 0.5, 1], [0, 1])
    with pytest.raises(ValueError, match="target_names has 2 names for 1 targets"):
        coverage_calibration_figure([0, 1], [0, 1], target_names=["a", "b"])


def test_error_vs_std_figure_points_and_bins():
    pred, std, target = gaussian_data()
    fig = error_vs_std_figure(pred, std, target, target_names=["a", "b"], n_bins=5)
    assert len(fig.data) == 6  # per target: points, binned line, diagonal
    bins = rmv_rmse_bins(pred, std, target, n_bins=5)
    for t in range(2):
        points, binned, diagonal = fig.data[3 * t : 3 * t + 3]
        keep = ~np.isnan(target[:, t])
        assert points.name == "|error|" and points.mode == "markers"
        np.testing.assert_allclose(points.x, std[keep, t])
        np.testing.assert_allclose(points.y, np.abs(pred - target)[keep, t])
        assert binned.name == "binned RMSE"
        np.testing.assert_allclose(binned.x, bins[t][0])
        np.testing.assert_allclose(binned.y, bins[t][1])
        assert diagonal.name == "RMSE = RMV" and diagonal.x[0] == 0.0
    assert [tr.showlegend for tr in fig.data[3:]] == [False, False, False]  # one legend entry each
    assert len(fig.data[4].x) == 5
    assert fig.layout.xaxis.title.text == "predicted std (a)"
    assert fig.layout.xaxis2.title.text == "predicted std (b)"
    assert fig.layout.yaxis.title.text == "|error|, RMSE"
    assert [a.text for a in fig.layout.annotations] == ["a", "b"]
    assert fig.layout.meta["rmse"]["b"] == pytest.approx(bins[1][1].tolist())


def test_error_vs_std_figure_checks_inputs():
    pred, std, target = gaussian_data(t=1)
    with pytest.raises(ValueError, match="std must be non-negative"):
        error_vs_std_figure(pred, -std, target)
    with pytest.raises(ValueError, match="shape mismatch"):
        error_vs_std_figure(pred, std[:10], target)


def test_parity_interval_figure_bars_and_coverage_in_titles():
    pred, std, target = gaussian_data(m=300)
    cp = ConformalRegressor(0.9).fit(pred[:150], target[:150], std=std[:150])
    lower, upper = cp.interval(pred[150:], std=std[150:])
    p, y = pred[150:], target[150:]
    fig = parity_interval_figure(p, lower, upper, y, target_names=["a", "b"])
    assert len(fig.data) == 4
    for t, name in enumerate(["a", "b"]):
        trace = fig.data[2 * t]
        keep = ~np.isnan(y[:, t])
        np.testing.assert_allclose(trace.x, y[keep, t])
        np.testing.assert_allclose(trace.y, p[keep, t])
        np.testing.assert_allclose(trace.error_y.array, (upper - p)[keep, t])
        np.testing.assert_allclose(trace.error_y.arrayminus, (p - lower)[keep, t])
        assert trace.error_y.symmetric is False
        cov = np.mean((lower <= y) & (y <= upper), axis=0, where=~np.isnan(y))[t]
        assert fig.layout.meta["coverage"][name] == pytest.approx(cov)
        assert fig.layout.annotations[t].text.startswith(f"{name}: coverage {cov:.3f}")
        assert fig.data[2 * t + 1].name == "y = x"
    assert fig.layout.xaxis.title.text == "true a" and fig.layout.yaxis2.title.text == "predicted b"
    assert fig.layout.title.text.startswith("Parity with prediction intervals: mean coverage")


def test_parity_interval_figure_leaves_out_unbounded_bars():
    pred = np.array([0.0, 1.0, 2.0])
    target = np.array([0.5, 1.0, 2.5])
    lower = np.array([-1.0, -np.inf, 1.8])
    upper = np.array([1.0, np.inf, 2.2])
    fig = parity_interval_figure(pred, lower, upper, target)
    bars = np.asarray(fig.data[0].error_y.array, dtype=float)
    assert np.isnan(bars[1]) and bars[0] == pytest.approx(1.0)
    assert fig.layout.meta["coverage"]["y"] == pytest.approx(2 / 3)
    assert fig.layout.meta["width"]["y"] == np.inf
    with pytest.raises(ValueError, match="lower must not exceed upper"):
        parity_interval_figure(pred, upper, lower, target)


def test_uncertainty_figures_import_without_torch():
    code = "import mimoe_viz.uncertainty_figures, sys; assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)
