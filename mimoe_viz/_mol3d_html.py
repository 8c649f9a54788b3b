"""The HTML and JavaScript of the standalone 3D viewer of :mod:`mimoe_viz.mol3d`.

Templates and string builders only: :mod:`mimoe_viz.mol3d` computes the edges, the Betti
numbers and the checked inputs, and passes plain data here. 3Dmol.js itself comes from
:mod:`mimoe_viz.assets` (inlined) or a CDN.
"""

from __future__ import annotations

import html
import json
from typing import Any

import numpy as np

from mimoe_viz._style import BEYOND_CUTOFFS, expert_colors, expert_labels

CDN_URL = "https://cdn.jsdelivr.net/npm/3dmol@{version}/build/3Dmol-min.js"
FADED = 0.3  # opacity of a legend chip whose expert graph is not yet inside G(r)


# Inlined 3Dmol.js runs inside a function whose define/module/exports parameters shadow any
# AMD or CommonJS loader on the page (Jupyter's requirejs), so the UMD header falls through
# to the browser global; `this` is the window, where the library puts $3Dmol.
LIBRARY_TEMPLATE = (
    "<script>(function (define, module, exports) {{\n"
    "if (window.$3Dmol) {{ return; }}\n{library}\n}}).call(window);</script>\n"
)

CDN_TEMPLATE = """<script>(function () {
  if (window.$3Dmol || window.mimoeMol3dLoading) { return; }
  window.mimoeMol3dLoading = true;
  var tag = document.createElement("script");
  tag.src = %s;
  document.head.appendChild(tag);
})();</script>
"""

# The viewer: waits for $3Dmol (inlined above, or loading from a CDN), draws the atoms once
# and redraws the cylinders for a grid index. Edges arrive sorted by length, so G(r) is a
# prefix of the list. Drivers outside the page (the ipywidgets slider) call
# window.mimoeMol3d[id].draw(k), or leave k in window.mimoeMol3dPending until it is ready.
VIEWER_JS = """<script>(function () {
  var id = %(id)s;
  var root = document.getElementById(id);
  var data = JSON.parse(document.getElementById(id + "-data").textContent);
  var slider = document.getElementById(id + "-slider");
  var summary = document.getElementById(id + "-summary");
  var chips = document.querySelectorAll("#" + id + "-legend [data-cutoff]");
  window.mimoeMol3d = window.mimoeMol3d || {};
  window.mimoeMol3dPending = window.mimoeMol3dPending || {};
  function text(k, n) {
    return "r = " + data.radii[k].toFixed(2) + " \\u00c5 \\u00b7 " + n +
      (n === 1 ? " edge" : " edges") + " \\u00b7 \\u03b20 = " + data.betti0[k] +
      " \\u00b7 \\u03b21 = " + data.betti1[k];
  }
  function fallback(status) {
    root.setAttribute("data-status", status);
    var picture = document.getElementById(id + "-static");
    if (picture) {
      picture.style.display = "block";
      document.getElementById(id + "-viewer").style.display = "none";
    }
  }
  function start() {
    var viewer = null;
    try {
      viewer = $3Dmol.createViewer(document.getElementById(id + "-viewer"),
                                   {backgroundColor: "white"});
    } catch (err) { viewer = null; }
    if (!viewer) { fallback("no-webgl"); return; }
    viewer.addModel(data.xyz, "xyz", {assignBonds: false});
    viewer.setStyle({}, {sphere: {scale: data.atom_scale}});
    viewer.zoomTo();
    function draw(k) {
      var r = data.radii[k], n = 0;
      viewer.removeAllShapes();
      for (; n < data.edges.length && data.edges[n][2] <= r; n++) {
        var e = data.edges[n], a = data.pos[e[0]], b = data.pos[e[1]];
        viewer.addCylinder({start: {x: a[0], y: a[1], z: a[2]},
                            end: {x: b[0], y: b[1], z: b[2]},
                            radius: data.edge_radius, fromCap: 1, toCap: 1,
                            color: e[3] < 0 ? data.beyond : data.colors[e[3]]});
      }
      for (var c = 0; c < chips.length; c++) {
        var cut = parseFloat(chips[c].getAttribute("data-cutoff"));
        chips[c].style.opacity = r >= cut ? "1" : String(data.faded);
      }
      if (summary) { summary.textContent = text(k, n); }
      if (slider) { slider.value = String(k); }
      root.setAttribute("data-radius", String(r));
      root.setAttribute("data-edges", String(n));
      viewer.render();
    }
    window.mimoeMol3d[id] = {viewer: viewer, draw: draw, data: data};
    var pending = window.mimoeMol3dPending[id];
    delete window.mimoeMol3dPending[id];
    draw(pending === undefined ? data.index : pending);
    if (slider) { slider.addEventListener("input", function () { draw(+slider.value); }); }
    root.setAttribute("data-status", "ready");
  }
  var tries = 0;
  (function wait() {
    if (window.$3Dmol) { start(); }
    else if (tries++ < 400) { setTimeout(wait, 50); }
    else {
      document.getElementById(id + "-viewer").textContent =
        "3Dmol.js did not load: pass include_library=True or check the network.";
      fallback("no-3dmol");
    }
  })();
})();</script>
"""


