import numpy as np
import pytest
from conftest import make_result, water

from mimoe_viz.dashboards import entry_options, entry_summary, explore, find_entries


def test_options_and_search_cover_ok_entries_only(result):
    options = entry_options(result)
    assert [i for _, i in options] == np.flatnonzero(result.ok).tolist()
    assert options[0][0].startswith("0 · c1ccccc1 (12 atoms)")
    assert find_entries(result, "") == np.flatnonzero(result.ok).tolist()
    assert find_entries(result, "5") == []  # entry 5 is skipped
    assert find_entries(result, "7") == [7]
    assert find_entries(result, "mol3") == [3]
    assert find_entries(result, "c1cc") == [0]
    assert find_entries(result, "CCCCCCCCCCCC") == [11]


def test_summary_names_prediction_label_and_experts(result):
    text = entry_summary(result, 0)
    assert "c1ccccc1" in text and "12 atoms" in text
    assert f"{result.prediction[0, 0]:.3g}" in text and "label" in text
    chosen = np.flatnonzero(result.alpha[0] > 0)
    for e in chosen:
        assert f"E{e + 1} ({result.cutoffs[e]:g} Å)" in text
    assert text.count(" α=") == len(chosen)


def test_explore_links_the_views(result):
    box = explore(result)
    assert box.choice.value == 0 and "c1ccccc1" in box.summary.value
    box.select(4)
    assert box.choice.value == 4 and "CCC" in box.summary.value
    box.search.value = "mol1"
    assert [i for _, i in box.choice.options] == [1]
    assert box.choice.value == 1 and "<b>O</b>" in box.summary.value
    box.search.value = "no such molecule"
    assert len(box.choice.options) == len(entry_options(result))


def test_explore_refuses_results_without_structures():
    res = make_result([water()])
    res.positions, res.atomic_numbers = [], []
    with pytest.raises(ValueError, match="structure"):
        explore(res)


def test_summary_shows_std_and_interval_when_the_result_has_them(result):
    from conftest import with_uncertainty

    assert "±" not in entry_summary(result, 0)
    res = with_uncertainty(result)
    text = entry_summary(res, 0)
    assert f"{res.prediction[0, 0]:.3g} ± {res.std[0, 0]:.3g}" in text
    assert f"[{res.lower[0, 0]:.3g}, {res.upper[0, 0]:.3g}]" in text
    res.lower = res.upper = None
    assert "[" not in entry_summary(res, 0) and "±" in entry_summary(res, 0)
    assert "±" in explore(res).summary.value
