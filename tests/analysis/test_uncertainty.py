"""Uncertainty evaluation and calibration against independent references and properties."""

import json
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from import_guard import assert_imports_without
from scipy.special import erfinv
from scipy.stats import norm, spearmanr
from sklearn.isotonic import IsotonicRegression
from sklearn.metrics import brier_score_loss

from mimoe_core.analysis.uncertainty import (
    ConformalRegressor,
    ProbabilityCalibrator,
    ZScaling,
    classification_uncertainty_metrics,
    coverage_curve,
    ensemble_mean_std,
    miscalibration_area,
    regression_uncertainty_metrics,
    rmv_rmse_bins,
    weighted_expert_spread,
)


def gaussian_data(m=5000, t=2, seed=0, scale=1.0):
    """Labels drawn from N(pred, std^2); ``std * scale`` is what the model claims."""
    rng = np.random.default_rng(seed)
    pred = rng.normal(size=(m, t))
    std = rng.uniform(0.2, 2.0, size=(m, t))
    target = pred + std * rng.normal(size=(m, t))
    return pred, std * scale, target


def miscalibrated_probs(m=4000, seed=0):
    """Overconfident probabilities: the truth is sigmoid(z), the model says sigmoid(3 z)."""
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(m, 2))
    target = (rng.random((m, 2)) < 1 / (1 + np.exp(-z))).astype(float)
    return 1 / (1 + np.exp(-3 * z)), target


def chemprop_miscalibration_area(pred, std, target, bins=100):
    """chemprop v1's MiscalibrationAreaEvaluator, rewritten from its description (one target)."""
    abs_error = np.abs(pred - target)
    fractions = np.zeros(bins + 1)
    fractions[bins] = 1.0
    for i in range(1, bins):
        scaling = erfinv(i / bins) * np.sqrt(2)
        fractions[i] = np.mean(std * scaling >= abs_error)
    steps = np.linspace(0, 1, bins + 1)
    return np.sum(0.01 * np.abs(fractions - steps))


# --------------------------------------------------------------------------- regression metrics


def test_nll_matches_scipy_logpdf():
    pred, std, target = gaussian_data(m=300, t=3, seed=1)
    out = regression_uncertainty_metrics(pred, std, target)
    ref = [-np.mean(norm.logpdf(target[:, t], pred[:, t], std[:, t])) for t in range(3)]
    np.testing.assert_allclose(out["per_target"]["nll"], ref, rtol=1e-12)
    assert out["nll"] == pytest.approx(np.mean(ref))
    assert out["n"] == [300, 300, 300]


def test_spearman_matches_scipy_and_is_nan_for_constant_std():
    pred, std, target = gaussian_data(m=200, t=1, seed=2)
    out = regression_uncertainty_metrics(pred, std, target)
    ref = spearmanr(np.abs(pred - target)[:, 0], std[:, 0]).statistic
    assert out["spearman"] == pytest.approx(ref)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no scipy ConstantInputWarning leaks out
        flat = regression_uncertainty_metrics(pred, np.ones_like(std), target)
    assert np.isnan(flat["spearman"])
    assert np.isnan(flat["per_target"]["spearman"][0])


def test_calibrated_gaussians_score_well_and_inflated_std_scores_badly():
    good = regression_uncertainty_metrics(*gaussian_data(scale=1.0))
    bad = regression_uncertainty_metrics(*gaussian_data(scale=3.0))
    assert good["miscalibration_area"] < 0.05
    assert good["ence"] < 0.1
    assert bad["miscalibration_area"] > 0.2
    assert bad["ence"] > 0.5
    assert bad["nll"] > good["nll"]


def test_miscalibration_area_equals_chemprop_definition():
    pred, std, target = gaussian_data(m=500, t=2, seed=3, scale=0.7)
    out = regression_uncertainty_metrics(pred, std, target)
    ref = [chemprop_miscalibration_area(pred[:, t], std[:, t], target[:, t]) for t in range(2)]
    np.testing.assert_allclose(out["per_target"]["miscalibration_area"], ref, atol=1e-12)


