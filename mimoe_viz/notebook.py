"""Notebook helpers: figures that render in JupyterLab and in exported HTML, offline.

``setup_notebook()`` (first cell of every tutorial) makes plotly figures carry their own
HTML (plotly.js embedded once) beside the JupyterLab mime bundle, so a notebook exported
with ``jupyter nbconvert --to html`` still shows them without a CDN. ``show_molecule``
displays a 3D viewer built by :func:`mimoe_viz.mol3d.molecule_html`, with 3Dmol.js inlined
the first time.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from numpy.typing import ArrayLike

from mimoe_viz._deps import require
from mimoe_viz._style import DEFAULT_CUTOFFS

_library_sent = False


def setup_notebook() -> None:
    """Render plotly figures for JupyterLab and for exported HTML (plotly.js embedded)."""
    pio = require("plotly.io")
    pio.renderers.default = "plotly_mimetype+notebook"


def show_molecule(
    z: ArrayLike,
    pos: ArrayLike,
    radius: float | None = None,
    cutoffs: Sequence[float] = DEFAULT_CUTOFFS,
    radii: Sequence[float] | None = None,
    width: int = 520,
    height: int = 380,
) -> Any:
    """An ``IPython.display.HTML`` 3D viewer with a radius slider that works offline.

    Unlike :func:`mimoe_viz.mol3d.filtration_widget` (a live ipywidget), this view survives
    export to HTML. 3Dmol.js is inlined with the first viewer of the session only.

    Args:
        z: atomic numbers [n].
        pos: coordinates [n, 3] in Å.
        radius: the radius shown first; default the largest cutoff.
        cutoffs: expert cutoffs in Å; default (2.0, 2.5, 3.0, 3.5, 4.0).
        radii: slider grid in Å; default the filtration grid ``DEFAULT_RADII``.
        width: viewer width in pixels.
        height: viewer height in pixels.

    Returns:
        ``IPython.display.HTML``.
    """
    global _library_sent
    from mimoe_core.topology import DEFAULT_RADII
    from mimoe_viz.mol3d import molecule_html

    display = require("IPython.display")
    page = molecule_html(
        z,
        pos,
        radius=radius,
        cutoffs=cutoffs,
        radii=DEFAULT_RADII if radii is None else radii,
        width=width,
        height=height,
        include_library=not _library_sent,
    )
    _library_sent = True
    return display.HTML(page)
