"""One molecule in 3D with the filtration G(r) growing edge by edge.

G(r) is the radius graph of a conformer: an edge between atoms i != j when their distance
d_ij <= r (closed). Expert e sees G(cutoff_e); every edge is coloured by the smallest expert
cutoff that contains it (grey beyond all cutoffs), so moving r shows which expert's graph is
complete. Betti numbers come from :func:`mimoe_core.topology.descriptor_curves`.

Three front ends share the pure functions :func:`filtration_edges` and
:func:`filtration_state`:

- :func:`molecule_view`: a static ``py3Dmol.view`` (needs the ``[viz]`` extra);
- :func:`filtration_widget`: an ipywidgets slider driving a 3Dmol.js viewer;
- :func:`molecule_html` / :func:`save_molecule_html`: standalone HTML with 3Dmol.js inlined
  (no CDN) and a radius slider in plain JavaScript (the templates are in
  :mod:`mimoe_viz._mol3d_html`).
"""

from __future__ import annotations

import base64
import importlib.util
import re
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from mimoe_core.topology import DEFAULT_RADII, descriptor_curves, pairwise_distances
from mimoe_core.topology._inputs import check_positions, check_radii
from mimoe_viz._checks import check_cutoffs, check_radius
from mimoe_viz._deps import require
from mimoe_viz._mol3d_html import (
    FADED,
    draw_script,
    legend_html,
    library_html,
    page_html,
    viewer_html,
)
from mimoe_viz._mol3d_png import molecule_png
from mimoe_viz._style import BEYOND_CUTOFFS, DEFAULT_CUTOFFS, expert_colors, expert_labels

__all__ = [
    "DEFAULT_CUTOFFS",
    "filtration_edges",
    "filtration_state",
    "filtration_widget",
    "has_py3dmol",
    "molecule_html",
    "molecule_png",
    "molecule_view",
    "save_molecule_html",
]


_ELEMENT_ID = re.compile(r"[A-Za-z][A-Za-z0-9_-]*")

# Element symbols by atomic number (index 0 unused).
_SYMBOLS = (
    "X H He Li Be B C N O F Ne Na Mg Al Si P S Cl Ar K Ca Sc Ti V Cr Mn Fe Co Ni Cu Zn Ga Ge "
    "As Se Br Kr Rb Sr Y Zr Nb Mo Tc Ru Rh Pd Ag Cd In Sn Sb Te I Xe Cs Ba La Ce Pr Nd Pm Sm "
    "Eu Gd Tb Dy Ho Er Tm Yb Lu Hf Ta W Re Os Ir Pt Au Hg Tl Pb Bi Po At Rn Fr Ra Ac Th Pa U "
    "Np Pu Am Cm Bk Cf Es Fm Md No Lr Rf Db Sg Bh Hs Mt Ds Rg Cn Nh Fl Mc Lv Ts Og"
).split()


# ----------------------------------------------------------------------------- validation


def _check_pos(pos: ArrayLike) -> np.ndarray:
    return check_positions(pos, name="pos")


def _check_z(z: ArrayLike, num_atoms: int) -> np.ndarray:
    arr = np.asarray(z)
    if arr.ndim != 1 or arr.shape[0] != num_atoms:
        raise ValueError(f"z must have shape [{num_atoms}] to match pos, got {arr.shape}")
    if arr.size and not np.issubdtype(arr.dtype, np.integer):
        if not np.all(np.isfinite(arr)) or np.any(arr != np.round(arr)):
            raise ValueError("z must hold integer atomic numbers")
    arr = arr.astype(np.int64)
    if np.any(arr < 1) or np.any(arr >= len(_SYMBOLS)):
        raise ValueError(f"atomic numbers must lie in 1..{len(_SYMBOLS) - 1}, got {arr}")
    return arr


def _check_cutoffs(cutoffs: ArrayLike) -> np.ndarray:
    return check_cutoffs(cutoffs, allow_empty=False)


def _check_grid(radii: ArrayLike, radius: float) -> tuple[np.ndarray, int]:
    """Slider grid (``radii`` with ``radius`` inserted if absent) and the index of ``radius``."""
    grid = check_radii(radii)
    close = np.flatnonzero(np.isclose(grid, radius, rtol=0.0, atol=1e-9))
    if close.size:
        return grid, int(close[0])
    grid = np.sort(np.append(grid, radius))
    return grid, int(np.searchsorted(grid, radius))