def test_coverage_curve_counts_central_intervals():
    pred, std, target = gaussian_data(m=400, t=2, seed=4)
    levels = np.array([0.0, 0.3, 0.68, 0.95, 1.0])
    expected, observed = coverage_curve(pred, std, target, levels)
    assert observed.shape == (5, 2)
    np.testing.assert_array_equal(expected, levels)
    for i, p in enumerate(levels[1:-1], start=1):
        lo, hi = norm.interval(p, loc=pred, scale=std)
        np.testing.assert_allclose(observed[i], np.mean((lo <= target) & (target <= hi), axis=0))
    np.testing.assert_array_equal(observed[0], 0.0)
    np.testing.assert_array_equal(observed[-1], 1.0)
    default_expected, default_observed = coverage_curve(pred, std, target)
    assert default_expected.shape == (101,) and default_observed.shape == (101, 2)
    assert np.all(np.diff(default_observed, axis=0) >= 0)


def test_miscalibration_area_of_hand_curves():
    assert miscalibration_area([0, 0.5, 1], [0, 0.5, 1]) == 0.0
    assert miscalibration_area([0, 1], [1, 1]) == pytest.approx(0.5)
    two = miscalibration_area([0, 0.5, 1], [[0, 0], [1, 0.5], [1, 1]])
    np.testing.assert_allclose(two, [0.25, 0.0])


def test_ence_and_bins_by_hand():
    pred = np.zeros(4)
    std = np.array([2.0, 1.0, 2.0, 1.0])  # sorted: the two 1.0s, then the two 2.0s
    target = np.array([0.0, 1.0, 4.0, -1.0])
    rmv, rmse = rmv_rmse_bins(pred, std, target, n_bins=2)[0]
    np.testing.assert_allclose(rmv, [1.0, 2.0])
    np.testing.assert_allclose(rmse, [1.0, np.sqrt(8)])
    out = regression_uncertainty_metrics(pred, std, target, n_bins=2)
    assert out["ence"] == pytest.approx((0.0 + abs(2 - np.sqrt(8)) / 2) / 2)
    # more bins than molecules: one molecule per bin
    assert rmv_rmse_bins(pred, std, target, n_bins=10)[0][0].size == 4


def test_interval_coverage_and_width_by_hand():
    pred = np.array([[0.0], [0.0], [0.0], [0.0]])
    target = np.array([[0.5], [2.0], [-0.9], [np.nan]])
    lower, upper = pred - 1.0, pred + np.array([[1.0], [1.0], [3.0], [9.0]])
    out = regression_uncertainty_metrics(pred, np.ones_like(pred), target, lower, upper)
    assert out["coverage"] == pytest.approx(2 / 3)
    assert out["width"] == pytest.approx((2 + 2 + 4) / 3)  # the unlabelled row is left out
    assert "coverage" not in regression_uncertainty_metrics(pred, np.ones_like(pred), target)


def test_target_without_labels_is_nan_and_left_out_of_the_mean():
    pred, std, target = gaussian_data(m=100, t=2, seed=5)
    target[:, 1] = np.nan
    out = regression_uncertainty_metrics(pred, std, target)
    assert np.isnan(out["per_target"]["nll"][1])
    assert out["nll"] == out["per_target"]["nll"][0]
    assert out["n"] == [100, 0]


def test_nan_label_rows_do_not_change_regression_metrics():
    pred, std, target = gaussian_data(m=200, t=2, seed=6)
    lower, upper = pred - 1.5 * std, pred + 1.5 * std
    base = regression_uncertainty_metrics(pred, std, target, lower, upper)
    rng = np.random.default_rng(0)
    extra = (rng.normal(size=(50, 2)), rng.uniform(0.1, 5, (50, 2)), np.full((50, 2), np.nan))
    stacked = [np.vstack([a, b]) for a, b in zip((pred, std, target), extra, strict=True)]
    lo = np.vstack([lower, extra[0] - 1])
    hi = np.vstack([upper, extra[0] + 1])
    order = rng.permutation(250)  # interleave the unlabelled rows
    out = regression_uncertainty_metrics(*(a[order] for a in stacked), lo[order], hi[order])
    for key in ("nll", "spearman", "miscalibration_area", "ence", "coverage", "width"):
        assert out[key] == pytest.approx(base[key], rel=1e-12), key


