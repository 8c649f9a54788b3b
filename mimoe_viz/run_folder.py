"""Read one training run folder: :class:`RunFolder` and :func:`load_run`.

The run folder has one owner, :mod:`mimoe_core.run_folder` (file names, writer, reader;
no torch); this module keeps its reader importable from ``mimoe_viz.run_folder``.
"""

from __future__ import annotations

from mimoe_core.run_folder import RunFolder, load_run

__all__ = ["RunFolder", "load_run"]
