"""Optional plotting packages: import on use, and say which extra brings them."""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import Any

VIZ_EXTRA = 'pip install "mimoe[viz]"'


def require(module: str) -> Any:
    """Import ``module``; if missing, an ImportError that names the ``[viz]`` extra."""
    try:
        return importlib.import_module(module)
    except ImportError as err:
        raise ImportError(f"{module} is needed for this figure: {VIZ_EXTRA}") from err


def plotly_go() -> Any:
    """``plotly.graph_objects``."""
    return require("plotly.graph_objects")


def make_subplots(*args: Any, **kwargs: Any) -> Any:
    """``plotly.subplots.make_subplots(*args, **kwargs)``."""
    return require("plotly.subplots").make_subplots(*args, **kwargs)


def mpl_figure(**kwargs: Any) -> Any:
    """A new ``matplotlib.figure.Figure`` (no pyplot global state)."""
    return require("matplotlib.figure").Figure(**kwargs)


def mpl_axes(ax: Any = None, figsize: tuple[float, float] = (6.0, 4.0)) -> Any:
    """``ax`` itself, or the single Axes of a new pyplot-free Figure."""
    if ax is not None:
        return ax
    return mpl_figure(figsize=figsize, layout="constrained").add_subplot()


def apply_layout(fig: Any, layout: Mapping[str, Any] | None) -> Any:
    """``fig`` with the caller's layout overrides applied (plotly)."""
    if layout:
        fig.update_layout(dict(layout))
    return fig
