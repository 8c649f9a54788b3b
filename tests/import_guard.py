"""Check in a fresh interpreter which modules an import pulls in (say, that it needs no torch).

Imported by name (``from import_guard import assert_imports_without``): pytest puts tests/ on
``sys.path`` because it has no ``__init__.py``.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterable


def assert_imports_without(modules: str | Iterable[str], forbidden: Iterable[str]) -> None:
    """Import ``modules`` in a new Python; fail if a loaded module's name starts with one of
    ``forbidden`` (so ``"torch"`` also catches ``torch_geometric``)."""
    names = [modules] if isinstance(modules, str) else list(modules)
    code = (
        "import importlib, sys\n"
        f"for name in {names!r}:\n"
        "    importlib.import_module(name)\n"
        f"bad = [m for m in sys.modules if m.startswith({tuple(forbidden)!r})]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
