"""Cost bars: peak memory and time per training step of expert schemes, side by side.

The input is the cost table ``benchmarks/bench_open_questions.py`` writes for the shared
trunk (``open_questions_cpu_trunk_cost.csv``): one row per dataset, backbone, variant and
expert scheme, with ``peak_mib`` and ``s_per_step``.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from mimoe_viz._deps import make_subplots, plotly_go
from mimoe_viz._style import SERIES

if TYPE_CHECKING:
    import plotly.graph_objects as go

__all__ = ["trunk_cost_figure"]

_KEYS = ("dataset", "backbone", "variant", "experts")
_PANELS = (("peak_mib", "peak memory (MiB)"), ("s_per_step", "seconds per training step"))


def _read_costs(costs: pd.DataFrame | str | Path) -> pd.DataFrame:
    if isinstance(costs, (str, Path)):
        if not Path(costs).is_file():
            raise FileNotFoundError(f"no cost table at {costs}")
        costs = pd.read_csv(costs)
    missing = [c for c in (*_KEYS, *(p for p, _ in _PANELS)) if c not in costs.columns]
    if missing:
        raise ValueError(f"a cost table needs the columns {missing}; it has {list(costs.columns)}")
    if costs.empty:
        raise ValueError("the cost table is empty")
    return costs


def trunk_cost_figure(costs: pd.DataFrame | str | Path, layout: dict | None = None) -> go.Figure:
    """Peak memory and seconds per step of each expert scheme, grouped per configuration.

    Args:
        costs: the cost table (a DataFrame, or the path of its CSV) with ``dataset``,
            ``backbone``, ``variant``, ``experts``, ``peak_mib`` and ``s_per_step``; NaN where
            not measured (drawn as a gap).
        layout: overrides passed to ``fig.update_layout``, default None.

    Returns:
        The plotly figure: two panels (memory, time); in each, one ``go.Bar`` per expert
        scheme (in table order, the same colour in both panels, one legend entry) over the
        configurations ``dataset · backbone · variant``.

    Raises:
        FileNotFoundError: if the path holds no CSV.
        ValueError: without the columns, or for an empty table.
    """
    go = plotly_go()
    costs = _read_costs(costs)
    label = costs["dataset"] + " · " + costs["backbone"] + " · " + costs["variant"]
    groups = list(dict.fromkeys(label))
    schemes = list(dict.fromkeys(costs["experts"]))
    fig = make_subplots(rows=1, cols=2, subplot_titles=[t for _, t in _PANELS])
    for s, scheme in enumerate(schemes):
        rows = costs[costs["experts"] == scheme].assign(group=label).set_index("group")
        rows = rows.reindex(groups)
        for col, (field, title) in enumerate(_PANELS, start=1):
            fig.add_trace(
                go.Bar(
                    x=groups,
                    y=rows[field].to_numpy(),
                    name=scheme,
                    legendgroup=scheme,
                    showlegend=col == 1,
                    marker_color=SERIES[s % len(SERIES)],
                    hovertemplate=f"%{{x}}<br>{scheme}: %{{y:.4g}}<extra></extra>",
                ),
                row=1,
                col=col,
            )
            fig.update_yaxes(title_text=title, row=1, col=col)
    fig.update_layout(
        barmode="group",
        template="plotly_white",
        title="independent experts against a shared trunk",
        height=460,
        width=max(760, 110 * len(groups) * 2),
    )
    fig.update_xaxes(tickangle=-30)
    fig.update_layout(**(layout or {}))
    return fig
