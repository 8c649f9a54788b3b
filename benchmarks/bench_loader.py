"""What assembling the training batches costs, and what loader worker processes change,
measured side by side on this machine.

1. Batch assembly alone (``mimoe_core.forward.assemble_batch`` over conformer views, what a
   training step does before its forward pass) on the first ``--molecules`` training
   molecules of Tox21, at each batch size of ``--batches``, one thread: molecules/s and
   microseconds per molecule. A loop that assembles in line spends this at every step, and
   on a GPU the GPU waits meanwhile: at issue 17's GPU target of 10,000 molecules/s a
   molecule has 100 us for the whole step.
2. Training, ``mimoe train`` on the same molecules (MI-MoE(SchNet), CLI defaults, 2
   epochs, one thread), in line against ``--loader-workers 1`` (a worker process on the
   second core assembles the batches ahead), at each batch size; the cases alternate over
   ``--rounds`` rounds, each in its own process: molecules/s (``metrics.json``), the ratio
   paired within each round, and the peak proportional set size of the process tree (PSS:
   a page the forked worker shares with the trainer counts half to each).

    python benchmarks/bench_loader.py --batches 32,256 --rounds 3

It featurizes the Tox21 rows it needs first (from the feature cache when warm).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
from _parallel_runs import report_header, write_report
from bench_scale import measure_together

ROOT = Path(__file__).resolve().parents[1]
DATASET = "tox21"
#: case name: loader worker processes
CASES = {"in line (default)": 0, "1 loader worker": 1}


def _rows(molecules: int) -> int:
    """Dataset rows whose random split (80 % training) holds ``molecules`` training ones."""
    return math.ceil(molecules / 0.8) + 50


def assembly_rates(molecules: int, batches: list[int], repeats: int = 3) -> dict[int, float]:
    """Molecules/s of batch assembly alone at each batch size (best of ``repeats`` passes)."""
    from mimoe_core.conformer_views import conformer_view
    from mimoe_core.data import load_dataset, make_split
    from mimoe_core.featurization import featurize
    from mimoe_core.forward import assemble_batch

    torch.set_num_threads(1)
    data = featurize(load_dataset(DATASET, limit=_rows(molecules)), progress=False, n_jobs=1)
    split = make_split("random", data.smiles, seed=0)
    train = [data.data_list[i] for i in split.train[:molecules]]
    rates = {}
    for batch in batches:
        best = 0.0
        for _ in range(repeats):
            start, done = time.perf_counter(), 0
            for first in range(0, len(train) - batch + 1, batch):
                assemble_batch([conformer_view(d, 0) for d in train[first : first + batch]],
                               torch.float32)  # fmt: skip
                done += batch
            best = max(best, done / (time.perf_counter() - start))
        rates[batch] = best
    return rates


def train_case(workers: int, batch: int, args: argparse.Namespace, work: Path) -> dict:
    """One ``mimoe train`` run: its training molecules/s and the tree's peak PSS (bytes)."""
    out = work / f"run_w{workers}_b{batch}"
    command = [sys.executable, "-m", "mimoe_core", "train", "--dataset", DATASET,
               "--limit", str(_rows(args.molecules)), "--split", "random", "--epochs", "2",
               "--patience", "100", "--batch-size", str(batch), "--device", "cpu", "--quiet",
               "--loader-workers", str(workers), "--out", str(out)]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    found = measure_together([command], env, [work / f"{out.name}.log"], pss=True)
    timing = json.loads((out / "metrics.json").read_text())["timing"]
    return {"per_second": timing["train_molecules_per_second"], "pss": found["peak_rss"]}


def render(assembly: dict[int, float], found: dict, args: argparse.Namespace, argv) -> str:
    """The report: command, machine, date, the assembly rates and the training table."""
    lines = report_header(
        "Assembling the training batches: in line against a loader worker", "bench_loader.py",
        argv,
    )  # fmt: skip
    lines += [
        f"- Tox21's first {_rows(args.molecules)} rows, random split (seed 0): assembly reads "
        f"the first {args.molecules} training molecules, training the whole training part "
        "(about as many); one thread per process",
        "",
        "Batch assembly alone (conformer views and `assemble_batch`, best of 3 passes):",
        "",
        "| batch | molecules/s | us per molecule | share of a molecule's 100 us at 10,000/s |",
        "|---|---|---|---|",
    ]
    for batch, rate in assembly.items():
        us = 1e6 / rate
        lines.append(f"| {batch} | {rate:,.0f} | {us:.1f} | {us / 100:.0%} |")
    lines += [
        "",
        f"Training, `mimoe train`, 2 epochs (MI-MoE(SchNet), CLI defaults), median of "
        f"{args.rounds} rounds with the cases alternating; molecules/s from `metrics.json`; "
        "peak PSS of the process tree (the worker included), sampled every 0.1 s:",
        "",
        "| batch | case | molecules/s | per round | peak PSS (MiB) |",
        "|---|---|---|---|---|",
    ]
    for batch in args.batches:
        for case in CASES:
            runs = found[(batch, case)]
            rates = [r["per_second"] for r in runs]
            pss = statistics.median(r["pss"] for r in runs) / 2**20
            per_round = ", ".join(f"{r:.0f}" for r in rates)
            lines.append(
                f"| {batch} | {case} | {statistics.median(rates):.1f} | {per_round} | {pss:.0f} |"
            )
    lines += ["", "| batch | 1 loader worker / in line, paired | per round |", "|---|---|---|"]
    for batch in args.batches:
        inline, ahead = (found[(batch, case)] for case in CASES)
        ratios = [a["per_second"] / b["per_second"] for a, b in zip(ahead, inline, strict=True)]
        per_round = ", ".join(f"{r:.2f}" for r in ratios)
        lines.append(f"| {batch} | {statistics.median(ratios):.2f}x | {per_round} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--molecules", type=int, default=1024)
    parser.add_argument("--batches", default="32,256", help="batch sizes, comma-separated")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/loader_cpu.md")
    args = parser.parse_args(argv)
    args.batches = [int(b) for b in args.batches.split(",") if b.strip()]
    sizes = sorted(b for b in {*args.batches, 1024} if b <= args.molecules)
    assembly = assembly_rates(args.molecules, sizes)
    print({b: round(r) for b, r in assembly.items()}, flush=True)
    found: dict = {(batch, case): [] for batch in args.batches for case in CASES}
    with tempfile.TemporaryDirectory() as scratch:
        for round_ in range(args.rounds):
            for batch in args.batches:
                cases = list(CASES) if round_ % 2 == 0 else list(reversed(CASES))
                for case in cases:
                    run = train_case(CASES[case], batch, args, Path(scratch))
                    found[(batch, case)].append(run)
                    print(round_, batch, case, run, flush=True)
    write_report(args.out, render(assembly, found, args, argv))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
