"""The README's Layout names every module, so that the next engineer finds each owner there."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def layout_of(package: str) -> str:
    """The lines of the README's Layout about ``package``: from the line that starts with
    ``package/`` to the next line that starts at the margin."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    start = text.index("## Layout\n")
    lines = text[start : text.index("\n## ", start + 1)].splitlines()
    first = next(i for i, line in enumerate(lines) if line.startswith(f"{package}/"))
    end = next(
        (i for i in range(first + 1, len(lines)) if lines[i][:1] not in (" ", "")), len(lines)
    )
    return "\n".join(lines[first:end])


def modules_to_name(package: str) -> list[Path]:
    """The package's modules, private ones included, except the private files of
    ``topology``, ``analysis`` and ``inference``, which the Layout describes by what the
    folder does."""
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
    layout = layout_of(package)
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