# The static picture of a viewer (class mimoe-mol3d-static) is hidden while the 3D view
# works; it shows without JavaScript (<noscript>), in print (the canvas does not print)
# and when WebGL or 3Dmol.js fails (VIEWER_JS's fallback).
STATIC_CSS = (
    "<style>.mimoe-mol3d-static{display:none;max-width:100%;border:1px solid #ddd}"
    "@media print{.mimoe-mol3d .mimoe-mol3d-viewer,.mimoe-mol3d canvas,"
    ".mimoe-mol3d input[type=range]{display:none!important}"
    ".mimoe-mol3d .mimoe-mol3d-static{display:block!important}}</style>"
)
NOSCRIPT_CSS = (
    "<noscript><style>.mimoe-mol3d .mimoe-mol3d-static{display:block!important}"
    ".mimoe-mol3d .mimoe-mol3d-viewer,.mimoe-mol3d input[type=range]{display:none!important}"
    "</style></noscript>"
)


def json_for_script(obj: Any) -> str:
    # "<" escaped so no string can close the <script> element.
    return json.dumps(obj, separators=(",", ":")).replace("<", "\\u003c")


def library_html(library: str) -> str:
    from mimoe_viz.assets import THREEDMOL_VERSION, threedmol_js, threedmol_js_path

    if library == "auto":
        try:
            threedmol_js_path()
            library = "inline"
        except FileNotFoundError:
            library = "cdn"
    if library == "inline":
        text = threedmol_js().replace("</script", "<\\/script")
        return LIBRARY_TEMPLATE.format(library=text)
    if library == "cdn":
        return CDN_TEMPLATE % json.dumps(CDN_URL.format(version=THREEDMOL_VERSION))
    if library == "none":
        return ""
    raise ValueError(f"library must be 'auto', 'inline', 'cdn' or 'none', got {library!r}")


def legend_html(cutoffs: np.ndarray, radius: float) -> str:
    """Coloured chips, one per expert cutoff (faded until G(cutoff) is inside G(r))."""
    chip = (
        "display:inline-block;margin:2px 4px 2px 0;padding:1px 6px;border-radius:3px;"
        "font:12px sans-serif;"
    )
    parts = []
    for c, color, label in zip(
        cutoffs, expert_colors(cutoffs.size), expert_labels(cutoffs), strict=True
    ):
        opacity = 1.0 if radius >= c else FADED
        parts.append(
            f'<span class="mimoe-chip" data-cutoff="{float(c)!r}" '
            f'title="edges first inside G({float(c):g} Å); solid once r ≥ {float(c):g} Å" '
            f'style="{chip}background:{color};color:white;opacity:{opacity}">'
            f"{html.escape(label)}</span>"
        )
    parts.append(
        f'<span class="mimoe-chip" title="edges longer than every expert cutoff" '
        f'style="{chip}background:{BEYOND_CUTOFFS};color:#222">'
        f"&gt; {float(cutoffs[-1]):g} Å</span>"
    )
    return "".join(parts)


