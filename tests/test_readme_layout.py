"""The README's Layout names every module, so that the next engineer finds each owner there."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def layout_section() -> str:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    start = text.index("## Layout\n")
    return text[start : text.index("\n## ", start + 1)]


def modules_to_name(package: str) -> list[Path]:
    """The package's public modules, and the private ones at its top level and in
    ``mimoe_viz`` (topology's private files are described together, as the filtration)."""
    found = []
    for path in sorted((ROOT / package).rglob("*.py")):
        if path.name in ("__init__.py", "__main__.py") or "bundled" in path.parts:
            continue
        if path.name.startswith("_") and path.parent.name in ("topology", "analysis", "inference"):
            continue
        found.append(path)
    return found


def named(stem: str, text: str) -> bool:
    """Whether ``stem`` stands in ``text`` as a word of its own (``routing`` is not named by
    ``dataset_routing.py``)."""
    return re.search(rf"(?<![\w.]){re.escape(stem)}(?![\w])", text) is not None


@pytest.mark.parametrize("package", ["mimoe_core", "mimoe_viz", "benchmarks", "tools"])
def test_every_module_is_named_in_the_layout(package):
    layout = layout_section()
    files = [*modules_to_name(package), *(ROOT / package).glob("*.sh")]
    assert files, f"no modules found in {package}"
    unnamed = [
        str(path.relative_to(ROOT))
        for path in files
        if not named(path.stem, layout)
        and not (path.name.startswith("bench_") and "bench_*.py" in layout)
    ]
    assert not unnamed, f"README's Layout does not name: {unnamed}"


def test_a_module_is_named_only_by_its_own_word():
    assert named("routing", "routing.py (per molecule)")
    assert not named("routing", "dataset_routing.py")
    assert not named("ema", "schema.py")
    assert named("_style", "_style, _marks: shared helpers")
