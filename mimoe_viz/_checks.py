"""Input checks shared by the figure modules: radii, cutoffs and a single radius in Å.

They live in :mod:`mimoe_core.analysis.validation`, shared with the analysis functions.
"""

from __future__ import annotations

from mimoe_core.analysis.validation import check_cutoffs, check_grid, check_radius

__all__ = ["check_cutoffs", "check_grid", "check_radius"]
