"""Seed summaries and Markdown tables of mimoe_core.analysis.tables; metric re-exports."""

import numpy as np
import pandas as pd

from mimoe_core.analysis import metrics, tables


def test_summarize_mean_and_sample_std_over_seeds():
    runs = pd.DataFrame(
        {
            "variant": ["b", "a", "b", "a", "c"],
            "seed": [0, 0, 1, 1, 0],
            "test_rmse": [1.0, 2.0, 3.0, 6.0, 5.0],
            "seconds": [1.0, 1.0, 1.0, 1.0, 1.0],
        }
    )
    summary = tables.summarize(runs)
    assert summary.index.tolist() == ["b", "a", "c"]  # first-seen order
    np.testing.assert_allclose(summary["test_rmse_mean"], [2.0, 4.0, 5.0])
    # sample std (ddof=1): sqrt(((1-2)^2 + (3-2)^2) / 1); undefined for one seed
    np.testing.assert_allclose(summary["test_rmse_std"], [np.sqrt(2), np.sqrt(8), np.nan])
    assert summary["seeds"].tolist() == [2, 2, 1]
    assert tables.SEED_STD_DDOF == 1
    text = tables.markdown_table(summary, "demo")
    assert "| b | 2.000 ± 1.414 | 1.000 ± 0.000 | 2 |" in text
    assert "| c | 5.000 | 1.000 | 1 |" in text  # one seed: no spread to report
    assert tables._mean_std(float("nan"), 0.0) == "n/a"


def test_training_modules_reexport_the_analysis_layer():
    from mimoe_core.training import experiments
    from mimoe_core.training import metrics as training_metrics

    for name in ("summarize", "markdown_table", "_mean_std"):
        assert getattr(experiments, name) is getattr(tables, name)
    for name in training_metrics.__all__:
        assert getattr(training_metrics, name) is getattr(metrics, name)


def test_default_cutoffs_are_defined_once():
    import mimoe_viz
    from mimoe_core.constants import DEFAULT_CUTOFFS
    from mimoe_core.models import load_config
    from mimoe_core.models.registry import DEFAULT_CONFIG
    from mimoe_viz import _style

    assert _style.DEFAULT_CUTOFFS is DEFAULT_CUTOFFS is mimoe_viz.DEFAULT_CUTOFFS
    assert DEFAULT_CONFIG["cutoffs"] == list(DEFAULT_CUTOFFS)
    assert load_config("schnet")["cutoffs"] == list(DEFAULT_CUTOFFS)
