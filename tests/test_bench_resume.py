"""The run-many benchmarks lose at most an epoch of a run that is interrupted: each training
checkpoints into the work folder's ``in_progress/`` and a rerun resumes it there (fault
injection: a training that fails after two epochs, then the rerun)."""

from __future__ import annotations

import datetime
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import torch

from mimoe_core.training import trainer

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))
import _parallel_runs  # noqa: E402

CONFIG = {"backbone": "schnet", "expert": {"hidden_channels": 16, "num_filters": 16, "num_rbf": 8}}


class Interrupted(Exception):
    """Stands for the end of a session in the middle of a run."""


def _train(epochs: int = 4) -> tuple:
    """One small training of the benchmarks' shape."""
    return _parallel_runs.train_on_split(
        "freesolv", 0, CONFIG, limit=60, recipe={}, epochs=epochs, patience=10, batch_size=16
    )


@pytest.fixture
def one_thread_restored():
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


def test_an_interrupted_run_resumes_after_its_last_epoch_and_ends_as_if_uninterrupted(
    tmp_path, monkeypatch, one_thread_restored
):
    whole_result, whole = _train()  # outside run_pending: no checkpoints
    assert "resumed_after_epoch" not in whole
    checkpoints = tmp_path / "in_progress" / "run"
    original = trainer.TrainingRun.train_epoch

    def train_epoch(self, epoch):
        if epoch == 2:
            raise Interrupted
        return original(self, epoch)

    with monkeypatch.context() as patch:
        patch.setattr(trainer.TrainingRun, "train_epoch", train_epoch)
        with pytest.raises(Interrupted):
            _parallel_runs._run_resumably(_train, (), checkpoints)
    (folder,) = checkpoints.iterdir()
    assert torch.load(folder / "last.pt", weights_only=True)["train_state"]["epoch"] == 2

    resumed_result, resumed = _parallel_runs._run_resumably(_train, (), checkpoints)
    assert resumed["resumed_after_epoch"] == 2
    assert resumed["test"] == pytest.approx(whole["test"], rel=1e-6)
    assert resumed["epochs_run"] == whole["epochs_run"] == 4
    pd.testing.assert_frame_equal(
        resumed_result.history.drop(columns="seconds"),
        whole_result.history.drop(columns="seconds"),
    )
    # the epochs before the interruption count in the run's seconds
    assert resumed["seconds"] > resumed_result.history["seconds"].iloc[2:].sum()


def test_a_changed_training_does_not_resume_another_ones_checkpoint(tmp_path, one_thread_restored):
    checkpoints = tmp_path / "in_progress" / "run"
    _parallel_runs._run_resumably(_train, (), checkpoints)
    _, row = _parallel_runs._run_resumably(_train, (3,), checkpoints)
    assert "resumed_after_epoch" not in row and row["epochs_run"] == 3
    assert len(list(checkpoints.iterdir())) == 2


