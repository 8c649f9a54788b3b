"""The static PNG picture of one molecule and G(r), behind :func:`mimoe_viz.mol3d.molecule_png`.

Private: :mod:`mimoe_viz.mol3d` re-exports :func:`molecule_png`, and the HTML viewer embeds
it as the no-WebGL and print fallback. Drawn with matplotlib (the ``[viz]`` extra), imported
lazily when a picture is made.
"""

from __future__ import annotations

import io
from collections.abc import Sequence

import numpy as np
from numpy.typing import ArrayLike

from mimoe_viz._deps import require
from mimoe_viz._style import DEFAULT_CUTOFFS, ELEMENT_COLORS, OTHER_ELEMENT

__all__ = ["molecule_png"]

# Van der Waals radii in Å (Bondi) for the sphere sizes; others get _OTHER_VDW.
_VDW = {1: 1.2, 5: 1.92, 6: 1.7, 7: 1.55, 8: 1.52, 9: 1.47, 14: 2.1, 15: 1.8, 16: 1.8,
        17: 1.75, 35: 1.85, 53: 1.98}  # fmt: skip
_OTHER_VDW = 1.8


def molecule_png(
    z: ArrayLike,
    pos: ArrayLike,
    radius: float | None = None,
    cutoffs: Sequence[float] = DEFAULT_CUTOFFS,
    width: int = 480,
    height: int = 360,
    atom_scale: float = 0.3,
    dpi: int = 100,
) -> bytes:
    r"""A PNG picture of the atoms and G(radius), the print and no-WebGL twin of the viewer.

    Drawn with matplotlib's ``mplot3d`` in the 3D viewer's starting orientation (looking
    down the z axis, x to the right, y up, orthographic): atoms as spheres in Jmol's element
    colours (the scheme 3Dmol.js uses), sized by ``atom_scale`` times their van der Waals
    radius, and the edges of :func:`~mimoe_viz.mol3d.filtration_edges` as lines in their
    expert colours.

    Args:
        z: atomic numbers, shape [num_atoms].
        pos: atom coordinates in Å, shape [num_atoms, 3].
        radius: filtration radius in Å; default None, the largest cutoff.
        cutoffs: the K expert cutoffs in Å; default :data:`DEFAULT_CUTOFFS`.
        width: picture width in pixels; default 480.
        height: picture height in pixels; default 360.
        atom_scale: sphere size as a fraction of the van der Waals radius; default 0.3.
        dpi: resolution; the picture is ``width`` x ``height`` pixels at any dpi.

    Returns:
        The PNG file's bytes.

    Raises:
        ValueError: for invalid ``z``, ``pos``, ``radius``, ``cutoffs`` or size.
        ImportError: if matplotlib is missing.

    Example:
        >>> molecule_png([8, 1, 1], [[0, 0, 0], [0.96, 0, 0], [-0.24, 0.93, 0]])[:4]
        b'\x89PNG'
    """
    # mol3d imports this module to re-export molecule_png, so its checks and
    # filtration_edges are imported here, once mol3d is fully loaded.
    from mimoe_viz.mol3d import _checked_scene, filtration_edges

    atoms, arr, r, cut, width, height = _checked_scene(z, pos, radius, cutoffs, width, height)
    edges = filtration_edges(arr, r, cut)
    figure_cls = require("matplotlib.figure").Figure
    art3d = require("mpl_toolkits.mplot3d.art3d")
    fig = figure_cls(figsize=(width / dpi, height / dpi), dpi=dpi)
    ax = fig.add_axes((0.0, 0.0, 1.0, 1.0), projection="3d", proj_type="ortho")
    ax.view_init(elev=90, azim=-90)  # 3Dmol.js's start: camera on +z, x right, y up
    ax.set_axis_off()
    center = (arr.max(axis=0) + arr.min(axis=0)) / 2
    half = max(float(np.max(arr.max(axis=0) - arr.min(axis=0))) / 2 + 0.8, 1.5)
    aspect = width / height
    ax.set_xlim(center[0] - half * aspect, center[0] + half * aspect)
    ax.set_ylim(center[1] - half, center[1] + half)
    ax.set_zlim(center[2] - half, center[2] + half)
    ax.set_box_aspect((aspect, 1.0, 1.0), zoom=1.6)
    if edges["i"].size:
        segments = np.stack([arr[edges["i"]], arr[edges["j"]]], axis=1)
        ax.add_collection3d(art3d.Line3DCollection(segments, colors=edges["color"], linewidths=2))
    proj3d = require("mpl_toolkits.mplot3d.proj3d")
    ax.apply_aspect()  # the box the picture is drawn in, so Å map to the right pixels
    ends = [proj3d.proj_transform(*(center + [d, 0, 0]), ax.get_proj())[:2] for d in (0, 1)]
    px_per_angstrom = float(np.linalg.norm(np.diff(ax.transData.transform(ends), axis=0)))
    size_pt = [
        72.0 / dpi * 2 * atom_scale * _VDW.get(int(a), _OTHER_VDW) * px_per_angstrom for a in atoms
    ]
    ax.scatter(
        arr[:, 0],
        arr[:, 1],
        arr[:, 2],
        s=np.square(size_pt),
        c=[ELEMENT_COLORS.get(int(a), OTHER_ELEMENT) for a in atoms],
        edgecolors="#555555",
        linewidths=0.6,
        depthshade=False,
        alpha=1.0,
    )
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi, facecolor="white")
    return buffer.getvalue()