def test_one_dimensional_input_is_one_target():
    pred, std, target = gaussian_data(m=100, t=1, seed=7)
    assert regression_uncertainty_metrics(pred[:, 0], std[:, 0], target[:, 0]) == (
        regression_uncertainty_metrics(pred, std, target)
    )


# --------------------------------------------------------------------------- z-scaling


def test_z_scaling_recovers_the_missing_factor_and_lowers_nll():
    pred, std, target = gaussian_data(m=5000, t=2, seed=8, scale=0.5)
    z = ZScaling().fit(pred, std, target)
    np.testing.assert_allclose(z.scale_, 2.0, rtol=0.05)
    after = regression_uncertainty_metrics(pred, z.apply(std), target)
    before = regression_uncertainty_metrics(pred, std, target)
    assert after["nll"] < before["nll"]
    assert after["miscalibration_area"] < 0.05


def test_z_scale_is_the_nll_optimum():
    pred, std, target = gaussian_data(m=300, t=1, seed=9, scale=1.7)
    s = ZScaling().fit(pred, std, target).scale_[0]
    grid = s * np.array([0.9, 0.97, 1.0, 1.03, 1.1])
    nll = [regression_uncertainty_metrics(pred, std * g, target)["nll"] for g in grid]
    assert int(np.argmin(nll)) == 2


def test_z_scaling_warns_for_a_target_without_labels():
    pred, std, target = gaussian_data(m=50, t=2, seed=10)
    target[:, 1] = np.nan
    with pytest.warns(UserWarning, match="target 1 has no validation label"):
        z = ZScaling().fit(pred, std, target)
    assert z.scale_[1] == 1.0


# --------------------------------------------------------------------------- conformal


def _split_coverage(normalized, n_cal, coverage, seed, regularized=False, shrink=1.0):
    """Coverage and width on 500 test molecules; ``shrink`` divides half the test stds."""
    rng = np.random.default_rng(seed)
    n = n_cal + 500
    pred = rng.normal(size=n)
    std = rng.uniform(0.1, 3.0, size=n)
    target = pred + std * rng.normal(size=n)
    shown = std.copy()
    shown[n_cal::2] /= shrink  # an estimator that is overconfident on shifted molecules
    cal_std = std[:n_cal] if normalized else None
    cp = ConformalRegressor(coverage, regularized).fit(pred[:n_cal], target[:n_cal], std=cal_std)
    lo, hi = cp.interval(pred[n_cal:], std=shown[n_cal:] if normalized else None)
    inside = (lo <= target[n_cal:]) & (target[n_cal:] <= hi)
    return float(np.mean(inside)), float(np.mean(hi - lo))


@pytest.mark.parametrize(
    ("normalized", "regularized"), [(True, False), (True, True), (False, False)]
)
@pytest.mark.parametrize("coverage", [0.8, 0.9])
def test_split_conformal_coverage_is_nominal_over_random_splits(normalized, regularized, coverage):
    covs = [_split_coverage(normalized, 100, coverage, seed, regularized)[0] for seed in range(300)]
    # E[coverage] = ceil(101 c) / 101 >= c; the mean over 300 splits sits within 2 %.
    assert abs(np.mean(covs) - coverage) < 0.02
    assert np.mean(covs) >= coverage - 0.01


def test_normalized_conformal_is_narrower_on_heteroscedastic_data():
    norm_cov, norm_width = np.mean([_split_coverage(True, 300, 0.9, s) for s in range(40)], axis=0)
    abs_cov, abs_width = np.mean([_split_coverage(False, 300, 0.9, s) for s in range(40)], axis=0)
    assert norm_cov == pytest.approx(abs_cov, abs=0.02)
    assert norm_width < 0.9 * abs_width


