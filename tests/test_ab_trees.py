"""``benchmarks/ab_trees.py`` times one ``mimoe train`` command in two checkouts (here the
same one twice, one process, one round: the script works and reports the paired ratio)."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
import ab_trees  # noqa: E402


def test_one_round_reports_both_rates_and_their_ratio(tmp_path, monkeypatch):
    monkeypatch.setenv("MIMOE_CACHE_DIR", str(tmp_path / "cache"))
    out = tmp_path / "ab.md"
    train = ["--dataset", "freesolv", "--limit", "30", "--epochs", "1", "--hidden", "8",
             "--split", "random"]  # fmt: skip
    argv = ["--old", str(ROOT), "--new", str(ROOT), "--ranks", "1", "--rounds", "1",
            "--out", str(out), "--", *train]  # fmt: skip
    assert ab_trees.main(argv) == 0
    text = out.read_text()
    assert "- 1 process(es), one thread each, 1 rounds" in text
    row = next(line for line in text.splitlines() if line.startswith("| 0 |"))
    old, new, ratio = (float(cell) for cell in row.strip("|").split("|")[1:])
    assert old > 0 and new > 0 and abs(ratio - new / old) < 0.01
