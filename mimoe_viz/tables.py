"""A run's ``metrics.json`` as a small HTML table (scores, split sizes, model settings)."""

from __future__ import annotations

import html
import math
from collections.abc import Mapping
from typing import Any

from mimoe_viz.run_folder import RunFolder

__all__ = ["metrics_table_html"]


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
    if scores:
        rows.append("<tr><th>metric</th><th>val</th><th>test</th></tr>")
        for key in scores:
            line(key, val.get(key, "—"), test.get(key, "—"))
    section("data", 3)
    for key in (
        "task",
        "targets",
        "split",
        "seed",
        "n_train",
        "n_val",
        "n_test",
        "n_skipped",
        "best_epoch",
        "epochs_run",
    ):
        if key in metrics:
            rows.append(
                f'<tr><td>{html.escape(key)}</td><td colspan="2">{_cell(metrics[key])}</td></tr>'
            )
    for title, part in (("model", metrics.get("model")), ("settings", metrics.get("settings"))):
        if isinstance(part, Mapping) and part:
            section(title, 3)
            for key, value in part.items():
                rows.append(
                    f'<tr><td>{html.escape(str(key))}</td><td colspan="2">{_cell(value)}</td></tr>'
                )
    rows.append("</table>")
    return "\n".join(rows)
