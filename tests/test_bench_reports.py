"""The committed benchmark reports are what their committed runs render to.

The run-many benchmarks keep one JSON per finished run under ``benchmarks/results/runs/``
and commit it with the report, so that a benchmark of several sessions continues on any
machine. These tests re-render each report from those runs (``--report-only``, nothing
trained) and compare it with the committed one, so a report cannot drift from its runs.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pandas as pd
import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
RESULTS = BENCHMARKS / "results"
sys.path.insert(0, str(BENCHMARKS))
import _parallel_runs  # noqa: E402


def _body(text: str) -> str:
    """The report from its first section on: the header names the date and the machine."""
    return text[text.index("\n## ") :]


def test_runs_are_committed_not_ignored():
    """``runs/`` (the demo's output) is ignored; the benchmarks' runs folder must not be."""
    import subprocess

    for folder in ("accuracy_full", "open_questions"):
        assert (_parallel_runs.RUNS / folder).is_dir(), f"{folder}: no committed runs"
    probe = _parallel_runs.RUNS / "accuracy_full" / "probe.json"
    done = subprocess.run(
        ["git", "check-ignore", "-q", str(probe)], cwd=BENCHMARKS, capture_output=True
    )
    if done.returncode == 128:
        pytest.skip("not a git checkout")
    assert done.returncode == 1, "git ignores benchmarks/results/runs/"


def test_origin_notes_counts_runs_and_names_their_sources():
    rows = [{"test": 1.0}, {"test": 2.0, "restored_from": "a.md at abc"}]
    rows.append({"test": 3.0, "restored_from": "b.csv at abc"})
    (line,) = _parallel_runs.origin_notes(rows)
    assert line.startswith("- 2 of these runs were rebuilt")
    assert "a.md at abc; b.csv at abc" in line
    assert _parallel_runs.origin_notes(rows[:1]) == []


def test_origin_notes_count_the_machines_and_dates_runs_record():
    rows = [
        {"test": 1.0, "finished": "2026-12-02 21:00 UTC", "machine": "A, 2 CPU cores"},
        {"test": 2.0, "finished": "2026-12-01 09:30 UTC", "machine": "B, 2 CPU cores"},
        {"test": 3.0, "finished": "2026-12-02 08:00 UTC", "machine": "A, 2 CPU cores"},
        {"test": 4.0},  # older than the stamps: not counted
    ]
    (line,) = _parallel_runs.origin_notes(rows)
    assert line.startswith("- 3 of these runs record where they ran: 2 machines (A, 2 CPU")
    assert "finished 2026-12-01 09:30 UTC to 2026-12-02 21:00 UTC" in line


def test_origin_notes_count_the_runs_that_were_stopped_for_a_while():
    rows = [{"test": 1.0}, {"test": 2.0, "stopped": "2026-12-03 17:29-18:04 UTC"}]
    (line,) = _parallel_runs.origin_notes(rows)
    assert line.startswith("- 1 of these runs were stopped (SIGSTOP)")
    assert _parallel_runs.origin_notes(rows[:1]) == []


def test_origin_notes_count_the_runs_trained_with_compiled_message_passing():
    rows = [{"test": 1.0}, {"test": 2.0, "compiled": True}, {"test": 3.0, "compiled": True}]
    (line,) = _parallel_runs.origin_notes(rows)
    assert line.startswith("- 2 of these runs compiled their experts' message passing")
    assert _parallel_runs.origin_notes(rows[:1]) == []


def test_runs_record_the_fused_optimizer_unless_pinned_to_the_earlier_defaults():
    tiny = {"expert": {"hidden_channels": 8, "num_layers": 1, "num_filters": 8, "num_rbf": 10}}
    _, today = _parallel_runs.train_on_split("freesolv", 0, tiny, limit=40, recipe={}, epochs=1)
    _, earlier = _parallel_runs.train_on_split("freesolv", 0, tiny, limit=40, epochs=1)
    assert today["fused_optimizer"] is True and "fused_optimizer" not in earlier
    (line,) = _parallel_runs.origin_notes([today, earlier])
    assert line.startswith("- 1 of these runs stepped AdamW with torch's fused kernel")


def test_a_finished_run_is_stamped_and_its_stamp_is_tabled_last(tmp_path):
    path = tmp_path / "run.json"
    _parallel_runs.run_pending([(path, dict, ())], jobs=1, describe=str)
    stamped = json.loads(path.read_text())
    assert set(stamped) == set(_parallel_runs.PROVENANCE)
    frame = pd.DataFrame([{"finished": "d", "machine": "m", "test": 1.5}])
    assert _parallel_runs.markdown_rows(frame)[0] == "| test | finished | machine |"


def test_open_questions_report_renders_from_its_committed_runs(tmp_path):
    import bench_open_questions

    out = tmp_path / "open_questions_cpu.md"
    assert bench_open_questions.main(["--report-only", "--out", str(out)]) == 0
    committed = RESULTS / "open_questions_cpu.md"
    assert _body(out.read_text()) == _body(committed.read_text())
    trunk = bench_open_questions.trunk_cost_csv(out)
    assert trunk.read_text() == bench_open_questions.trunk_cost_csv(committed).read_text()


def test_one_datasets_invocation_keeps_the_other_datasets_tables(tmp_path):
    """A run of ``--datasets bace`` renders FreeSolv's finished runs too, as the default
    invocation does: it does not overwrite the report with BACE's tables alone."""
    import bench_open_questions

    both, bace = tmp_path / "both.md", tmp_path / "bace.md"
    assert bench_open_questions.main(["--report-only", "--out", str(both)]) == 0
    assert (
        bench_open_questions.main(["--report-only", "--datasets", "bace", "--out", str(bace)]) == 0
    )
    assert "| freesolv | rmse | schnet |" in bace.read_text()
    assert _body(bace.read_text()) == _body(both.read_text())
    work = tmp_path / "empty"
    work.mkdir()
    assert bench_open_questions.reported_datasets(["bace"], work) == ["bace"]
    (work / "q1_cost_freesolv.json").write_text("{}")
    assert bench_open_questions.reported_datasets(["bace"], work) == ["freesolv", "bace"]


def test_accuracy_report_runs_are_its_committed_runs(tmp_path):
    import bench_accuracy

    out = tmp_path / "accuracy_full.md"
    assert bench_accuracy.main(["--report-only", "--out", str(out)]) == 0
    # Without --chemprop the missing chemprop rows give another reason; the runs are equal.
    runs = out.read_text().split("\n## Runs\n")[1]
    assert runs == (RESULTS / "accuracy_full.md").read_text().split("\n## Runs\n")[1]
    assert out.with_suffix(".csv").read_text() == (RESULTS / "accuracy_full.csv").read_text()
