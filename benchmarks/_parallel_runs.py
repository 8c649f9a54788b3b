"""Resumable benchmark runs: one JSON file per finished run, several runs at once.

Shared by the benchmarks that train many independent models (``bench_gate_ablation.py``,
``bench_open_questions.py``). Each run is a picklable function and its arguments; its
result (a flat dict) is written to its own file as soon as it finishes, so an interrupted
benchmark loses at most the epoch in progress of each unfinished run: every training checkpoints
each epoch into the work folder's ``in_progress/`` (not committed), a rerun resumes it there,
and skips the finished runs. Also here:
the featurized dataset each worker process reads once, one training on one scaffold split,
and the two table helpers their reports share.
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import json
import os
import platform
import shlex
import shutil
import sys
import threading
import time
import traceback
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from functools import cache
from multiprocessing import get_context
from pathlib import Path
from typing import Any

Run = tuple[Path, Callable[..., dict], tuple]

#: Where each benchmark keeps its finished runs by default, one folder per benchmark, in the
#: repository: the runs are committed with the report rendered from them, so a benchmark
#: that takes several sessions continues on any machine, and a report can be re-rendered.
RUNS = Path(__file__).resolve().parent / "results" / "runs"

#: The CLI defaults these benchmarks' committed runs were trained with: before the moving
#: average of the weights became one (``--ema 0.999``, 2026-12-02) and before the fused
#: optimizer kernel did (2026-12-06). Pinned so that a resumed benchmark trains its remaining
#: runs the way it trained its finished ones.
EARLIER_DEFAULTS = {"ema_decay": 0.0, "fused_optimizer": False}


def add_run_options(parser: argparse.ArgumentParser, work: Path, out: Path) -> None:
    """The options every run-many benchmark takes: splits, epochs, jobs, folders."""
    parser.add_argument("--splits", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=100)
    parser.add_argument("--jobs", type=int, default=2, help="trainings at once, 1 thread each")
    parser.add_argument(
        "--report-only", action="store_true", help="write the report from the finished runs"
    )
    parser.add_argument(
        "--work", type=Path, default=work, help=f"one JSON per finished run (default: {work})"
    )
    parser.add_argument("--out", type=Path, default=out)


#: Seconds between the lines that say how far the runs in flight are.
STATUS_EVERY = 900.0

#: Where the runs of a work folder keep their checkpoints until they finish.
IN_PROGRESS = "in_progress"

#: The file, in a failed run's checkpoint folder, that holds what it raised.
FAILED = "failed.txt"

#: The folder where the training of the run now in this worker process checkpoints every
#: epoch (set by :func:`run_pending` around each run; ``None`` outside one).
_checkpoints: Path | None = None


def in_progress_folder(result: Path) -> Path:
    """The checkpoints of the run whose result file is ``result``, until it is written."""
    return result.parent / IN_PROGRESS / result.stem


#: A gap this long (seconds) between two heartbeats of a run's process means that the
#: process did not run: it was stopped (SIGSTOP), e.g. while another benchmark had the machine.
PAUSE_GAP = 30.0

#: The file in a run's checkpoint folder that lists the windows its process was stopped in.
PAUSES = "paused.json"


class PauseWatch(threading.Thread):
    """Records in ``file`` the windows in which this process did not run.

    A daemon thread wakes every ``beat`` seconds; a wake-up that finds more than ``gap``
    seconds (monotonic clock, which runs on while a process is stopped) since the last one
    appends that window, as UTC epoch seconds ``[start, end]``, to the list in ``file``, so
    that windows of an earlier, interrupted invocation of the same run are kept.
    """

    def __init__(self, file: Path, gap: float = PAUSE_GAP, beat: float = 1.0) -> None:
        super().__init__(name="pause-watch", daemon=True)
        self.file, self.gap, self.beat = file, gap, beat
        self._done = threading.Event()

    def run(self) -> None:
        last, last_wall = time.monotonic(), time.time()
        while not self._done.wait(self.beat):
            now, wall = time.monotonic(), time.time()
            if now - last > self.gap:
                self._record(last_wall, wall)
            last, last_wall = now, wall

    def stop(self) -> None:
        """End the watch (it records nothing more)."""
        self._done.set()
        self.join()

    def _record(self, start: float, end: float) -> None:
        tmp = self.file.with_suffix(".tmp")
        tmp.write_text(json.dumps([*_windows_in(self.file), [start, end]]))
        tmp.replace(self.file)


def _windows_in(file: Path) -> list[list[float]]:
    """The pause windows a :class:`PauseWatch` wrote to ``file``; empty if it wrote none."""
    return json.loads(file.read_text()) if file.is_file() else []


def pause_windows(checkpoints: Path) -> list[list[float]]:
    """The windows (UTC epoch seconds) in which the run checkpointing into ``checkpoints``
    was stopped, as its :class:`PauseWatch` recorded them; empty if it never was."""
    return _windows_in(checkpoints / PAUSES)


def stopped_field(windows: Sequence[Sequence[float]]) -> dict[str, str]:
    """A result's ``stopped`` field for these pause windows: ``"2026-12-06 05:46-05:57,
    06:36-06:51 UTC"`` (the date once per day, minutes rounded outwards); ``{}`` for none."""
    if not windows:
        return {}

    def utc(seconds: float) -> datetime.datetime:
        return datetime.datetime.fromtimestamp(seconds, datetime.timezone.utc)

    days: dict[str, list[str]] = {}
    for start, end in sorted(windows):
        first, last = utc(start), utc(end + 59).replace(second=0, microsecond=0)
        day = first.strftime("%Y-%m-%d")
        until = last.strftime("%H:%M" if last.date() == first.date() else "%Y-%m-%d %H:%M")
        days.setdefault(day, []).append(f"{first:%H:%M}-{until}")
    return {
        "stopped": "; ".join(f"{day} {', '.join(spans)}" for day, spans in days.items()) + " UTC"
    }


