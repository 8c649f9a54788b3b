"""The cost bars of expert schemes (the shared-trunk table of bench_open_questions)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mimoe_viz import trunk_cost_figure


def _costs() -> pd.DataFrame:
    rows = []
    for variant, scale in (("dense", 2.0), ("sparse", 1.0)):
        for experts, share in (("independent", 1.0), ("trunk at 4 Å", 0.8), ("trunk at 2 Å", 0.7)):
            rows.append({"dataset": "freesolv", "backbone": "dimenet++", "variant": variant,
                         "experts": experts, "peak_mib": 1000 * scale * share,
                         "s_per_step": scale * share})  # fmt: skip
    return pd.DataFrame(rows)


def test_one_bar_per_scheme_and_panel_with_the_measured_values(tmp_path):
    costs = _costs()
    costs.loc[5, "s_per_step"] = np.nan  # not measured: a gap, not a zero
    path = tmp_path / "costs.csv"
    costs.to_csv(path, index=False)
    fig = trunk_cost_figure(path)
    assert [t.name for t in fig.data] == [s for s in dict.fromkeys(costs.experts) for _ in "mt"]
    memory = {t.name: t.y for t in fig.data if t.xaxis == "x"}
    time = {t.name: t.y for t in fig.data if t.xaxis == "x2"}
    assert list(fig.data[0].x) == ["freesolv · dimenet++ · dense", "freesolv · dimenet++ · sparse"]
    np.testing.assert_allclose(memory["trunk at 4 Å"], [1600.0, 800.0])
    np.testing.assert_allclose(time["independent"], [2.0, 1.0])
    assert np.isnan(time["trunk at 2 Å"][1])
    assert sum(t.showlegend for t in fig.data) == 3


def test_a_table_without_the_columns_or_rows_is_refused(tmp_path):
    with pytest.raises(ValueError, match="peak_mib"):
        trunk_cost_figure(_costs().drop(columns="peak_mib"))
    with pytest.raises(ValueError, match="empty"):
        trunk_cost_figure(_costs().iloc[:0])
    with pytest.raises(FileNotFoundError):
        trunk_cost_figure(tmp_path / "nope.csv")