def test_regularized_conformal_sits_between_normalized_and_absolute():
    runs = {
        name: np.mean([_split_coverage(norm, 300, 0.9, s, reg) for s in range(40)], axis=0)
        for name, norm, reg in [("norm", True, False), ("reg", True, True), ("abs", False, False)]
    }
    # on exchangeable data its intervals still follow the std: narrower than one width
    assert runs["norm"][1] < runs["reg"][1] < runs["abs"][1]
    # an estimator overconfident by 4x on half the test molecules: the normalized intervals
    # lose coverage there, the regularized ones lose less
    shifted = {
        reg: np.mean([_split_coverage(True, 300, 0.9, s, reg, shrink=4.0)[0] for s in range(40)])
        for reg in (False, True)
    }
    assert shifted[False] < 0.75 < shifted[True] < 0.9


def test_regularized_conformal_with_a_constant_std_is_the_absolute_interval():
    rng = np.random.default_rng(3)
    pred, target = rng.normal(size=50), rng.normal(size=50)
    reg = ConformalRegressor(0.9, regularized=True).fit(pred, target, std=np.full(50, 0.7))
    assert reg.offset_.tolist() == [0.7]
    plain = ConformalRegressor(0.9).fit(pred, target)
    got, want = reg.interval(pred[:5], np.full(5, 0.7)), plain.interval(pred[:5])
    np.testing.assert_allclose(got, want, rtol=1e-12)


def test_conformal_quantile_is_the_finite_sample_order_statistic():
    scores = np.arange(1.0, 20.0)  # n = 19
    cp = ConformalRegressor(0.9).fit(np.zeros(19), scores[::-1])
    assert cp.quantiles(0.9)[0] == 18.0  # k = ceil(20 * 0.9) = 18
    assert cp.quantiles(0.5)[0] == 10.0  # k = ceil(20 * 0.5) = 10
    lo, hi = cp.interval(np.array([1.0, 2.0]), coverage=0.5)
    np.testing.assert_array_equal(lo, [-9.0, -8.0])
    np.testing.assert_array_equal(hi, [11.0, 12.0])


def test_other_coverage_at_predict_time_equals_a_refit():
    pred, std, target = gaussian_data(m=200, t=2, seed=11)
    served = ConformalRegressor(0.9).fit(pred, target, std=std).interval(pred, std, coverage=0.7)
    refit = ConformalRegressor(0.7).fit(pred, target, std=std).interval(pred, std)
    np.testing.assert_array_equal(served[0], refit[0])
    np.testing.assert_array_equal(served[1], refit[1])


def test_too_few_calibration_scores_give_an_infinite_interval_with_a_warning():
    with pytest.warns(UserWarning, match="5 calibration scores are too few for coverage 0.9"):
        cp = ConformalRegressor(0.9).fit(np.zeros(5), np.arange(5.0))
    with pytest.warns(UserWarning, match="needs at least 9"):
        lo, hi = cp.interval(np.zeros(3))
    assert np.all(np.isneginf(lo)) and np.all(np.isposinf(hi))
    lo, hi = cp.interval(np.zeros(3), coverage=0.5)  # enough for a lower coverage
    assert np.all(np.isfinite(hi))


def test_conformal_rejects_bad_coverage_and_mismatched_std():
    with pytest.raises(ValueError, match=r"coverage must be in \(0, 1\), got 1.5"):
        ConformalRegressor(1.5)
    cp = ConformalRegressor().fit(np.zeros(20), np.arange(20.0))
    with pytest.raises(ValueError, match=r"coverage must be in \(0, 1\), got 0"):
        cp.interval(np.zeros(2), coverage=0)
    with pytest.raises(ValueError, match="fitted without std"):
        cp.interval(np.zeros(2), std=np.ones(2))
    cp_norm = ConformalRegressor().fit(np.zeros(20), np.arange(20.0), std=np.ones(20))
    with pytest.raises(ValueError, match="fitted with std"):
        cp_norm.interval(np.zeros(2))
    with pytest.raises(ValueError, match="std must be positive"):
        ConformalRegressor().fit(np.zeros(20), np.arange(20.0), std=np.zeros(20))
    with pytest.raises(ValueError, match="pred has 2 targets, the calibration was fitted on 1"):
        cp.interval(np.zeros((3, 2)))


# --------------------------------------------------------------------------- classification