def _check_size(width: int, height: int) -> tuple[int, int]:
    if int(width) <= 0 or int(height) <= 0:
        raise ValueError(f"width and height must be positive pixels, got {width}x{height}")
    return int(width), int(height)


def _checked_scene(z, pos, radius, cutoffs, width, height):
    """Checked inputs of one 3D view: atoms, positions, radius, cutoffs, width, height.

    The radius defaults to the largest cutoff.
    """
    arr = _check_pos(pos)
    atoms = _check_z(z, arr.shape[0])
    cut = _check_cutoffs(cutoffs)
    r = float(cut[-1]) if radius is None else check_radius(radius)
    return (atoms, arr, r, cut, *_check_size(width, height))


# ----------------------------------------------------------------------------- pure functions


def filtration_edges(
    pos: ArrayLike, radius: float, cutoffs: Sequence[float] = DEFAULT_CUTOFFS
) -> dict[str, Any]:
    """The edges of G(radius), each tagged with the first expert whose graph contains it.

    G(r) has an edge between atoms i != j when d_ij <= r (closed). Expert e sees
    G(cutoffs[e]), so an edge of length d belongs to every expert with cutoff >= d; it is
    tagged with the smallest such e (the expert whose graph it enters first).

    Args:
        pos: atom coordinates in Å, shape [num_atoms, 3].
        radius: filtration radius r in Å, finite and >= 0.
        cutoffs: the K expert cutoffs in Å, strictly increasing; default
            :data:`DEFAULT_CUTOFFS` (2.0, 2.5, 3.0, 3.5, 4.0).

    Returns:
        Dict with, for the E edges sorted by length, then i, then j:

        - ``i``, ``j``: int64 arrays [E] of atom indices with i < j;
        - ``length``: float64 array [E] of distances in Å;
        - ``expert``: int64 array [E], the index of the smallest cutoff with
          length <= cutoff, or -1 for edges longer than every cutoff;
        - ``color``: list of E hex colours, the expert's colour from
          :func:`mimoe_viz._style.expert_colors` or ``BEYOND_CUTOFFS``.

    Raises:
        ValueError: if ``pos`` is not [N, 3] with N >= 1 and finite, ``radius`` is
            negative or not finite, or ``cutoffs`` is empty, non-positive or unsorted.

    Example:
        >>> import numpy as np
        >>> edges = filtration_edges(np.array([[0.0, 0, 0], [2.2, 0, 0], [6.7, 0, 0]]), 5.0)
        >>> edges["i"], edges["j"], edges["expert"]
        (array([0, 1]), array([1, 2]), array([ 1, -1]))
    """
    arr = _check_pos(pos)
    r = check_radius(radius)
    cut = _check_cutoffs(cutoffs)
    dist = pairwise_distances(arr)
    i, j = np.triu_indices(arr.shape[0], k=1)
    length = dist[i, j]
    keep = length <= r
    i, j, length = i[keep], j[keep], length[keep]
    order = np.lexsort((j, i, length))
    i, j, length = i[order].astype(np.int64), j[order].astype(np.int64), length[order]
    # side="left": the first cutoff >= length, so a length equal to a cutoff is inside it.
    expert = np.searchsorted(cut, length, side="left").astype(np.int64)
    expert[expert == cut.size] = -1
    palette = expert_colors(cut.size)
    color = [palette[e] if e >= 0 else BEYOND_CUTOFFS for e in expert]
    return {"i": i, "j": j, "length": length, "expert": expert, "color": color}


def _summary_text(radius: float, n_edges: int, betti0: int, betti1: int) -> str:
    noun = "edge" if n_edges == 1 else "edges"
    return f"r = {radius:.2f} Å · {n_edges} {noun} · β0 = {betti0} · β1 = {betti1}"


def _summary_html(radius: float, n_edges: int, betti0: int, betti1: int) -> str:
    noun = "edge" if n_edges == 1 else "edges"
    return (
        f"<b>r = {radius:.2f} Å</b> · {n_edges} {noun} · "
        f"β<sub>0</sub> = {betti0} · β<sub>1</sub> = {betti1}"
    )


