"""Resumable benchmark runs: one JSON file per finished run, several runs at once.

Shared by the benchmarks that train many independent models (``bench_gate_ablation.py``,
``bench_open_questions.py``). Each run is a picklable function and its arguments; its
result (a flat dict) is written to its own file as soon as it finishes, so an interrupted
benchmark loses only the runs in progress and a rerun skips the finished ones.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from multiprocessing import get_context
from pathlib import Path
from typing import Any

Run = tuple[Path, Callable[..., dict], tuple]


def run_pending(runs: Sequence[Run], jobs: int, describe: Callable[[dict], str]) -> None:
    """Run every run whose result file is missing, ``jobs`` at a time (spawned processes).

    ``describe`` turns a result into the line printed when it finishes.
    """
    pending = [run for run in runs if not run[0].exists()]
    print(f"{len(pending)} of {len(runs)} runs to do ({jobs} at a time)", flush=True)
    if not pending:
        return
    # spawn, not fork: the parent has imported torch, whose thread pools do not survive fork.
    with ProcessPoolExecutor(jobs, mp_context=get_context("spawn")) as pool:
        futures = {pool.submit(fn, *args): path for path, fn, args in pending}
        for future in as_completed(futures):
            result = future.result()
            path = futures[future]
            path.parent.mkdir(parents=True, exist_ok=True)
            path.with_suffix(".tmp").write_text(json.dumps(result))
            path.with_suffix(".tmp").replace(path)
            print(describe(result), flush=True)


def results(runs: Sequence[Run]) -> list[dict[str, Any]]:
    """The results of the runs that have finished, in the order of ``runs``."""
    return [json.loads(path.read_text()) for path, _, _ in runs if path.exists()]