def _run_resumably(fn: Callable[..., dict], args: tuple, checkpoints: Path) -> dict:
    """``fn(*args)`` with its trainings checkpointing into (and resuming from)
    ``checkpoints``, and the windows its process is stopped in recorded there
    (:class:`PauseWatch`)."""
    global _checkpoints
    _checkpoints = checkpoints
    checkpoints.mkdir(parents=True, exist_ok=True)  # marks the run as started
    (checkpoints / FAILED).unlink(missing_ok=True)  # an earlier try's
    watch = PauseWatch(checkpoints / PAUSES)
    watch.start()
    try:
        return fn(*args)
    finally:
        watch.stop()
        _checkpoints = None


def run_pending(
    runs: Sequence[Run], jobs: int, describe: Callable[[dict], str], fresh: bool = False
) -> list[str]:
    """Run every run whose result file is missing, ``jobs`` at a time (spawned processes).

    ``describe`` turns a result into the line printed when it finishes. ``fresh`` gives
    each run a process of its own (for measurements of peak memory). A run's trainings
    resume from the checkpoints an interrupted earlier invocation left
    (:func:`in_progress_folder`), which are deleted once its result file is written; a
    run whose process was stopped for a while gets a ``stopped`` field (:class:`PauseWatch`).

    A run that raises, or whose worker process dies (killed, out of memory), does not end
    the others: it is reported in one line, its traceback is written to
    ``in_progress/<run>/failed.txt`` beside its checkpoints, and a rerun retries it.

    Returns:
        One line per failed run (empty when every run finished); :func:`exit_status` turns
        them into the script's exit code.
    """
    pending = [run for run in runs if not run[0].exists()]
    print(f"{len(pending)} of {len(runs)} runs to do ({jobs} at a time)", flush=True)
    failures: list[str] = []
    if not pending:
        return failures
    # spawn, not fork: the parent has imported torch, whose thread pools do not survive fork.
    per_child = 1 if fresh else None
    with ProcessPoolExecutor(jobs, get_context("spawn"), max_tasks_per_child=per_child) as pool:
        futures = {
            pool.submit(_run_resumably, fn, args, in_progress_folder(path)): path
            for path, fn, args in pending
        }
        waiting = set(futures)
        while waiting:
            done, waiting = wait(waiting, timeout=STATUS_EVERY, return_when=FIRST_COMPLETED)
            if not done:  # hours-long runs: say how far the started ones are
                started = [futures[f] for f in waiting if has_started(futures[f])]
                print(status_lines(started), flush=True)
            for future in sorted(done, key=futures.get):
                path = futures[future]
                error = future.exception()
                if error is not None:
                    failures.append(_record_failure(path, error))
                    print(failures[-1], flush=True)
                    continue
                paused = pause_windows(in_progress_folder(path))
                result = {**future.result(), **stopped_field(paused), **provenance()}
                path.parent.mkdir(parents=True, exist_ok=True)
                path.with_suffix(".tmp").write_text(json.dumps(result))
                path.with_suffix(".tmp").replace(path)
                shutil.rmtree(in_progress_folder(path), ignore_errors=True)
                print(describe(result), flush=True)
    return failures


