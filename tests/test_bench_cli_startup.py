"""``benchmarks/bench_cli_startup.py`` times ``mimoe train --help`` against the help built after
importing the models (one round: the script works)."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import bench_cli_startup  # noqa: E402


def test_one_round_reports_both_cases_and_the_ratio(tmp_path):
    out = tmp_path / "startup.md"
    assert bench_cli_startup.main(["--rounds", "1", "--out", str(out)]) == 0
    text = out.read_text()
    assert "- wall seconds of a fresh process, 1 interleaved rounds" in text
    assert "| `mimoe train --help` | " in text
    assert "| the same help after importing the models (as before) | " in text
    assert text.rstrip().endswith("| 1.000 |")  # the baseline against itself