def test_ece_and_brier_by_hand_and_against_sklearn():
    prob = np.array([0.05, 0.15, 0.12, 0.55, 0.58, 0.95])
    target = np.array([0.0, 1.0, 0.0, 1.0, 1.0, 1.0])
    out = classification_uncertainty_metrics(prob, target)
    # bins: [0, 0.1) {0.05: y 0}, [0.1, 0.2) {0.15, 0.12: y 1, 0}, [0.5, 0.6) {0.55, 0.58: y 1, 1},
    # [0.9, 1] {0.95: y 1}
    ece = (1 * 0.05 + 2 * abs(0.5 - 0.135) + 2 * abs(1 - 0.565) + 1 * 0.05) / 6
    assert out["ece"] == pytest.approx(ece)
    assert out["brier"] == pytest.approx(brier_score_loss(target, prob))
    assert out["per_target"]["brier"] == [pytest.approx(brier_score_loss(target, prob))]


def test_classification_metrics_mask_nan_labels_per_task():
    prob, target = miscalibrated_probs(m=300, seed=1)
    base = classification_uncertainty_metrics(prob, target)
    extra_prob = np.random.default_rng(2).random((40, 2))
    nan_rows = np.full((40, 2), np.nan)
    out = classification_uncertainty_metrics(
        np.vstack([extra_prob, prob]), np.vstack([nan_rows, target])
    )
    assert out == base
    assert out["n"] == [300, 300]


@pytest.mark.parametrize("method", ["platt", "isotonic"])
def test_calibrators_reduce_ece_on_overconfident_probabilities(method):
    prob, target = miscalibrated_probs(seed=0)
    test_prob, test_target = miscalibrated_probs(seed=1)
    cal = ProbabilityCalibrator(method).fit(prob, target)
    before = classification_uncertainty_metrics(test_prob, test_target)
    after = classification_uncertainty_metrics(cal.apply(test_prob), test_target)
    assert before["ece"] > 0.08
    assert after["ece"] < 0.5 * before["ece"]
    assert after["brier"] < before["brier"]


def test_platt_recovers_the_temperature():
    prob, target = miscalibrated_probs(m=8000, seed=3)
    cal = ProbabilityCalibrator("platt").fit(prob, target)
    for par in cal.params_:
        assert par["coef"] == pytest.approx(1 / 3, abs=0.05)  # logit(p) = 3 z, the truth is z
        assert par["intercept"] == pytest.approx(0.0, abs=0.1)


def test_isotonic_matches_sklearn_predict():
    prob, target = miscalibrated_probs(m=500, seed=4)
    cal = ProbabilityCalibrator("isotonic").fit(prob, target)
    query = np.concatenate([np.linspace(0, 1, 201), prob[:50, 0]])
    ref = IsotonicRegression(out_of_bounds="clip").fit(prob[:, 0], target[:, 0]).predict(query)
    np.testing.assert_allclose(cal.apply(np.stack([query, query], axis=1))[:, 0], ref, atol=1e-12)


def test_single_class_task_stays_identity_with_a_warning():
    prob, target = miscalibrated_probs(m=200, seed=5)
    target[:, 1] = 1.0
    with pytest.warns(UserWarning, match="task 1 has a single class"):
        cal = ProbabilityCalibrator("platt").fit(prob, target)
    out = cal.apply(prob)
    np.testing.assert_array_equal(out[:, 1], prob[:, 1])
    assert not np.allclose(out[:, 0], prob[:, 0])


def test_nan_label_rows_do_not_change_the_calibrators():
    prob, target = miscalibrated_probs(m=300, seed=6)
    noisy_prob = np.vstack([prob, np.random.default_rng(0).random((30, 2))])
    noisy_target = np.vstack([target, np.full((30, 2), np.nan)])
    for method in ("platt", "isotonic"):
        a = ProbabilityCalibrator(method).fit(prob, target)
        b = ProbabilityCalibrator(method).fit(noisy_prob, noisy_target)
        np.testing.assert_allclose(a.apply(prob), b.apply(prob), rtol=1e-6)


def test_classification_inputs_are_checked():
    with pytest.raises(ValueError, match=r"prob must be probabilities in \[0, 1\]"):
        classification_uncertainty_metrics([0.5, 1.2], [0.0, 1.0])
    with pytest.raises(ValueError, match="target must hold 0/1 labels"):
        ProbabilityCalibrator().fit([0.5, 0.2], [0.0, 2.0])
    with pytest.raises(ValueError, match="method must be one of"):
        ProbabilityCalibrator("beta")