def has_started(result: Path) -> bool:
    """Whether the run of ``result`` is under way: its worker has made its checkpoint
    folder (:func:`_run_resumably`). A folder that still holds an earlier try's failure
    record belongs to a run that is queued for its retry, not started."""
    folder = in_progress_folder(result)
    return folder.is_dir() and not (folder / FAILED).exists()


def _record_failure(path: Path, error: BaseException) -> str:
    """Writes ``error`` (with the worker's traceback) beside the run's checkpoints and
    returns the line that reports it."""
    folder = in_progress_folder(path)
    folder.mkdir(parents=True, exist_ok=True)
    if isinstance(error, BrokenProcessPool):
        what = (
            "a worker process died (killed, or out of memory), which ends every run in "
            "flight or queued"
        )
    else:
        what = f"{type(error).__name__}: {error}"
    # The chain includes the worker's own traceback (its __cause__) when the run raised.
    (folder / FAILED).write_text("".join(traceback.format_exception(error)))
    return f"{path.stem} failed: {what} (traceback: {folder / FAILED}; a rerun retries it)"


def exit_status(failures: Sequence[str]) -> int:
    """The benchmark script's exit code: 0 when every run finished, else 1 after naming
    the failed runs on stderr."""
    if failures:
        print(f"{len(failures)} run(s) failed:", *failures, sep="\n  ", file=sys.stderr)
    return int(bool(failures))


def status_lines(started: Sequence[Path]) -> str:
    """One line per started, unfinished run (by its result file): the epochs its trainings
    have finished and their best, from their checkpoints."""
    from mimoe_core import run_folder

    now = datetime.datetime.now(datetime.timezone.utc).strftime("%H:%M UTC")
    lines = [f"{now}, runs under way:"]
    for path in sorted(started):
        states = []
        for last in sorted(in_progress_folder(path).glob(f"*/{run_folder.LAST}")):
            try:
                state = _train_state(last)
            except ValueError:  # damaged: the run decides what to do with it
                continue
            states.append(f"after epoch {state['epoch']} (best {state['best_epoch']})")
        lines.append(f"  {path.stem}: {'; '.join(states) or 'no epoch finished yet'}")
    return "\n".join(lines)


def run_all(
    runs: Sequence[Run], args: argparse.Namespace, datasets: Sequence[str],
    describe: Callable[[dict], str],
) -> list[str]:  # fmt: skip
    """Featurize each dataset here (the workers then read the warm cache), then run the
    pending runs (:func:`run_pending`, whose failures it returns); nothing with
    ``--report-only``."""
    if args.report_only:
        return []
    for name in datasets:
        featurized(name)
    return run_pending(runs, args.jobs, describe)