def filtration_state(
    z: ArrayLike, pos: ArrayLike, radius: float, cutoffs: Sequence[float] = DEFAULT_CUTOFFS
) -> dict[str, Any]:
    """Everything the radius slider shows at one radius: edges, Betti numbers, experts.

    The pure callback behind :func:`filtration_widget`; it never touches a widget.

    Args:
        z: atomic numbers, shape [num_atoms] (1..118).
        pos: atom coordinates in Å, shape [num_atoms, 3].
        radius: filtration radius r in Å, finite and >= 0.
        cutoffs: the K expert cutoffs in Å, strictly increasing; default
            :data:`DEFAULT_CUTOFFS`.

    Returns:
        Dict with the keys of :func:`filtration_edges` (``i``, ``j``, ``length``,
        ``expert``, ``color``) plus:

        - ``radius`` (float, Å), ``n_atoms`` and ``n_edges`` (int);
        - ``betti0``, ``betti1`` (int): Betti numbers of the Rips complex at r, from
          :func:`mimoe_core.topology.descriptor_curves` (one atom: betti0 = 1);
        - ``cutoffs``: float64 array [K]; ``complete``: bool array [K], True where
          radius >= cutoff, i.e. the expert's whole graph G(cutoff) is inside G(r);
        - ``edges_per_expert``: int64 array [K] of edges tagged with each expert;
          ``n_beyond``: edges longer than every cutoff;
        - ``summary``: text such as ``"r = 2.30 Å · 17 edges · β0 = 1 · β1 = 1"``;
          ``summary_html``: the same with subscripts.

    Raises:
        ValueError: as :func:`filtration_edges`, or if ``z`` does not match ``pos``.

    Example:
        >>> import numpy as np
        >>> state = filtration_state([8, 1, 1], [[0, 0, 0], [0.96, 0, 0], [-0.24, 0.93, 0]], 1.0)
        >>> state["summary"]
        'r = 1.00 Å · 2 edges · β0 = 1 · β1 = 0'
    """
    arr = _check_pos(pos)
    _check_z(z, arr.shape[0])
    cut = _check_cutoffs(cutoffs)
    r = check_radius(radius)
    edges = filtration_edges(arr, r, cut)
    curves = descriptor_curves(arr, [r])
    betti0, betti1 = int(curves["betti0"][0]), int(curves["betti1"][0])
    n_edges = int(edges["i"].size)
    expert = edges["expert"]
    return {
        **edges,
        "radius": r,
        "n_atoms": int(arr.shape[0]),
        "n_edges": n_edges,
        "betti0": betti0,
        "betti1": betti1,
        "cutoffs": cut,
        "complete": r >= cut,
        "edges_per_expert": np.bincount(expert[expert >= 0], minlength=cut.size).astype(np.int64),
        "n_beyond": int(np.sum(expert < 0)),
        "summary": _summary_text(r, n_edges, betti0, betti1),
        "summary_html": _summary_html(r, n_edges, betti0, betti1),
    }


def _xyz(z: np.ndarray, pos: np.ndarray) -> str:
    lines = [str(len(z)), "mimoe"]
    lines += [f"{_SYMBOLS[a]} {x:.6f} {y:.6f} {w:.6f}" for a, (x, y, w) in zip(z, pos, strict=True)]
    return "\n".join(lines) + "\n"


