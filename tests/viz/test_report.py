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


# --- units, single facts, uncertainty -------------------------------------------------------

from conftest import UNCERTAINTY_BLOCK, with_uncertainty  # noqa: E402

from mimoe_core import run_folder  # noqa: E402
from mimoe_viz.tables import metrics_table_html, uncertainty_table_html  # noqa: E402

METRICS = {
    "task": "regression",
    "targets": ["expt"],
    "unit": "kcal/mol",
    "split": "random",
    "seed": 3,
    "n_train": 30,
    "best_epoch": 2,
    "val": {"rmse": 1.5, "mae": 1.1, "r2": 0.6},
    "test": {"rmse": 1.7, "mae": 1.2, "r2": 0.5},
    "model": {"backbone": "schnet", "variant": "sparse", "top_k": 2, "cutoffs": [2.0, 3.0]},
    "settings": {"epochs": 2, "seed": 3, "batch_size": 16, "top_k": 2},
}


def row_labels(table: str) -> list[str]:
    """The first cell of every row of a table."""
    return re.findall(r"<tr><td>([^<]*)</td>", table)


def test_metrics_table_puts_the_unit_beside_regression_scores():
    labels = row_labels(metrics_table_html(METRICS))
    assert "rmse (kcal/mol)" in labels and "mae (kcal/mol)" in labels
    assert "r2" in labels and "r2 (kcal/mol)" not in labels  # R² has no unit
    older = {k: v for k, v in METRICS.items() if k != "unit"}
    old_labels = row_labels(metrics_table_html(older))
    assert "rmse" in old_labels and "mae" in old_labels
    assert not any("(" in label for label in old_labels)  # as before: no unit anywhere
    classification = {**older, "task": "classification", "unit": "kcal/mol"}
    assert "rmse" in row_labels(metrics_table_html(classification))


def test_metrics_table_shows_each_fact_once():
    labels = row_labels(metrics_table_html(METRICS))
    assert len(labels) == len(set(labels)), labels
    assert labels.count("seed") == 1 and labels.count("top_k") == 1
    assert "epochs" in labels and "batch_size" in labels  # the other settings stay


def test_uncertainty_table_has_coverage_width_with_unit_and_calibration():
    table = uncertainty_table_html({**METRICS, "uncertainty": UNCERTAINTY_BLOCK})
    labels = row_labels(table)
    assert len(labels) == len(set(labels))
    for label in ("estimator", "calibration", "nominal coverage", "observed coverage",
                  "mean interval width (kcal/mol)", "NLL (y in kcal/mol)",
                  "Spearman ρ (|error| vs std)", "ENCE", "miscalibration area"):  # fmt: skip
        assert label in labels, label
    assert "0.86" in table and "1.8" in table and "conformal" in table
    assert uncertainty_table_html(METRICS) == ""
    assert "mean interval width</td>" in uncertainty_table_html({"uncertainty": UNCERTAINTY_BLOCK})


def test_uncertainty_note_beside_the_prediction(result):
    from mimoe_viz.report import uncertainty_note

    assert uncertainty_note(result, 0) == ""
    res = with_uncertainty(result)
    note = uncertainty_note(res, 0)
    assert f"± {res.std[0, 0]:.3g}" in note and "90% interval" in note
    assert f"[{res.lower[0, 0]:.3g}, {res.upper[0, 0]:.3g}]" in note


def test_report_has_units_and_no_uncertainty_section_without_one(tiny_run, tmp_path):
    page = report(tiny_run, out=tmp_path / "r.html", examples=1).read_text()
    unit = json.loads((tiny_run / "metrics.json").read_text()).get("unit", "")
    assert unit  # a bundled dataset knows its unit
    assert f"rmse ({html_escape(unit)})" in page
    target = json.loads((tiny_run / "metrics.json").read_text())["targets"][0]
    title = f"true {target} ({unit})"  # the parity plot's axis title
    assert json.dumps(title).replace("/", "\\u002f") in page  # plotly's JSON escapes "/"
    assert "<h2>Uncertainty</h2>" not in page


def html_escape(text: str) -> str:
    import html

    return html.escape(text)


def test_report_uncertainty_section(uncertain_run):
    page = report(uncertain_run, examples=2).read_text()
    assert "<h2>Uncertainty</h2>" in page
    section = page.split("<h2>Uncertainty</h2>")[1].split("<h2>")[0]
    assert "mean interval width (kcal/mol)" in section and "0.86" in section
    for title in ("Coverage calibration", "Absolute error against predicted std",
                  "Parity with prediction intervals"):  # fmt: skip
        assert title in section, title
    for png in ("coverage_calibration.png", "error_vs_std.png", "parity_interval.png"):
        assert (uncertain_run / "figures" / png).read_bytes()[:4] == b"\x89PNG"
    assert page.count(" ± ") >= 2 and "90% interval [" in page  # the example molecules
    labels = row_labels(page.split("<h2>Metrics</h2>")[1].split("<h2>")[0])
    assert len(labels) == len(set(labels))
    assert run_folder.load_run(uncertain_run).test.std is not None


def test_report_embeds_a_static_picture_per_3d_view(tiny_run, tmp_path):
    page = report(tiny_run, out=tmp_path / "r.html", examples=2).read_text()
    pictures = static_pictures(page)
    assert len(pictures) == page.count('class="mimoe-mol3d"') == 2
    assert "@media print" in page and "<noscript>" in page


def static_pictures(page: str) -> list:
    """The static PNGs of a page's 3D views, opened with PIL; each is checked non-blank."""
    import base64
    import io

    from PIL import Image

    found = re.findall(r'class="mimoe-mol3d-static"[^>]*src="data:image/png;base64,([^"]+)"', page)
    images = []
    for data in found:
        image = Image.open(io.BytesIO(base64.b64decode(data)))
        image.load()
        assert image.format == "PNG"
        assert len(image.convert("RGB").getcolors(maxcolors=1 << 16) or range(2)) > 1
        images.append(image)
    return images
