"""Strip the tutorial notebooks for commit, keeping the outputs that nbval checks.

Cells whose first line is ``# NBVAL_CHECK_OUTPUT`` print numbers that must not change (an
atom count, a Betti number, how many rows were skipped). nbval compares them only if the
committed notebook holds them, so this script executes each notebook in smoke mode
(``SMOKE_TEST=1``, the mode CI runs), keeps the text outputs of those cells, and strips
everything else (other outputs and their execution counts, widget state):

    python tools/refresh_notebooks.py                 # all notebooks/*.ipynb
    python tools/refresh_notebooks.py notebooks/02_persistent_homology_routing.ipynb
    python tools/refresh_notebooks.py --strip-only    # no execution: only strip
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

import nbformat

MARK = "# NBVAL_CHECK_OUTPUT"
TEXT_TYPES = ("text/plain", "text/html")


def is_checked(cell: nbformat.NotebookNode) -> bool:
    """Whether nbval compares this cell's output."""
    return cell.cell_type == "code" and cell.source.lstrip().startswith(MARK)


def keep_text(outputs: list) -> list:
    """Stream and result outputs reduced to text (no images, no widget views)."""
    kept = []
    for out in outputs:
        if out.output_type == "stream" and out.name == "stdout":
            kept.append(out)
        elif out.output_type in ("execute_result", "display_data"):
            data = {k: v for k, v in out.data.items() if k in TEXT_TYPES}
            if data:
                out.data, out.metadata = data, {}
                kept.append(out)
    return kept


def strip(nb: nbformat.NotebookNode, keep_checked: bool) -> nbformat.NotebookNode:
    """Remove outputs (but those of checked cells when ``keep_checked``) and run metadata."""
    nb.metadata.pop("widgets", None)
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        if keep_checked and is_checked(cell):
            # nbval skips cells without an execution count ("unrun"): keep it.
            cell.outputs = keep_text(cell.outputs)
        else:
            cell.outputs, cell.execution_count = [], None
        for key in ("execution", "collapsed", "scrolled"):
            cell.metadata.pop(key, None)
    return nb


def execute(path: Path) -> nbformat.NotebookNode:
    """Run a notebook in smoke mode, in its own folder, with outputs in a temporary place."""
    from nbclient import NotebookClient

    nb = nbformat.read(path, as_version=4)
    with tempfile.TemporaryDirectory() as runs:
        os.environ.update(SMOKE_TEST="1", OMP_NUM_THREADS="1", MIMOE_RUNS_DIR=runs)
        NotebookClient(
            nb,
            timeout=900,
            kernel_name="python3",
            resources={"metadata": {"path": str(path.parent)}},
        ).execute()
    return nb


def main() -> None:  # noqa: D103
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="*", type=Path)
    parser.add_argument("--strip-only", action="store_true", help="do not execute")
    args = parser.parse_args()
    paths = args.notebooks or sorted(Path("notebooks").glob("*.ipynb"))
    for path in paths:
        nb = nbformat.read(path, as_version=4) if args.strip_only else execute(path)
        nbformat.write(strip(nb, keep_checked=not args.strip_only), path)
        checked = sum(is_checked(c) for c in nb.cells)
        print(f"{path}: {checked} checked cells", file=sys.stderr)


if __name__ == "__main__":
    main()
