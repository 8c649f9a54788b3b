import json
import re
import shutil

import numpy as np
import pytest
from conftest import benzene, chain, make_result, water

from mimoe_core.cli import main
from mimoe_viz.report import pick_examples, report


def test_pick_examples_prefers_distinct_experts_then_sizes():
    res = make_result([benzene(), water()] + [chain(n) for n in range(3, 9)], top_k=1)
    picks = pick_examples(res, 3)
    assert len(picks) == len(set(picks)) == 3
    dominant = np.nanargmax(res.alpha, axis=1)
    distinct = len(set(dominant.tolist()))
    assert len({dominant[i] for i in picks}) == min(3, distinct)


def test_pick_examples_skips_skipped_and_handles_few():
    res = make_result([benzene(), water()], skipped=(0,))
    assert pick_examples(res, 3) == [1]
    assert pick_examples(make_result([water()], skipped=(0,)), 3) == []


def test_report_of_a_real_run(tiny_run):
    page_path = report(tiny_run)
    assert page_path == tiny_run / "report.html"
    page = page_path.read_text()
    assert re.findall(r"<script[^>]*\ssrc=", page) == []  # offline: nothing from a CDN
    for heading in ("Metrics", "Training", "Test set", "Routing", "Example molecules"):
        assert f"<h2>{heading}</h2>" in page
    assert page.count("<h3>") == 3  # three example molecules
    metrics = json.loads((tiny_run / "metrics.json").read_text())
    assert f"{metrics['test']['rmse']:.3g}" in page
    for png in (
        "training_curves.png",
        "parity.png",
        "routing_map.png",
        "expert_usage.png",
        "alpha_vs_size.png",
    ):
        assert (tiny_run / "figures" / png).read_bytes()[:4] == b"\x89PNG"


def test_report_command_and_missing_explanations(tiny_run, tmp_path, capsys):
    assert main(["report", "--run", str(tiny_run), "--out", str(tmp_path / "r.html"),
                 "--examples", "1"]) == 0  # fmt: skip
    assert (tmp_path / "r.html").read_text().count("<h3>") == 1
    assert "report ->" in capsys.readouterr().out
    old = tmp_path / "old"
    shutil.copytree(tiny_run, old)
    shutil.rmtree(old / "test_explained")
    with pytest.raises(FileNotFoundError, match="test_explained"):
        report(old)
    assert main(["report", "--run", str(tmp_path / "nothing")]) == 2
    assert "no run folder" in capsys.readouterr().err