def trainings_at_once(args: argparse.Namespace) -> str:
    """What a report's header says of this invocation's trainings: how many ran at once, or,
    with ``--report-only``, that it trained none (its ``--jobs`` is only the default)."""
    if args.report_only:
        return "this command trained nothing: it rendered the finished runs"
    return f"{args.jobs} trainings at once, 1 thread each"


def command_line(script: str, argv: Sequence[str] | None) -> str:
    """How a benchmark was invoked, for its report: ``python benchmarks/<script> <args>``
    (``argv`` as given to ``main``, else the process's own arguments), quoted for a shell
    where an argument needs it."""
    args = argv if argv is not None else sys.argv[1:]
    return shlex.join(["python", f"benchmarks/{Path(script).name}", *args])


def report_header(title: str, script: str, argv: Sequence[str] | None) -> list[str]:
    """A markdown report's first lines: its title, then the command, date and machine."""
    return [
        f"# {title}",
        "",
        f"- command: `{command_line(script, argv)}`",
        f"- date: {datetime.date.today().isoformat()}",
        f"- machine: {provenance()['machine']}",
    ]


#: The fields :func:`provenance` adds to every result file.
PROVENANCE = ("finished", "machine")


def provenance() -> dict[str, str]:
    """When and where a run finished, stored in its result file: a benchmark that takes
    several sessions collects runs from several machines, whose speeds differ."""
    now = datetime.datetime.now(datetime.timezone.utc)
    return {
        "finished": now.strftime("%Y-%m-%d %H:%M UTC"),
        "machine": f"{platform.platform()}, {os.cpu_count()} CPU cores",
    }


#: Fields a run may carry, and what the report says of the runs that do.
MARKED_RUNS = {
    "stopped": "were stopped (SIGSTOP) for part of their wall time while another benchmark "
    "had the machine alone: their seconds overstate their compute, and their `stopped` field "
    "says when (the run's own record of the windows its process did not run in; for pauses "
    "before that record existed, up to 2026-12-06, a note by hand)",
    "resumed_after_epoch": "were interrupted (a session ended, or the benchmark was stopped "
    "and started again) and resumed from the checkpoint of their last finished epoch, which "
    "continues the same training; their seconds add the epochs before the interruption to "
    "those after it, and their `resumed_after_epoch` field says where they resumed",
    "compiled": "compiled their experts' message passing (`--compile`, torch.compile): the "
    "same model, its numbers equal to rounding (`benchmarks/results/compile_cpu.md`), trained "
    "faster; their `compiled` field says so, and their seconds compare with the others' only "
    "as such",
    "fused_optimizer": "stepped AdamW with torch's fused kernel (the default since "
    "2026-12-06; the others used its per-tensor loop, as did the earlier epochs of a run "
    "resumed across that change): the same update, its rounding differs, so they differ as "
    "runs of another seed would; their `fused_optimizer` field says so",
    "gpu": "trained on a GPU (`--device cuda`; their `gpu` field names it): the same model and "
    "settings, but not the same numbers as on the CPU (CUDA draws its own dropout and gate "
    "noise and sums in another order), so they differ as runs of another seed would; their "
    "seconds compare only with each other",
}


