"""Static export: PNG/SVG/PDF through matplotlib, standalone HTML with the JavaScript inlined.

Pages written here load nothing from the network: plotly.js and 3Dmol.js are inlined once per
page (see :mod:`mimoe_viz.assets` for where they come from), so they open behind a firewall,
from a file, or in an offline browser.
"""

from __future__ import annotations

import html
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from mimoe_viz.assets import plotly_js, threedmol_js

_PAGE_CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 0 auto;
       max-width: 1180px; padding: 1.5rem; color: #222; }
h1 { font-size: 1.6rem; margin-bottom: 0.2rem; } h2 { font-size: 1.25rem; margin-top: 2rem;
  border-bottom: 1px solid #ddd; padding-bottom: 0.2rem; } h3 { font-size: 1.05rem; }
.grid { display: grid; grid-template-columns: repeat(auto-fit, minmax(480px, 1fr)); gap: 1rem; }
.card { border: 1px solid #e3e3e3; border-radius: 6px; padding: 0.6rem; background: #fff; }
table { border-collapse: collapse; font-size: 0.9rem; } td, th { padding: 0.2rem 0.6rem;
  border-bottom: 1px solid #eee; text-align: left; }
.note { color: #666; font-size: 0.85rem; }
"""


def plotly_fragment(fig: Any, height: int | None = None) -> str:
    """A plotly figure as an HTML ``<div>`` + ``<script>`` that needs plotly.js on the page.

    Args:
        fig: a ``plotly.graph_objects.Figure``.
        height: CSS height in pixels of the figure's box; default: the figure's own height
            (or 450).

    Returns:
        The HTML fragment (no library included; see :func:`html_page`).
    """
    box = height or fig.layout.height or 450
    inner = fig.to_html(full_html=False, include_plotlyjs=False, config={"responsive": True})
    return f'<div class="plotly-box" style="height:{int(box)}px">{inner}</div>'


def html_page(
    title: str,
    body: str | Iterable[str],
    plotly: bool = True,
    threedmol: bool = False,
    subtitle: str = "",
) -> str:
    """A complete, self-contained HTML page.

    Args:
        title: the page title and first heading (escaped here).
        body: HTML fragments, joined in order (not escaped: build them with
            :func:`plotly_fragment`, :func:`mimoe_viz.mol3d.molecule_html` and ``html.escape``).
        plotly: inline plotly.js (about 4.6 MB), default True.
        threedmol: inline 3Dmol.js (about 0.5 MB), default False.
        subtitle: a line under the title (escaped).

    Returns:
        The page as a string.

    Raises:
        FileNotFoundError: if ``threedmol`` is True and no local 3Dmol.js is found.
    """
    parts = body if isinstance(body, str) else "\n".join(body)
    libraries = []
    if plotly:
        libraries.append(f"<script>{plotly_js()}</script>")
    if threedmol:
        libraries.append(f"<script>{threedmol_js()}</script>")
    sub = f'<p class="note">{html.escape(subtitle)}</p>' if subtitle else ""
    return (
        "<!doctype html>\n<html lang='en'><head><meta charset='utf-8'>"
        f"<meta name='viewport' content='width=device-width, initial-scale=1'>"
        f"<title>{html.escape(title)}</title><style>{_PAGE_CSS}</style>"
        f"{''.join(libraries)}</head>\n<body><h1>{html.escape(title)}</h1>{sub}\n"
        f"{parts}\n</body></html>\n"
    )


def save_html(fig: Any, path: str | Path, title: str | None = None) -> Path:
    """Write a plotly figure as a standalone page with plotly.js embedded.

    Args:
        fig: a ``plotly.graph_objects.Figure``.
        path: the ``.html`` file to write (folders are created).
        title: page title; default the figure's title or the file name.

    Returns:
        The path written.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    name = title or (fig.layout.title.text if fig.layout.title.text else path.stem)
    path.write_text(html_page(name, plotly_fragment(fig)), encoding="utf-8")
    return path


def save_png(fig: Any, path: str | Path, dpi: int = 150) -> Path:
    """Write a matplotlib Figure (or the figure of an Axes) as PNG, SVG or PDF by suffix.

    Plotly figures are exported as HTML (:func:`save_html`); their matplotlib twins
    (``*_mpl`` functions) give the print versions.

    Args:
        fig: a ``matplotlib.figure.Figure`` or ``matplotlib.axes.Axes``.
        path: the file to write; ``.png`` (default when no suffix), ``.svg`` or ``.pdf``.
        dpi: resolution for PNG, default 150.

    Returns:
        The path written.

    Raises:
        TypeError: for anything that is not a matplotlib Figure or Axes.
    """
    figure = getattr(fig, "figure", None) if not hasattr(fig, "savefig") else fig
    if figure is None or not hasattr(figure, "savefig"):
        raise TypeError(
            f"save_png needs a matplotlib Figure or Axes, got {type(fig).__name__}; "
            "write plotly figures with save_html"
        )
    path = Path(path)
    if not path.suffix:
        path = path.with_suffix(".png")
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=dpi, bbox_inches="tight")
    return path
