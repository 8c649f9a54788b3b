"""The analysis layer imports without torch, the models, training or mimoe_viz."""

import pkgutil
import subprocess
import sys

import mimoe_core.analysis

ANALYSIS_MODULES = {
    "_arrays", "calibrators", "metrics", "routing", "tables", "topology", "uncertainty",
    "validation",
}  # fmt: skip


def test_every_analysis_module_imports_without_torch():
    found = {m.name for m in pkgutil.iter_modules(mimoe_core.analysis.__path__)}
    assert found == ANALYSIS_MODULES, found ^ ANALYSIS_MODULES
    names = ["mimoe_core.analysis"] + [f"mimoe_core.analysis.{m}" for m in sorted(found)]
    code = (
        "import importlib, sys\n"
        f"for name in {names!r}:\n"
        "    importlib.import_module(name)\n"
        "bad = [m for m in sys.modules if m.startswith(('torch', 'mimoe_core.training', "
        "'mimoe_core.models', 'mimoe_core.inference', 'mimoe_viz'))]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