def origin_notes(rows: Sequence[dict]) -> list[str]:
    """Report lines on where the runs come from: how many were rebuilt from an earlier
    committed report (their ``restored_from`` field names it), how many were stopped for a
    while (a ``stopped`` field: it says when), how many were trained with
    compiled message passing (a ``compiled`` field), and on how many machines
    and between which dates the others finished (their :func:`provenance`), since wall
    times compare only within one machine. Empty when the runs say none of these."""
    lines = []
    restored = [row["restored_from"] for row in rows if row.get("restored_from")]
    if restored:
        sources = sorted(set(restored))
        lines.append(
            f"- {len(restored)} of these runs were rebuilt from the committed report they were "
            f"first rendered into ({'; '.join(sources)}): their run files had been kept outside "
            "the repository, on a machine since recycled; their values are as printed there (4 "
            "decimals where the report rounded them)"
        )
    for field, what in MARKED_RUNS.items():
        marked = [row for row in rows if row.get(field)]
        if marked:
            lines.append(f"- {len(marked)} of these runs {what}")
    stamped = [row for row in rows if row.get("finished")]
    if stamped:
        machines = sorted({row["machine"] for row in stamped})
        dates = sorted(row["finished"] for row in stamped)
        lines.append(
            f"- {len(stamped)} of these runs record where they ran: {len(machines)} "
            f"machine{'s' if len(machines) > 1 else ''} ({'; '.join(machines)}), finished "
            f"{dates[0]} to {dates[-1]}; machines of the same description can differ in speed, "
            "so wall times compare only between runs of one machine and day"
        )
    return lines