def _png_data_url(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


# ----------------------------------------------------------------------------- py3Dmol


def has_py3dmol() -> bool:
    """Whether py3Dmol can be imported (it comes with the ``[viz]`` extra)."""
    return importlib.util.find_spec("py3Dmol") is not None


def molecule_view(
    z: ArrayLike,
    pos: ArrayLike,
    radius: float | None = None,
    cutoffs: Sequence[float] = DEFAULT_CUTOFFS,
    width: int = 480,
    height: int = 360,
    atom_scale: float = 0.3,
    edge_radius: float = 0.06,
    legend: bool = True,
) -> Any:
    """A py3Dmol view of the atoms and the edges of G(radius), coloured by expert.

    Atoms are element-coloured spheres (3Dmol.js default scheme, no perceived bonds); each
    edge of :func:`filtration_edges` is one cylinder in its expert's colour. The view is
    returned, never shown; it loads 3Dmol.js from py3Dmol's CDN when displayed, so use
    :func:`molecule_html` for offline pages.

    Args:
        z: atomic numbers, shape [num_atoms].
        pos: atom coordinates in Å, shape [num_atoms, 3].
        radius: filtration radius in Å; default None, the largest cutoff.
        cutoffs: the K expert cutoffs in Å; default :data:`DEFAULT_CUTOFFS`.
        width: viewer width in pixels; default 480.
        height: viewer height in pixels; default 360.
        atom_scale: sphere size as a fraction of the van der Waals radius; default 0.3.
        edge_radius: cylinder radius in Å; default 0.06.
        legend: add screen labels naming each expert cutoff (faded while
            r < cutoff); default True.

    Returns:
        A ``py3Dmol.view``.

    Raises:
        ImportError: if py3Dmol is not installed (``pip install "mimoe[viz]"``).
        ValueError: for invalid ``z``, ``pos``, ``radius`` or ``cutoffs``.
    """
    atoms, arr, r, cut, width, height = _checked_scene(z, pos, radius, cutoffs, width, height)
    edges = filtration_edges(arr, r, cut)
    py3Dmol = require("py3Dmol")

    view = py3Dmol.view(width=width, height=height)
    view.addModel(_xyz(atoms, arr), "xyz", {"assignBonds": False})
    view.setStyle({}, {"sphere": {"scale": float(atom_scale)}})
    for a, b, color in zip(edges["i"], edges["j"], edges["color"], strict=True):
        view.addCylinder(
            {
                "start": dict(zip("xyz", map(float, arr[a]), strict=True)),
                "end": dict(zip("xyz", map(float, arr[b]), strict=True)),
                "radius": float(edge_radius),
                "color": color,
                "fromCap": 1,
                "toCap": 1,
            }
        )
    if legend:
        labels = [f"G(r), r = {r:.2f} Å"] + expert_labels(cut)
        colors = ["#333333"] + expert_colors(cut.size)
        opacity = [1.0] + [1.0 if r >= c else FADED for c in cut]
        for row, (text, color, alpha) in enumerate(zip(labels, colors, opacity, strict=True)):
            view.addLabel(
                text,
                {
                    "useScreen": True,
                    "position": {"x": 6, "y": 6 + 20 * row, "z": 0},
                    "backgroundColor": color,
                    "backgroundOpacity": alpha,
                    "fontColor": "white",
                    "fontSize": 11,
                },
            )
    view.zoomTo()
    return view


# ----------------------------------------------------------------------------- standalone HTML
# The templates and markup live in mimoe_viz._mol3d_html; here the data they show.


def _fragment(
    z: ArrayLike,
    pos: ArrayLike,
    radius: float | None,
    cutoffs: Sequence[float],
    radii: ArrayLike | None,
    width: int,
    height: int,
    element_id: str | None,
    atom_scale: float,
    edge_radius: float,
    controls: bool,
    static: bool = False,
) -> tuple[str, str, np.ndarray, int]:
    """The viewer ``<div>`` + data + script, its element id, the radius grid and start index."""
    atoms, arr, r, cut, width, height = _checked_scene(z, pos, radius, cutoffs, width, height)
    grid, index = _check_grid([r] if radii is None else radii, r)
    if element_id is None:
        element_id = f"mimoe-mol3d-{uuid.uuid4().hex[:12]}"
    elif not _ELEMENT_ID.fullmatch(element_id):
        raise ValueError(f"element_id must match {_ELEMENT_ID.pattern}, got {element_id!r}")

    edges = filtration_edges(arr, float(grid[-1]), cut)
    curves = descriptor_curves(arr, grid)
    data = {
        "xyz": _xyz(atoms, arr),
        "pos": arr.tolist(),
        "edges": [
            [int(a), int(b), float(d), int(e)]
            for a, b, d, e in zip(
                edges["i"], edges["j"], edges["length"], edges["expert"], strict=True
            )
        ],
        "radii": grid.tolist(),
        "index": index,
        "betti0": curves["betti0"].astype(int).tolist(),
        "betti1": curves["betti1"].astype(int).tolist(),
        "cutoffs": cut.tolist(),
        "colors": expert_colors(cut.size),
        "beyond": BEYOND_CUTOFFS,
        "faded": FADED,
        "atom_scale": float(atom_scale),
        "edge_radius": float(edge_radius),
    }
    n_edges = int(np.sum(edges["length"] <= grid[index]))
    summary = _summary_text(
        float(grid[index]), n_edges, int(data["betti0"][index]), int(data["betti1"][index])
    )
    picture = None
    if static:
        png = molecule_png(atoms, arr, float(grid[index]), cut, width, height, atom_scale)
        picture = _png_data_url(png)
    body = viewer_html(element_id, width, height, data, summary, controls, picture)
    return body, element_id, grid, index


def molecule_html(
    z: ArrayLike,
    pos: ArrayLike,
    radius: float | None = None,
    cutoffs: Sequence[float] = DEFAULT_CUTOFFS,
    radii: ArrayLike | None = DEFAULT_RADII,
    width: int = 480,
    height: int = 360,
    include_library: bool = True,
    element_id: str | None = None,
    atom_scale: float = 0.3,
    edge_radius: float = 0.06,
    static: bool = True,
) -> str:
    """Offline HTML: a 3Dmol.js viewer of G(r) with a radius slider, no CDN needed.

    The fragment holds a ``<div>`` (viewer, ``<input type=range>`` over ``radii``, the
    current edge count and Betti numbers, a legend of expert cutoffs), the edge list as
    JSON in ``<script type="application/json" id="{element_id}-data">`` and a script that
    redraws the cylinders when the slider moves. Edge data are ``[i, j, length_Å,
    expert]`` rows for G(max(radii)), sorted by length.

    Args:
        z: atomic numbers, shape [num_atoms].
        pos: atom coordinates in Å, shape [num_atoms, 3].
        radius: radius shown first, in Å; default None, the largest cutoff. It is added to
            the slider grid if absent.
        cutoffs: the K expert cutoffs in Å; default :data:`DEFAULT_CUTOFFS`.
        radii: slider grid in Å, strictly increasing; default
            :data:`mimoe_core.topology.DEFAULT_RADII` (1.0 to 5.0 by 0.1). None: no
            slider, G(radius) only.
        width: viewer width in pixels; default 480.
        height: viewer height in pixels; default 360.
        include_library: inline 3Dmol.js (from :func:`mimoe_viz.assets.threedmol_js`) in
            front of the fragment; default True. A page with several viewers includes it
            once and passes False for the others.
        element_id: id of the outer ``<div>`` (letters, digits, ``-``, ``_``); default
            None, a fresh ``mimoe-mol3d-<uuid>`` per call.
        atom_scale: sphere size as a fraction of the van der Waals radius; default 0.3.
        edge_radius: cylinder radius in Å; default 0.06.
        static: also embed :func:`molecule_png` at the starting radius as a base64
            ``<img>``, shown instead of the 3D view without JavaScript or WebGL and when
            printing; default True.

    Returns:
        The HTML fragment (no ``<html>``/``<body>``; see :func:`save_molecule_html`).

    Raises:
        FileNotFoundError: with ``include_library=True`` when no local 3Dmol.js is found
            (``make assets``).
        ValueError: for invalid inputs or an ``element_id`` that is not a plain id.
    """
    body, _, _, _ = _fragment(
        z,
        pos,
        radius,
        cutoffs,
        radii,
        width,
        height,
        element_id,
        atom_scale,
        edge_radius,
        controls=True,
        static=static,
    )
    return (library_html("inline") if include_library else "") + body


def save_molecule_html(
    path: str | Path,
    z: ArrayLike,
    pos: ArrayLike,
    title: str = "mimoe: molecule and filtration",
    **kwargs: Any,
) -> Path:
    """Write a complete offline ``<!doctype html>`` page holding :func:`molecule_html`.

    Args:
        path: output file (``.html``).
        z: atomic numbers, shape [num_atoms].
        pos: atom coordinates in Å, shape [num_atoms, 3].
        title: page title; default ``"mimoe: molecule and filtration"``.
        **kwargs: passed to :func:`molecule_html` (``include_library`` is always True).

    Returns:
        The path written.
    """
    kwargs["include_library"] = True
    fragment = molecule_html(z, pos, **kwargs)
    out = Path(path)
    out.write_text(page_html(title, fragment), encoding="utf-8")
    return out


# ----------------------------------------------------------------------------- widget


def _html_output(markup: str) -> tuple[dict[str, Any], ...]:
    return ({"output_type": "display_data", "data": {"text/html": markup}, "metadata": {}},)


def filtration_widget(
    z: ArrayLike,
    pos: ArrayLike,
    radii: ArrayLike = DEFAULT_RADII,
    cutoffs: Sequence[float] = DEFAULT_CUTOFFS,
    radius: float | None = None,
    width: int = 480,
    height: int = 360,
    library: str = "auto",
) -> Any:
    """An ipywidgets slider over radii driving a 3D view of G(r), with Betti numbers beside.

    The viewer is rendered once into an ``ipywidgets.Output`` (the fragment of
    :func:`molecule_html` without its own slider); each slider move calls
    :func:`filtration_state`, updates the summary and the legend of expert cutoffs (solid
    once r >= cutoff), and sends a one-line script that redraws the cylinders, so the
    camera keeps its orientation. Works in JupyterLab and Jupyter Notebook 7, whose
    widget outputs run scripts.

    Args:
        z: atomic numbers, shape [num_atoms].
        pos: atom coordinates in Å, shape [num_atoms, 3].
        radii: slider grid in Å, strictly increasing; default
            :data:`mimoe_core.topology.DEFAULT_RADII`.
        cutoffs: the K expert cutoffs in Å; default :data:`DEFAULT_CUTOFFS`.
        radius: starting radius in Å, added to the grid if absent; default None, the
            largest cutoff.
        width: viewer width in pixels; default 480.
        height: viewer height in pixels; default 360.
        library: where 3Dmol.js comes from: ``"inline"`` (local file, works offline),
            ``"cdn"`` (jsdelivr), ``"none"`` (already on the page) or ``"auto"``
            (default: inline when a local copy is found, else the CDN).

    Returns:
        An ``ipywidgets.VBox`` with attributes ``slider`` (``SelectionSlider`` of radii),
        ``summary`` and ``legend`` (``HTML``), ``viewer`` and ``driver`` (``Output``),
        ``element_id`` and ``current_state`` (the latest :func:`filtration_state`).
        Setting ``slider.value`` updates them without a browser.

    Raises:
        ImportError: if ipywidgets is not installed (``pip install "mimoe[viz]"``).
        ValueError: for invalid inputs or an unknown ``library``.
    """
    widgets = require("ipywidgets")
    arr = _check_pos(pos)
    atoms = _check_z(z, arr.shape[0])
    cut = _check_cutoffs(cutoffs)
    start = float(cut[-1]) if radius is None else check_radius(radius)
    lib = library_html(library)
    body, element_id, grid, index = _fragment(
        atoms, arr, start, cut, radii, width, height, None, 0.3, 0.06, controls=False
    )

    slider = widgets.SelectionSlider(
        options=[(f"{r:.2f}", float(r)) for r in grid],
        value=float(grid[index]),
        description="r (Å)",
        continuous_update=True,
        layout=widgets.Layout(width=f"{max(width, 300)}px"),
    )
    summary = widgets.HTML()
    legend = widgets.HTML()
    viewer = widgets.Output(layout=widgets.Layout(width=f"{width + 4}px"))
    viewer.outputs = _html_output(lib + body)
    driver = widgets.Output(layout=widgets.Layout(display="none"))
    caption = widgets.HTML(
        '<span style="font-size:12px;color:#555">edge colour: the smallest expert cutoff '
        "containing the edge; a chip turns solid once r ≥ its cutoff</span>"
    )
    side = widgets.VBox([summary, legend, caption], layout=widgets.Layout(padding="0 0 0 12px"))
    box = widgets.VBox([widgets.HBox([viewer, side]), slider, driver])

    def update(change: dict[str, Any] | None = None) -> None:
        state = filtration_state(atoms, arr, slider.value, cut)
        summary.value = state["summary_html"]
        legend.value = legend_html(cut, state["radius"])
        driver.outputs = _html_output(draw_script(element_id, int(slider.index)))
        box.current_state = state

    slider.observe(update, names="value")
    update()
    box.slider, box.summary, box.legend = slider, summary, legend
    box.viewer, box.driver, box.element_id = viewer, driver, element_id
    return box
