"""Where the JavaScript for offline pages comes from: plotly.js and 3Dmol.js.

plotly.js ships inside the ``plotly`` Python package. 3Dmol.js is the npm package ``3dmol``
(the same version as py3Dmol), fetched from the npm registry at set-up time
(``make assets``, run by ``make test`` and ``make demo``) into ``node_modules/``; it is never
copied into this repository. The file is found, in order, at:

1. ``$MIMOE_3DMOL_JS`` (a path to ``3Dmol-min.js``),
2. ``node_modules/3dmol/build/3Dmol-min.js`` under the current folder or any parent,
3. the same under the folder that holds the installed ``mimoe_viz`` package's checkout.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path

THREEDMOL_VERSION = "2.5.5"
_RELATIVE = Path("node_modules") / "3dmol" / "build" / "3Dmol-min.js"


def threedmol_js_path() -> Path:
    """Path of a local ``3Dmol-min.js``.

    Raises:
        FileNotFoundError: if none is found; the message says how to get one.
    """
    env = os.environ.get("MIMOE_3DMOL_JS")
    if env:
        path = Path(env)
        if not path.is_file():
            raise FileNotFoundError(f"MIMOE_3DMOL_JS points to {path}, which is not a file")
        return path
    starts = [Path.cwd(), Path(__file__).resolve().parent]
    for start in starts:
        for folder in (start, *start.parents):
            candidate = folder / _RELATIVE
            if candidate.is_file():
                return candidate
    raise FileNotFoundError(
        "3Dmol.js not found: run `make assets` (or `npm install 3dmol@"
        f"{THREEDMOL_VERSION}` in the project folder), or set MIMOE_3DMOL_JS to the path "
        "of 3Dmol-min.js"
    )


@functools.cache
def threedmol_js() -> str:
    """The text of 3Dmol.js, for inlining into standalone HTML."""
    return threedmol_js_path().read_text(encoding="utf-8")


@functools.cache
def plotly_js() -> str:
    """The text of plotly.js bundled with the installed ``plotly`` package."""
    from plotly.offline import get_plotlyjs

    return get_plotlyjs()