def viewer_html(
    element_id: str,
    width: int,
    height: int,
    data: dict[str, Any],
    summary: str,
    controls: bool,
    static_png: str | None = None,
) -> str:
    """The viewer ``<div>``, its JSON data and the script that draws it.

    ``data`` is the payload :data:`VIEWER_JS` reads (``radii``, ``index``, ``cutoffs``,
    edges...). With ``controls`` the ``<div>`` also holds a radius slider (when the grid has
    more than one radius), the ``summary`` line and the legend of expert cutoffs.
    ``static_png`` (a ``data:image/png;base64,...`` URL) adds the static picture shown
    without JavaScript or WebGL and in print (:data:`STATIC_CSS`).
    """
    radii, index = data["radii"], data["index"]
    slider = ""
    if controls and len(radii) > 1:
        slider = (
            f'<input type="range" id="{element_id}-slider" min="0" max="{len(radii) - 1}" '
            f'step="1" value="{index}" aria-label="filtration radius in Å" '
            'style="width:100%;margin:4px 0">'
        )
    parts = [
        f'<div id="{element_id}" class="mimoe-mol3d" '
        f'style="width:{width}px;font:13px sans-serif;color:#222">',
        f'<div id="{element_id}-viewer" class="mimoe-mol3d-viewer" style="position:relative;'
        f'width:{width}px;height:{height}px;border:1px solid #ddd"></div>',
    ]
    if static_png:
        parts[:0] = [STATIC_CSS, NOSCRIPT_CSS]
        parts.append(
            f'<img id="{element_id}-static" class="mimoe-mol3d-static" width="{width}" '
            f'height="{height}" alt="the molecule and G(r) at r = {float(radii[index]):.2f} Å '
            f'(static picture)" src="{static_png}">'
        )
    if slider:
        parts.append(slider)
    if controls:
        legend = legend_html(np.asarray(data["cutoffs"], dtype=np.float64), float(radii[index]))
        parts.append(f'<div id="{element_id}-summary">{html.escape(summary)}</div>')
        parts.append(f'<div id="{element_id}-legend">{legend}</div>')
    parts += [
        "</div>",
        f'<script type="application/json" id="{element_id}-data">{json_for_script(data)}</script>',
        VIEWER_JS % {"id": json.dumps(element_id)},
    ]
    return "\n".join(parts)


def page_html(title: str, fragment: str) -> str:
    """A complete ``<!doctype html>`` page holding one viewer fragment under ``title``."""
    return (
        '<!doctype html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f"<title>{html.escape(title)}</title>\n</head>\n"
        f'<body style="margin:16px">\n<h3 style="font:600 15px sans-serif">'
        f"{html.escape(title)}</h3>\n{fragment}</body>\n</html>\n"
    )


def draw_script(element_id: str, k: int) -> str:
    """A one-line script that redraws viewer ``element_id`` at grid index ``k``.

    Before the viewer is ready, ``k`` waits in ``window.mimoeMol3dPending``.
    """
    return (
        f"<script>(function () {{ var v = window.mimoeMol3d && "
        f'window.mimoeMol3d["{element_id}"]; if (v) {{ v.draw({k}); }} else {{ '
        f"window.mimoeMol3dPending = window.mimoeMol3dPending || {{}}; "
        f'window.mimoeMol3dPending["{element_id}"] = {k}; }} }})();</script>'
    )