def test_a_corrupt_checkpoint_is_dropped_with_a_warning_and_the_training_starts_afresh(
    tmp_path, capsys, one_thread_restored
):
    checkpoints = tmp_path / "in_progress" / "run"
    _, whole = _parallel_runs._run_resumably(_train, (), checkpoints)
    (folder,) = checkpoints.iterdir()
    last = folder / "last.pt"
    last.write_bytes(last.read_bytes()[: last.stat().st_size // 2])  # cut short
    _, again = _parallel_runs._run_resumably(_train, (), checkpoints)
    assert "is not a readable mimoe checkpoint" in capsys.readouterr().err
    assert "resumed_after_epoch" not in again
    assert again["test"] == pytest.approx(whole["test"], rel=1e-6)


def test_a_finished_run_leaves_no_checkpoints_behind(tmp_path):
    path = tmp_path / "run.json"
    leftover = _parallel_runs.in_progress_folder(path)
    (leftover / "abc").mkdir(parents=True)
    _parallel_runs.run_pending([(path, dict, ())], jobs=1, describe=str)
    assert json.loads(path.read_text())["finished"]
    assert "stopped" not in json.loads(path.read_text())
    assert not leftover.exists()


def test_a_run_that_raises_is_reported_and_the_others_still_finish(tmp_path, capsys):
    """Fault injection: one run raises in its worker (``int("x")``); the run after it is
    written, the failure is one line, its traceback lands beside its checkpoints, and the
    script's exit status says so."""
    failing, fine = tmp_path / "full_bace_0_a.json", tmp_path / "full_bace_0_b.json"
    runs = [(failing, int, ("x",)), (fine, dict, ())]
    failures = _parallel_runs.run_pending(runs, jobs=1, describe=str)
    assert json.loads(fine.read_text())["finished"] and not failing.exists()
    (line,) = failures
    assert line.startswith("full_bace_0_a failed: ValueError: invalid literal for int()")
    assert line.endswith("a rerun retries it)") and line in capsys.readouterr().out
    trace = (_parallel_runs.in_progress_folder(failing) / _parallel_runs.FAILED).read_text()
    assert "Traceback" in trace and "invalid literal for int()" in trace
    assert _parallel_runs.exit_status(failures) == 1
    assert f"1 run(s) failed:\n  {line}" in capsys.readouterr().err
    assert _parallel_runs.exit_status([]) == 0 and not capsys.readouterr().err


def test_a_worker_that_dies_is_reported_not_raised_and_a_rerun_retries_its_run(tmp_path):
    """Fault injection: a worker process exits abruptly in the middle of a run (as when the
    kernel kills it for memory); every run of the broken pool is reported, none is written,
    and the next invocation finishes them, clearing the failure record."""
    dying, queued = tmp_path / "full_bace_0_a.json", tmp_path / "full_bace_0_b.json"
    failures = _parallel_runs.run_pending(
        [(dying, os._exit, (9,)), (queued, dict, ())], jobs=1, describe=str
    )
    assert len(failures) == 2 and not dying.exists() and not queued.exists()
    assert failures[0].startswith("full_bace_0_a failed: a worker process died (killed, or out")
    record = _parallel_runs.in_progress_folder(dying) / _parallel_runs.FAILED
    assert "BrokenProcessPool" in record.read_text()
    assert not _parallel_runs.has_started(dying)  # queued for its retry, not under way
    assert _parallel_runs.run_pending([(queued, dict, ())], jobs=1, describe=str) == []
    assert json.loads(queued.read_text())["finished"]
    _parallel_runs._run_resumably(dict, (), record.parent)  # a retry starts clean
    assert not record.exists() and _parallel_runs.has_started(dying)


def test_a_run_resumed_after_a_stopped_invocation_says_when_it_was_stopped(tmp_path):
    path = tmp_path / "run.json"
    leftover = _parallel_runs.in_progress_folder(path)
    leftover.mkdir(parents=True)
    (leftover / "paused.json").write_text(json.dumps([[60.0, 180.0]]))
    _parallel_runs.run_pending([(path, dict, ())], jobs=1, describe=str)
    assert json.loads(path.read_text())["stopped"] == "1970-01-01 00:01-00:03 UTC"


def test_the_status_of_runs_under_way_reads_their_checkpoints(tmp_path, one_thread_restored):
    started, fresh = tmp_path / "full_bace_0_a.json", tmp_path / "full_bace_0_b.json"
    checkpoints = _parallel_runs.in_progress_folder(started)
    result, _ = _parallel_runs._run_resumably(_train, (), checkpoints)
    best = int(result.metrics["best_epoch"])
    (line, first, second) = _parallel_runs.status_lines([fresh, started]).splitlines()
    assert line.endswith("runs under way:")
    assert first == f"  full_bace_0_a: after epoch 4 (best {best})"
    assert second == "  full_bace_0_b: no epoch finished yet"


def test_the_status_passes_over_a_damaged_checkpoint(tmp_path):
    started = tmp_path / "full_bace_0_a.json"
    folder = _parallel_runs.in_progress_folder(started) / "0123"
    folder.mkdir(parents=True)
    torch.save({"train_state": {"epoch": 19, "best_epoch": 18}}, folder / "last.pt")
    (_, first) = _parallel_runs.status_lines([started]).splitlines()
    assert first == "  full_bace_0_a: no epoch finished yet"


def test_a_run_records_the_window_its_process_was_stopped_in(tmp_path):
    """Fault injection: a process watched by PauseWatch is stopped (SIGSTOP) for 3 s, then
    continued; the window lands in its run's pause file and in the result's ``stopped`` field."""
    checkpoints = tmp_path / "in_progress" / "run"
    checkpoints.mkdir(parents=True)
    (checkpoints / "paused.json").write_text(json.dumps([[1.0, 61.0]]))  # an earlier invocation
    child = subprocess.Popen(
        [sys.executable, "-c", WATCHED_PROCESS, str(BENCHMARKS), str(checkpoints / "paused.json")],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert child.stdout.readline().strip() == "watching"
    before = time.time()
    child.send_signal(signal.SIGSTOP)
    time.sleep(3)
    child.send_signal(signal.SIGCONT)
    after = time.time()
    assert child.wait(timeout=60) == 0
    earlier, (start, end) = _parallel_runs.pause_windows(checkpoints)
    assert earlier == [1.0, 61.0]
    assert before - 0.5 <= start <= before + 0.5 and after - 0.5 <= end <= after + 1.5
    assert _parallel_runs.stopped_field([[1.0, 61.0]]) == {"stopped": "1970-01-01 00:00-00:02 UTC"}


def test_a_process_that_runs_on_records_no_pause(tmp_path):
    watch = _parallel_runs.PauseWatch(tmp_path / "paused.json", gap=1.0, beat=0.05)
    watch.start()
    time.sleep(0.5)
    watch.stop()
    assert _parallel_runs.pause_windows(tmp_path) == [] and not any(tmp_path.iterdir())


def test_the_stopped_field_names_each_day_once():
    day = datetime.datetime(2026, 12, 6, 5, 46, 10, tzinfo=datetime.timezone.utc).timestamp()
    windows = [[day + 3000, day + 3900], [day, day + 600], [day + 65000, day + 66000]]
    windows.append([day + 86400, day + 86460])
    assert _parallel_runs.stopped_field(windows) == {
        "stopped": "2026-12-06 05:46-05:57, 06:36-06:52, 23:49-2026-12-07 00:07; "
        "2026-12-07 05:46-05:48 UTC"
    }
    assert _parallel_runs.stopped_field([]) == {}


WATCHED_PROCESS = """
import sys, time
sys.path.insert(0, sys.argv[1])
from pathlib import Path
import _parallel_runs
watch = _parallel_runs.PauseWatch(Path(sys.argv[2]), gap=1.0, beat=0.05)
watch.start()
print("watching", flush=True)
time.sleep(5)
watch.stop()
"""
