"""The routing numbers of mimoe_core.analysis on hand-made alpha matrices."""

import numpy as np
import pytest

from mimoe_core.analysis import routing, validation
from mimoe_core.results import PredictionResult

CUTOFFS = [2.0, 3.0, 4.0]
# Four entries: a clear winner, a tie (the lower index wins), a skipped row, a mixed row.
ALPHA = np.array(
    [
        [0.0, 1.0, 0.0],
        [0.5, 0.0, 0.5],
        [np.nan, np.nan, np.nan],
        [0.2, 0.0, 0.8],
    ]
)


def _result(alpha=ALPHA, targets=("a", "b"), sizes=(3, 5, 0, 4)) -> PredictionResult:
    num, k = alpha.shape
    status = ["skipped" if np.isnan(row).all() else "ok" for row in alpha]
    zs = [np.full(n, 6) for n in sizes]
    return PredictionResult(
        task="regression",
        targets=list(targets),
        ids=[f"m{i}" for i in range(num)],
        smiles=["C"] * num,
        rows=list(range(num)),
        status=status,
        reason=["" if s == "ok" else "bad" for s in status],
        prediction=np.zeros((num, len(targets))),
        alpha=alpha,
        expert_predictions=np.zeros((num, k, len(targets))),
        topo=np.zeros((num, 1, 1)),
        radii=[1.0],
        cutoffs=list(CUTOFFS[:k]),
        descriptor_names=["betti0"],
        atomic_numbers=zs,
        positions=[np.zeros((n, 3)) for n in sizes],
    )


def test_expected_cutoff_and_dominant_from_alpha():
    np.testing.assert_allclose(
        routing.expected_cutoff_from_alpha(ALPHA, CUTOFFS), [3.0, 3.0, np.nan, 3.6]
    )
    np.testing.assert_array_equal(routing.dominant_from_alpha(ALPHA), [1, 0, 0, 2])


def test_expected_cutoff_and_dominant_expert_mark_skipped_rows():
    res = _result()
    np.testing.assert_allclose(routing.expected_cutoff(res), [3.0, 3.0, np.nan, 3.6])
    np.testing.assert_array_equal(routing.dominant_expert(res), [1, 0, -1, 2])


def test_expert_usage_over_ok_rows():
    share, mean_alpha = routing.expert_usage(_result())
    np.testing.assert_allclose(share, [2 / 3, 1 / 3, 2 / 3])
    np.testing.assert_allclose(mean_alpha, [0.7 / 3, 1 / 3, 1.3 / 3])
    assert mean_alpha.sum() == pytest.approx(1.0)


def test_routing_order():
    res = _result()
    np.testing.assert_array_equal(routing.routing_order(res, "input"), [0, 1, 3])
    np.testing.assert_array_equal(routing.routing_order(res, "size"), [0, 3, 1])
    # dominant expert ascending, then its weight descending
    np.testing.assert_array_equal(routing.routing_order(res, "dominant"), [1, 0, 3])
    with pytest.raises(ValueError, match="sort_by"):
        routing.routing_order(res, "name")


def test_target_index_rejects_negative_indices():
    res = _result()
    assert validation.target_index(res, 1) == 1
    assert validation.target_index(res, "b") == 1
    for bad in (-1, 2):
        with pytest.raises(ValueError, match="out of range"):
            validation.target_index(res, bad)
    with pytest.raises(ValueError, match="unknown target"):
        validation.target_index(res, "c")


def test_viz_uses_the_one_target_index():
    pytest.importorskip("plotly")
    from mimoe_viz import _routing, evaluation_figures

    assert _routing.target_index is validation.target_index
    assert evaluation_figures.target_index is validation.target_index
    assert routing.target_index is validation.target_index


def test_viz_reexports_the_core_routing_numbers():
    from mimoe_viz import analysis, dataset_routing
    from mimoe_viz import routing as viz_routing

    for name in ("expected_cutoff", "dominant_expert", "expert_usage", "routing_order", "SORT_BY"):
        assert getattr(dataset_routing, name) is getattr(routing, name)
        assert getattr(viz_routing, name) is getattr(routing, name)
    for name in ("descriptor_at", "expert_profiles", "expert_disagreement"):
        assert getattr(analysis, name) is getattr(routing, name)


def test_spearman_and_binned_trend():
    x = np.array([1.0, 2.0, 3.0, 4.0])
    assert routing.spearman(x, x**2) == pytest.approx(1.0)
    assert np.isnan(routing.spearman(x[:2], x[:2]))
    xs, ys = routing.binned_trend(np.array([1, 1, 2]), np.array([1.0, 3.0, 5.0]))
    np.testing.assert_allclose(xs, [1, 2])
    np.testing.assert_allclose(ys, [2.0, 5.0])
