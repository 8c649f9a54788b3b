"""A run's ``metrics.json`` as a small HTML table (scores, split sizes, model settings)."""

from __future__ import annotations

import html
import math
from collections.abc import Mapping
from typing import Any

from mimoe_viz.run_folder import RunFolder

# mimoe_viz.runs re-exports this list; uncertainty_table_html and with_unit are imported
# by name (mimoe_viz.report).
__all__ = ["metrics_table_html"]

# Scores in the target's unit: an RMSE of 1.2 means 1.2 kcal/mol (R², ROC-AUC have none).
UNIT_METRICS = ("rmse", "mae")
# The rows of the data block, in order; the settings block leaves out what they show.
DATA_KEYS = (
    "task",
    "targets",
    "unit",
    "split",
    "seed",
    "n_train",
    "n_val",
    "n_test",
    "n_skipped",
    "best_epoch",
    "epochs_run",
)


def with_unit(label: str, unit: str) -> str:
    """``label`` with its unit in brackets, or ``label`` alone when ``unit`` is empty.

    Example:
        >>> with_unit("rmse", "kcal/mol"), with_unit("r2", "")
        ('rmse (kcal/mol)', 'r2')
    """
    return f"{label} ({unit})" if unit else label


def _cell(value: Any) -> str:
    if isinstance(value, bool) or value is None:
        text = str(value)
    elif isinstance(value, float):
        text = "n/a" if math.isnan(value) else f"{value:.4g}"
    elif isinstance(value, (list, tuple)):
        text = ", ".join(_cell(v) for v in value)
        return text
    else:
        text = str(value)
    return html.escape(text)


def metrics_table_html(metrics: Mapping[str, Any] | RunFolder) -> str:
    """A small HTML table of a run's ``metrics.json``: scores, split sizes, model settings.

    Args:
        metrics: the ``metrics.json`` content (``RunFolder.metrics``) or a :class:`RunFolder`.

    Returns:
        An HTML ``<table>`` (display it with ``IPython.display.HTML``); every value is
        escaped.

    Raises:
        TypeError: if ``metrics`` is not a mapping or RunFolder.
    """
    if isinstance(metrics, RunFolder):
        metrics = metrics.metrics
    if not isinstance(metrics, Mapping):
        raise TypeError(f"metrics must be a dict or RunFolder, got {type(metrics).__name__}")
    rows: list[str] = ['<table class="mimoe-metrics">']

    def section(title: str, ncols: int = 3) -> None:
        rows.append(
            f'<tr><th colspan="{ncols}" style="text-align:left">{html.escape(title)}</th></tr>'
        )

    def line(*cells: Any) -> None:
        rows.append("<tr>" + "".join(f"<td>{_cell(c)}</td>" for c in cells) + "</tr>")

    val, test = metrics.get("val") or {}, metrics.get("test") or {}
    scores = [
        k
        for k in dict.fromkeys([*val, *test])
        if isinstance(val.get(k, test.get(k)), (int, float))
        and not isinstance(val.get(k, test.get(k)), bool)
    ]
    unit = str(metrics.get("unit") or "") if metrics.get("task") != "classification" else ""
    if scores:
        rows.append("<tr><th>metric</th><th>val</th><th>test</th></tr>")
        for key in scores:
            label = with_unit(key, unit) if key in UNIT_METRICS else key
            line(label, val.get(key, "—"), test.get(key, "—"))
    section("data", 3)
    shown = set(scores)
    for key in DATA_KEYS:
        if key in metrics and (key != "unit" or metrics[key]):
            shown.add(key)
            rows.append(
                f'<tr><td>{html.escape(key)}</td><td colspan="2">{_cell(metrics[key])}</td></tr>'
            )
    for title, part in (("model", metrics.get("model")), ("settings", metrics.get("settings"))):
        if isinstance(part, Mapping) and part:
            # Each fact once: a setting the data block (or the model block) already shows
            # (the seed is both a top-level fact and a setting) is left out here.
            part = {k: v for k, v in part.items() if str(k) not in shown}
            if not part:
                continue
            section(title, 3)
            for key, value in part.items():
                shown.add(str(key))
                rows.append(
                    f'<tr><td>{html.escape(str(key))}</td><td colspan="2">{_cell(value)}</td></tr>'
                )
    rows.append("</table>")
    return "\n".join(rows)


# The rows of the uncertainty table: (key in the val/test dicts, label, carries the unit).
_UNCERTAINTY_ROWS = (
    ("coverage", "observed coverage", False),
    ("width", "mean interval width", True),
    ("nll", "NLL", False),
    ("spearman", "Spearman ρ (|error| vs std)", False),
    ("ence", "ENCE", False),
    ("miscalibration_area", "miscalibration area", False),
)


def uncertainty_table_html(metrics: Mapping[str, Any] | RunFolder) -> str:
    """A small HTML table of a run's uncertainty: estimator, coverage, width, calibration.

    Reads the ``"uncertainty"`` block of ``metrics.json`` (``estimator``, ``calibration``,
    ``coverage`` and the ``val``/``test`` scores of
    :func:`mimoe_core.calibration.uncertainty_metrics`); widths carry the run's ``unit``.

    Args:
        metrics: the ``metrics.json`` content or a :class:`RunFolder`.

    Returns:
        An HTML ``<table class="mimoe-uncertainty">``, or ``""`` when the run has no
        uncertainty block.

    Example:
        >>> block = {"estimator": "experts", "coverage": 0.9, "test": {"width": 1.5}}
        >>> page = uncertainty_table_html({"unit": "°C", "uncertainty": block})
        >>> "mean interval width (°C)" in page, uncertainty_table_html({}) == ""
        (True, True)
    """
    if isinstance(metrics, RunFolder):
        metrics = metrics.metrics
    block = metrics.get("uncertainty") if isinstance(metrics, Mapping) else None
    if not isinstance(block, Mapping) or not block:
        return ""
    unit = str(metrics.get("unit") or "") if metrics.get("task") != "classification" else ""
    val, test = block.get("val") or {}, block.get("test") or {}
    rows = ['<table class="mimoe-uncertainty">']

    def fact(label: str, value: Any) -> None:
        rows.append(f'<tr><td>{html.escape(label)}</td><td colspan="2">{_cell(value)}</td></tr>')

    for key, label in (("estimator", "estimator"), ("calibration", "calibration")):
        if key in block:
            fact(label, block[key])
    if block.get("coverage") is not None:
        fact("nominal coverage", block["coverage"])
    rows.append("<tr><th>score</th><th>val</th><th>test</th></tr>")
    known = set()
    for key, label, has_unit in _UNCERTAINTY_ROWS:
        known.add(key)
        if key not in val and key not in test:
            continue
        if key == "nll":  # its value depends on the unit the target is measured in
            text = f"NLL (y in {unit})" if unit else "NLL"
        else:
            text = with_unit(label, unit) if has_unit else label
        cells = (text, val.get(key, "—"), test.get(key, "—"))
        rows.append("<tr>" + "".join(f"<td>{_cell(c)}</td>" for c in cells) + "</tr>")
    for key in dict.fromkeys([*val, *test]):  # classification (ece, brier) and newer scores
        value = val.get(key, test.get(key))
        if key in known or isinstance(value, bool) or not isinstance(value, (int, float)):
            continue
        cells = (key, val.get(key, "—"), test.get(key, "—"))
        rows.append("<tr>" + "".join(f"<td>{_cell(c)}</td>" for c in cells) + "</tr>")
    rows.append("</table>")
    return "\n".join(rows)
