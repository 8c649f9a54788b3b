"""Result tables over seeds: mean and std per variant, and the Markdown table of them.

Torch-free (pandas and numpy), so :func:`mimoe_core.training.experiments.run_experiments`
writes these tables and :mod:`mimoe_viz.ablation_figures` draws the same numbers.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from pandas.core.groupby import SeriesGroupBy

__all__ = ["SEED_STD_DDOF", "markdown_table", "seed_mean_std", "summarize"]

#: Delta degrees of freedom of the std over seeds in every table and ablation figure: 1, the
#: sample std (undefined, NaN, for a single seed).
SEED_STD_DDOF: Final[int] = 1


def seed_mean_std(grouped: SeriesGroupBy) -> tuple[pd.Series, pd.Series]:
    """Mean and std over seeds of one metric grouped by variant.

    Args:
        grouped: a metric column grouped by variant (``runs.groupby("variant")[metric]``).

    Returns:
        ``(mean, std)`` per group; the sample std (``ddof =`` :data:`SEED_STD_DDOF`, 1), NaN
        where a group has a single seed. NaN values are skipped, as pandas does.

    Example:
        >>> runs = pd.DataFrame({"variant": ["a", "a", "b"], "test_rmse": [1.0, 3.0, 2.0]})
        >>> mean, std = seed_mean_std(runs.groupby("variant")["test_rmse"])
        >>> mean.tolist(), std.round(4).tolist()
        ([2.0, 2.0], [1.4142, nan])
    """
    return grouped.mean(), grouped.std(ddof=SEED_STD_DDOF)


def summarize(runs: pd.DataFrame) -> pd.DataFrame:
    """Mean and std over seeds per variant: ``<metric>_mean``, ``<metric>_std``, ``seeds``.

    Every test metric and the wall time (``seconds``) are summarized; the std is that of
    :func:`seed_mean_std` (sample std, ``ddof=1``).
    """
    metrics = [c for c in runs.columns if c.startswith("test_")] + ["seconds"]
    grouped = runs.groupby("variant", sort=False)
    summary = pd.DataFrame(index=pd.Index(list(grouped.groups), name="variant"))
    summary = summary.loc[runs["variant"].drop_duplicates()]
    for m in metrics:
        summary[f"{m}_mean"], summary[f"{m}_std"] = seed_mean_std(grouped[m])
    summary["seeds"] = grouped.size()
    return summary


def markdown_table(summary: pd.DataFrame, title: str) -> str:
    """``mean ± std`` per variant and metric, as a Markdown table.

    Example:
        >>> runs = pd.DataFrame({"variant": ["a", "a"], "test_rmse": [1.0, 3.0],
        ...                      "seconds": [2.0, 2.0]})
        >>> print(markdown_table(summarize(runs), "demo"))
        ### demo
        <BLANKLINE>
        | variant | test_rmse | seconds | seeds |
        |---|---|---|---|
        | a | 2.000 ± 1.414 | 2.000 ± 0.000 | 2 |
        <BLANKLINE>
    """
    metrics = [c[: -len("_mean")] for c in summary.columns if c.endswith("_mean")]
    lines = [
        f"### {title}",
        "",
        "| variant | " + " | ".join(metrics) + " | seeds |",
        "|---|" + "---|" * (len(metrics) + 1),
    ]
    for variant, row in summary.iterrows():
        cells = [_mean_std(row[f"{m}_mean"], row[f"{m}_std"]) for m in metrics]
        lines.append(f"| {variant} | " + " | ".join(cells) + f" | {int(row['seeds'])} |")
    return "\n".join(lines) + "\n"


def _mean_std(mean: float, std: float) -> str:
    if np.isnan(mean):
        return "n/a"
    return f"{mean:.3f}" if np.isnan(std) else f"{mean:.3f} ± {std:.3f}"