# --------------------------------------------------------------------------- serialization


def _roundtrip(obj):
    return type(obj).from_dict(json.loads(json.dumps(obj.to_dict())))


def test_round_trips_through_json_give_identical_outputs():
    pred, std, target = gaussian_data(m=100, t=2, seed=12)
    test_pred, test_std, _ = gaussian_data(m=30, t=2, seed=13)
    z = ZScaling().fit(pred, std, target)
    np.testing.assert_array_equal(_roundtrip(z).apply(test_std), z.apply(test_std))
    for s, regularized in ((std, False), (std, True), (None, False)):
        cp = ConformalRegressor(0.8, regularized).fit(pred, target, std=s)
        s_test = None if s is None else test_std
        got = _roundtrip(cp).interval(test_pred, s_test, coverage=0.6)
        want = cp.interval(test_pred, s_test, coverage=0.6)
        np.testing.assert_array_equal(got[0], want[0])
        np.testing.assert_array_equal(got[1], want[1])
    prob, labels = miscalibrated_probs(m=200, seed=7)
    labels[:, 1] = 0.0
    for method in ("platt", "isotonic"):
        with pytest.warns(UserWarning, match="single class"):
            cal = ProbabilityCalibrator(method).fit(prob, labels)
        np.testing.assert_array_equal(_roundtrip(cal).apply(prob), cal.apply(prob))


def test_from_dict_checks_the_kind_and_unfitted_objects_refuse():
    with pytest.raises(ValueError, match="expected a dict of kind 'z_scaling'"):
        ZScaling.from_dict({"kind": "conformal_regressor"})
    with pytest.raises(ValueError, match="not fitted"):
        ZScaling().apply(np.ones(3))
    with pytest.raises(ValueError, match="not fitted"):
        ConformalRegressor().to_dict()
    assert "coverage=0.9" in repr(ConformalRegressor())


def test_a_conformal_regressor_saved_before_the_offset_existed_loads_without_one():
    pred, std, target = gaussian_data(m=40, t=2, seed=14)
    saved = ConformalRegressor(0.9).fit(pred, target, std=std).to_dict()
    del saved["offset"]
    loaded = ConformalRegressor.from_dict(saved)
    assert not loaded.regularized and loaded.offset_.tolist() == [0.0, 0.0]
    np.testing.assert_array_equal(
        loaded.interval(pred, std)[1], ConformalRegressor(0.9).fit(pred, target, std=std)
        .interval(pred, std)[1]
    )  # fmt: skip


# --------------------------------------------------------------------------- expert spread


def _numpy_weighted_std(preds, alpha):
    """Per molecule and target: sqrt of np.average's weighted variance over selected experts."""
    m, _, t = preds.shape
    out = np.zeros((m, t))
    for i in range(m):
        sel = alpha[i] > 0
        for j in range(t):
            mean = np.average(preds[i, sel, j], weights=alpha[i, sel])
            out[i, j] = np.sqrt(np.average((preds[i, sel, j] - mean) ** 2, weights=alpha[i, sel]))
    return out


def _routing(rng, m, k, top_k):
    alpha = np.zeros((m, k))
    for i in range(m):
        chosen = rng.choice(k, size=top_k, replace=False)
        w = rng.random(top_k) + 0.1
        alpha[i, chosen] = w / w.sum()
    return alpha


def test_weighted_expert_spread_matches_numpy_weighted_std():
    rng = np.random.default_rng(0)
    alpha = _routing(rng, 30, 5, 3)
    preds = np.where(alpha[..., None] > 0, rng.normal(size=(30, 5, 2)), np.nan)
    ref = _numpy_weighted_std(preds, alpha)
    np.testing.assert_allclose(weighted_expert_spread(preds, alpha), ref, rtol=1e-10)
    # one target as [M, K]
    np.testing.assert_allclose(weighted_expert_spread(preds[..., 0], alpha), ref[:, 0], rtol=1e-10)