def write_report(path: Path, text: str) -> None:
    """Write a benchmark's markdown report (making its folder) and print it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    print(text)


def paired_differences(
    runs, column: str, baseline: str, others: Sequence[str], value: str, counted: str
) -> list[str]:
    """Table rows ``| dataset | variant | difference | on how many splits |``, paired by split.

    The difference is ``value`` of each variant of ``column`` minus that of ``baseline`` on
    the same split; the last cell counts the splits where it is ``counted`` (``"negative"``
    or ``"positive"``).
    """
    lines = []
    for dataset, part in runs.groupby("dataset", sort=False):
        table = part.pivot(index="split", columns=column, values=value)
        for variant in others:
            if baseline not in table or variant not in table:
                continue
            diff = (table[variant] - table[baseline]).dropna()
            better = int(((diff < 0) if counted == "negative" else (diff > 0)).sum())
            lines.append(f"| {dataset} | {variant} | {mean_std(diff)} | {better} of {len(diff)} |")
    return lines


def results(runs: Sequence[Run]) -> list[dict[str, Any]]:
    """The results of the runs that have finished, in the order of ``runs``."""
    return [json.loads(path.read_text()) for path, _, _ in runs if path.exists()]


@cache
def featurized(
    name: str, atom_attributes: bool = False, conformers: int = 1, limit: int | None = None
):
    """A bundled dataset, featurized once per process (from the warm cache in workers);
    ``conformers`` M > 1 keeps M conformers per molecule (an ensemble); ``limit``: that
    many molecules drawn at random (seed 0)."""
    from mimoe_core.conformers import ConformerSettings
    from mimoe_core.data import load_dataset
    from mimoe_core.featurization import featurize

    settings = ConformerSettings(keep_conformers=conformers)
    table = load_dataset(name)
    if limit is not None:
        table = table.sample(limit, seed=0)
    return featurize(table, settings, progress=False, atom_attributes=atom_attributes)


def train_on_split(
    name: str,
    split_seed: int,
    config: dict,
    metric: str = "rmse",
    conformers: int = 1,
    limit: int | None = None,
    recipe: dict = EARLIER_DEFAULTS,
    **settings: Any,
) -> tuple[Any, dict[str, Any]]:
    """Train ``config`` on one ``scaffold_balanced`` split (split seed = run seed), 1 thread.

    ``settings`` are :class:`~mimoe_core.training.TrainSettings` fields over ``recipe``
    over the CLI defaults (``recipe``: :data:`EARLIER_DEFAULTS` unless given, ``{}`` for
    today's defaults); a config with ``atom_attributes`` gets data featurized with them,
    ``conformers`` M > 1 data with M conformers per molecule, and ``limit`` a random subset
    (:func:`featurized`).
    Returns the :class:`~mimoe_core.training.TrainResult` and the row every benchmark
    records: dataset, split, test and val ``metric``, best epoch, epochs run and seconds.
    """
    import torch

    from mimoe_core.data import make_split
    from mimoe_core.training import TrainSettings, train

    torch.set_num_threads(1)
    ds = featurized(name, bool(config.get("atom_attributes")), conformers, limit)
    split = make_split("scaffold_balanced", ds.smiles, seed=split_seed)
    options = {"seed": split_seed, "progress": False, "device": "cpu", **recipe}
    options.update(settings)
    folder = _checkpoint_folder(name, split_seed, config, conformers, limit, options)
    epochs_before, seconds_before = _progress_in(folder)
    start = time.perf_counter()
    result = train(
        ds, split, config, TrainSettings(**options), out_dir=folder, resume=folder is not None
    )
    return result, {
        "dataset": name,
        "split": split_seed,
        "test": float(result.metrics["test"][metric]),
        "val": float(result.metrics["val"][metric]),
        "best_epoch": int(result.metrics["best_epoch"]),
        "epochs_run": int(result.metrics["epochs_run"]),
        "seconds": time.perf_counter() - start + seconds_before,
        **({"compiled": True} if options.get("compile") else {}),
        **({"fused_optimizer": True} if result.metrics["settings"]["fused_optimizer"] else {}),
        **({"resumed_after_epoch": epochs_before} if epochs_before else {}),
        **gpu_field(options["device"]),
    }


def gpu_field(device: str) -> dict[str, str]:
    """``{"gpu": its name}`` for a run trained on a CUDA device; nothing on the CPU."""
    import torch

    if not str(device).startswith("cuda"):
        return {}
    return {"gpu": torch.cuda.get_device_name(torch.device(device))}


def _checkpoint_folder(*identity: Any) -> Path | None:
    """Where this training checkpoints within its run (``None`` outside :func:`run_pending`):
    one folder per set of arguments, so that a run that trains twice resumes each training
    from its own checkpoint, and a run whose arguments changed starts afresh."""
    if _checkpoints is None:
        return None
    key = json.dumps(identity, sort_keys=True, default=str)
    return _checkpoints / hashlib.sha256(key.encode()).hexdigest()[:16]


def _progress_in(folder: Path | None) -> tuple[int, float]:
    """Epochs finished and their seconds (history) in ``folder``'s ``last.pt``; 0s if none.
    A checkpoint that cannot be read is deleted with a warning: the training starts afresh
    instead of failing on every rerun."""
    from mimoe_core import run_folder

    if folder is None or not (folder / run_folder.LAST).is_file():
        return 0, 0.0
    try:
        state = _train_state(folder / run_folder.LAST)
    except ValueError as err:
        print(f"warning: {err}; its training starts afresh", file=sys.stderr, flush=True)
        shutil.rmtree(folder)
        return 0, 0.0
    return int(state["epoch"]), float(sum(row["seconds"] for row in state["history"]))


def _train_state(last: Path) -> dict[str, Any]:
    """The ``train_state`` of a ``last.pt`` (epochs finished, best epoch, history).

    Raises:
        ValueError: the file is not a readable checkpoint with a training state.
    """
    from mimoe_core.trained import read_payload

    payload = read_payload(last)
    if "train_state" not in payload:
        raise ValueError(f"{last} holds no training state")
    return payload["train_state"]


def mean_std(values) -> str:
    """``mean ± sample std (ddof=1)`` of a pandas Series; the mean alone for one value."""
    if len(values) < 2:
        return f"{values.mean():.3f}"
    return f"{values.mean():.3f} ± {values.std(ddof=1):.3f}"


def markdown_rows(frame) -> list[str]:
    """A DataFrame as markdown table lines, floats to 4 decimals; a run's
    :func:`provenance` columns come last."""
    last = [c for c in PROVENANCE if c in frame.columns]
    frame = frame[[c for c in frame.columns if c not in last] + last]
    cells = (
        " | ".join(f"{v:.4f}" if isinstance(v, float) else str(v) for v in row)
        for row in frame.itertuples(index=False)
    )
    return [
        "| " + " | ".join(frame.columns) + " |",
        "|" + "---|" * len(frame.columns),
        *(f"| {line} |" for line in cells),
    ]
