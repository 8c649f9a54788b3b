"""Compiled message passing (``mimoe train --compile``) against eager training.

For each dataset and backbone, two training runs of MI-MoE with the CLI defaults (sparse
k=2 of 5, width 128, batch 32, EMA) on split 0 (``scaffold_balanced``), built from the same
seed: one eager, one with its experts' message passing compiled (inductor,
``TrainSettings(compile=True)``). They live in one process and train epoch by epoch taking
turns (who goes first rotates, ``_timing.epochs_side_by_side``), so that both see the same
machine load:

    python benchmarks/bench_compile.py --out benchmarks/results/compile_cpu.md
    python benchmarks/bench_compile.py --runs "freesolv:schnet,painn" --repeats 2   # quick
    python benchmarks/bench_compile.py --device cuda --out benchmarks/results/compile_gpu.md

Reported per row: median seconds of a timed training epoch, eager and compiled, and their
ratio (< 1: compiled is faster); the compilation's cost, the compiled run's first epoch and
first validation pass minus the eager run's, each row compiling from nothing, with
inductor's on-disk cache of compiled kernels empty (a later run of the same model reuses it
and pays less; ``--keep-cache`` measures that); the epochs after which the compiled run is
ahead; and two checks that the compiled model computes what the eager one does: the largest
difference between their validation predictions before training (same weights), relative
to the spread of the predictions, and the relative difference of the training loss after
the last timed epoch (the runs drift apart only by rounding).
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

import numpy as np
import torch
from _parallel_runs import command_line, featurized, write_report
from _timing import epochs_side_by_side

from mimoe_core.data import make_split
from mimoe_core.forward import run_model
from mimoe_core.training import TrainSettings
from mimoe_core.training.trainer import TrainingRun

RUNS = "freesolv:schnet,painn,et,visnet,dimenet++;bace:schnet,painn"

COLUMNS = (
    "| dataset | backbone | eager, s per epoch | compiled, s per epoch | compiled / eager | "
    "compilation, s | ahead after epoch | prediction difference | loss difference |"
)


def prediction_difference(runs: dict[str, TrainingRun]) -> tuple[float, float]:
    """Largest |compiled - eager| validation prediction, over the spread of the eager ones,
    and how many seconds longer the compiled pass took (it compiles the no-grad graph)."""
    found, seconds = {}, {}
    for key, run in runs.items():
        run.model.eval()
        start = time.perf_counter()
        with torch.no_grad():
            rows = run_model(run.model, run.val_list, run.task, 32, run.device)
        seconds[key] = time.perf_counter() - start
        found[key] = np.asarray(rows["prediction"], dtype=float)
    spread = float(np.std(found["eager"])) or 1.0
    difference = float(np.abs(found["compiled"] - found["eager"]).max()) / spread
    return difference, seconds["compiled"] - seconds["eager"]


def compare(
    dataset: str, backbone: str, repeats: int, device: str, threads: int, keep_cache: bool
) -> dict:
    """One row: the two runs built, checked before training, then timed side by side.

    Runs in a fresh process per row (:func:`main`), so that each row compiles from nothing:
    with dynamic shapes, a backbone's graphs would otherwise serve its next dataset for
    free. Unless ``keep_cache``, inductor's on-disk kernel cache is a new, empty folder.
    """
    torch.set_num_threads(threads)
    if not keep_cache:  # read by inductor when it first compiles
        os.environ["TORCHINDUCTOR_CACHE_DIR"] = tempfile.mkdtemp(prefix="mimoe_inductor_")
    ds = featurized(dataset)
    split = make_split("scaffold_balanced", ds.smiles, seed=0)
    config = {"backbone": backbone}
    runs = {
        key: TrainingRun(
            ds, split, config, TrainSettings(seed=0, progress=False, device=device, compile=on)
        )
        for key, on in (("eager", False), ("compiled", True))
    }
    difference, no_grad_extra = prediction_difference(runs)
    times = epochs_side_by_side(runs, repeats)
    eager, compiled = times.median["eager"], times.median["compiled"]
    # Both graphs a training run compiles: the no-grad one (validation) and the training one.
    compilation = no_grad_extra + times.warmup["compiled"] - times.warmup["eager"]
    saved = eager - compiled
    loss_eager, loss_compiled = times.losses["eager"][-1], times.losses["compiled"][-1]
    return {
        "dataset": dataset,
        "backbone": backbone,
        "eager": eager,
        "compiled": compiled,
        "ratio": compiled / eager,
        "compilation": compilation,
        "ahead_after": int(np.ceil(compilation / saved)) + 1 if saved > 0 else None,
        "prediction_difference": difference,
        "loss_difference": abs(loss_compiled - loss_eager) / abs(loss_eager),
    }


def parse_runs(spec: str) -> list[tuple[str, str]]:
    """``"freesolv:schnet,painn;bace:schnet"`` -> [(dataset, backbone), ...] in that order."""
    pairs = []
    for part in filter(None, (p.strip() for p in spec.split(";"))):
        dataset, _, backbones = part.partition(":")
        if not backbones:
            raise SystemExit(f"--runs: {part!r} names no backbones (DATASET:BACKBONE,...)")
        pairs += [(dataset.strip(), b.strip()) for b in backbones.split(",") if b.strip()]
    return pairs


def table_row(row: dict) -> str:
    ahead = "never" if row["ahead_after"] is None else str(row["ahead_after"])
    return (
        f"| {row['dataset']} | {row['backbone']} | {row['eager']:.2f} | {row['compiled']:.2f} | "
        f"{row['ratio']:.2f} | {row['compilation']:.0f} | {ahead} | "
        f"{row['prediction_difference']:.1e} | {row['loss_difference']:.1e} |"
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", default=RUNS, help=f"DATASET:BACKBONE,...;... (default {RUNS})")
    parser.add_argument("--repeats", type=int, default=3, help="timed epochs per run")
    parser.add_argument(
        "--keep-cache",
        action="store_true",
        help="use inductor's usual on-disk cache (default: an empty one per row: first runs)",
    )
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--note", default="", help="a line on the machine's load, for the report")
    parser.add_argument("--out", type=Path, help="also write the report here (markdown)")
    args = parser.parse_args(argv)
    pairs = parse_runs(args.runs)
    where = (
        torch.cuda.get_device_name(0) if args.device == "cuda" else f"CPU, {args.threads} thread(s)"
    )
    lines = [
        "# Compiled message passing against eager training",
        "",
        f"- command: `{command_line(__file__, argv)}`",
        f"- date: {datetime.date.today()}",
        f"- machine: {platform.platform()}, {where}, torch {torch.__version__}",
        *([f"- load: {args.note}"] if args.note else []),
        "- MI-MoE with the CLI defaults (sparse k=2 of 5, width 128, batch 32, EMA) on split 0 "
        "(scaffold_balanced), an eager and a compiled run (inductor) from the same seed, "
        f"training in one process epoch by epoch taking turns: {args.repeats} timed epochs "
        "after one warm-up epoch each",
        "- s per epoch: median of the timed epochs; compilation: the compiled run's first "
        "epoch and first validation pass minus the eager run's; ahead after epoch: when the "
        "compiled run's total time drops below the eager run's; prediction difference: "
        "largest |compiled - eager| validation prediction before training (same weights) "
        "over the std of the predictions; loss difference: relative difference of the "
        "training loss after the last timed epoch",
        "- every row runs in a fresh process and compiles from nothing; inductor's on-disk "
        "kernel cache is "
        + ("the usual one (warm)" if args.keep_cache else "a new, empty folder per row"),
        "",
        COLUMNS,
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for dataset, backbone in pairs:
        options = (args.repeats, args.device, args.threads, args.keep_cache)
        # spawn, not fork: the parent has imported torch, whose thread pools do not survive it
        with ProcessPoolExecutor(1, get_context("spawn")) as fresh:
            row = fresh.submit(compare, dataset, backbone, *options).result()
        lines.append(table_row(row))
        print(lines[-1], flush=True)
    report = "\n".join(lines) + "\n"
    if args.out:
        write_report(args.out, report)
    else:
        print(report)


if __name__ == "__main__":
    main()