def test_top1_routing_gives_zero_spread_and_skipped_rows_nan():
    rng = np.random.default_rng(1)
    alpha = _routing(rng, 10, 4, 1)
    alpha[3] = np.nan
    spread = weighted_expert_spread(rng.normal(size=(10, 4, 1)), alpha)
    assert np.all(spread[np.arange(10) != 3] == 0.0)
    assert np.isnan(spread[3]).all()


@settings(max_examples=40, deadline=None)
@given(
    preds=arrays(np.float64, (6, 4, 2), elements=st.floats(-1e3, 1e3)),
    raw=arrays(np.float64, (6, 4), elements=st.floats(0.0, 1.0)),
    perm=st.permutations(range(4)),
)
def test_weighted_expert_spread_is_invariant_to_permuting_experts(preds, raw, perm):
    raw[:, 0] += 0.1  # every row selects at least one expert
    alpha = raw / raw.sum(axis=1, keepdims=True)
    base = weighted_expert_spread(preds, alpha)
    permuted = weighted_expert_spread(preds[:, perm], alpha[:, perm])
    np.testing.assert_allclose(permuted, base, rtol=1e-7, atol=1e-7)
    assert np.all(base >= 0)
    assert np.all(base <= np.ptp(preds, axis=1) / 2 + 1e-7)  # std of a bounded variable


def test_weighted_expert_spread_checks_inputs():
    with pytest.raises(ValueError, match="shape mismatch"):
        weighted_expert_spread(np.zeros((3, 4, 1)), np.full((3, 5), 0.2))
    with pytest.raises(ValueError, match="alpha rows must sum to 1"):
        weighted_expert_spread(np.zeros((2, 2, 1)), np.full((2, 2), 0.4))
    with pytest.raises(ValueError, match="alpha must be non-negative"):
        weighted_expert_spread(np.zeros((1, 2, 1)), [[1.5, -0.5]])


# --------------------------------------------------------------------------- ensembles


def test_ensemble_mean_std_matches_numpy_sample_std():
    members = np.random.default_rng(2).normal(size=(5, 20, 3))
    mean, std = ensemble_mean_std(members)
    np.testing.assert_allclose(mean, np.mean(members, axis=0))
    np.testing.assert_allclose(std, np.std(members, axis=0, ddof=1))
    with pytest.raises(
        ValueError, match="an ensemble needs at least 2 members for a spread, got 1"
    ):
        ensemble_mean_std(members[:1])


# --------------------------------------------------------------------------- bad inputs


def test_regression_inputs_are_checked():
    pred, std, target = gaussian_data(m=10, t=2, seed=14)
    with pytest.raises(ValueError, match=r"shape mismatch: pred \(10, 2\), std \(9, 2\)"):
        regression_uncertainty_metrics(pred, std[:9], target)
    with pytest.raises(ValueError, match="std must be non-negative, got min -1"):
        regression_uncertainty_metrics(pred, -std / std, target)
    with pytest.raises(ValueError, match="give both lower and upper"):
        regression_uncertainty_metrics(pred, std, target, lower=pred)
    with pytest.raises(ValueError, match="lower must not exceed upper"):
        regression_uncertainty_metrics(pred, std, target, lower=pred + 1, upper=pred)
    bad = pred.copy()
    bad[4, 1] = np.nan
    with pytest.raises(ValueError, match=r"pred is not finite where target has a label \(row 4"):
        regression_uncertainty_metrics(bad, std, target)
    with pytest.raises(ValueError, match=r"levels must be a 1-D array of coverages in \[0, 1\]"):
        coverage_curve(pred, std, target, levels=[0.5, 1.5])
    with pytest.raises(ValueError, match="n_bins must be a positive integer"):
        rmv_rmse_bins(pred, std, target, n_bins=0)
    with pytest.raises(ValueError, match=r"pred must have shape \[M, T\]"):
        regression_uncertainty_metrics(np.zeros((2, 2, 2)), np.ones((2, 2, 2)), np.zeros((2, 2, 2)))


def test_uncertainty_module_imports_without_torch():
    forbidden = ("torch", "mimoe_core.training", "mimoe_core.models", "mimoe_viz")
    assert_imports_without("mimoe_core.analysis.uncertainty", forbidden)
