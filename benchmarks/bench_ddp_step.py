"""What a training step costs on 2 gloo ranks against one process, and what each per-step
choice gains, measured side by side on this machine.

Every case trains MI-MoE(SchNet) with the CLI defaults (hidden 128, K = 5, k = 2, EMA, fused
AdamW, buffers synced once) on the first ``--molecules`` training molecules of Tox21 (random
split, seed 0): one warm-up epoch, then one timed epoch; one thread per process. The cases,
at each global batch of ``--batches``:

- 1 process;
- 2 independent 1-process trainings at once, no communication at all: what two processes
  reach on this machine, the ceiling for 2 ranks;
- 2 gloo ranks, the default;
- 2 gloo ranks with each global batch dealt to the ranks in snake order (0, 1, 1, 0, ...,
  largest molecule first), the deal until 2026-12-07, instead of
  ``distributed.deal_by_size``.

Cases alternate in ``--rounds`` rounds, so that a slow spell of the machine hits all of them;
each row is the median of its rounds, ratios are against the 1-process row of the same
batch, and a second table gives the ratios paired within each round. Last, how evenly each
deal splits the atoms of the epoch's global batches on 2, 4 and 8 ranks (the largest rank
total over the mean: every step waits for that rank). Run with nothing else on the cores
(about 12 minutes here with 3 rounds):

    python benchmarks/bench_ddp_step.py --batches 32,64 --rounds 3

Earlier versions of this script also timed the per-tensor AdamW loop, buffers broadcast
before every forward pass and a run without the gradient all-reduce; their reports
(``benchmarks/results/ddp_step_cpu.md`` and others) keep those rows.

It featurizes the Tox21 rows it needs first (from the feature cache when warm; about a
minute on 2 cores when cold), then starts every case as its own process (``torchrun`` for
the ranks).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

import numpy as np
from _parallel_runs import command_line

ROOT = Path(__file__).resolve().parents[1]
DATASET = "tox21"
ONE = "1 process"
CEILING = "2 independent processes at once (no communication: the ceiling)"
NOW = "2 gloo ranks (default)"
SNAKE = "2 gloo ranks, snake-order deal (before)"
#: case name: processes (-2: two independent 1-process trainings at once)
CASES = {ONE: 1, CEILING: -2, NOW: 2, SNAKE: 2}
#: Ratios taken within each round (the cases of a round ran minutes apart, not hours).
PAIRED = {
    "2 ranks / 1 process (issue 17's target: >= 1.6)": (NOW, ONE),
    "2 ranks: default / snake-order deal": (NOW, SNAKE),
    "ceiling / 1 process": (CEILING, ONE),
}


def snake_deal(sizes, world_size: int) -> np.ndarray:
    """The deal until 2026-12-07: largest first, to ranks 0, 1, ..., W-1, W-1, ..., 0."""
    sizes = np.asarray(sizes)
    turn = np.arange(len(sizes)) % (2 * world_size)
    owner = np.empty(len(sizes), dtype=np.int64)
    owner[np.argsort(-sizes, kind="stable")] = np.where(
        turn < world_size, turn, 2 * world_size - 1 - turn
    )
    return owner


def case_main(args: argparse.Namespace) -> None:
    """One case in this process (one rank of it under torchrun): print its molecules/s."""
    import torch

    from mimoe_core.data import load_dataset, make_split
    from mimoe_core.featurization import featurize
    from mimoe_core.training import TrainSettings, distributed
    from mimoe_core.training.trainer import TrainingRun

    torch.set_num_threads(1)
    context = distributed.init_from_env("cpu") if "RANK" in os.environ else distributed.current()
    if args.case == SNAKE:
        distributed.deal_by_size = snake_deal
    data = featurize(load_dataset(DATASET, limit=_rows(args.molecules)), progress=False, n_jobs=1)
    split = make_split("random", data.smiles, seed=0)
    settings = TrainSettings(seed=0, progress=False, batch_size=args.batch, device="cpu")
    run = TrainingRun(data, split, {"backbone": "schnet"}, settings, context=context)
    run.train_list = run.train_list[: args.molecules]
    run.train_epoch(0)
    start = time.perf_counter()
    run.train_epoch(1)
    seconds = time.perf_counter() - start
    if context.is_main:
        print("RESULT " + json.dumps({"per_second": len(run.train_list) / seconds}), flush=True)
    # Free DDP before leaving the group, as `mimoe train` does: its reducer holds the group,
    # whose destructor, run from the reducer's, joins gloo's threads holding the GIL, and a
    # thread still releasing a collective waits for the GIL (4 of 10 runs hung here).
    del run
    if context.distributed:
        distributed.shutdown()


def _rows(molecules: int) -> int:
    """Dataset rows whose random split (80 % training) holds ``molecules`` training ones."""
    return math.ceil(molecules / 0.8) + 50


def _command(case: str, batch: int, molecules: int) -> list[str]:
    processes = CASES[case]
    launcher = [sys.executable]
    if processes == 2:
        launcher += ["-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2"]
    return [
        *launcher,
        str(Path(__file__).resolve()),
        "--case",
        case,
        "--batch",
        str(batch),
        "--molecules",
        str(molecules),
    ]


def _rate(output: str, command: list[str]) -> float:
    for line in output.splitlines():
        if line.startswith("RESULT "):
            return float(json.loads(line[len("RESULT ") :])["per_second"])
    raise RuntimeError(f"{' '.join(command)} printed no result:\n{output[-3000:]}")


def measure(case: str, batch: int, molecules: int) -> float:
    """Molecules per second of one case (summed over the two independent processes)."""
    command = _command(case, batch, molecules)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    copies = 2 if CASES[case] == -2 else 1
    procs = [
        subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env
        )
        for _ in range(copies)
    ]
    outputs = [proc.communicate()[0] for proc in procs]
    for proc, output in zip(procs, outputs, strict=True):
        if proc.returncode != 0:
            raise RuntimeError(f"{' '.join(command)} failed ({proc.returncode}):\n{output[-3000:]}")
    return sum(_rate(output, command) for output in outputs)


def deal_balance(sizes: np.ndarray, batches: list[int], molecules: int) -> list[str]:
    """Table rows: each deal's largest rank total of atoms over the mean, averaged over the
    global batches of one epoch (random order, seed 0) of ``molecules`` molecules."""
    from mimoe_core.training import distributed

    order = np.random.default_rng(0).permutation(molecules)
    rows = []
    for batch in batches:
        for world in (2, 4, 8):
            if batch < world:
                continue
            excess = {}
            for name, deal in (("snake", snake_deal), ("by size", distributed.deal_by_size)):
                found = []
                for start in range(0, molecules - batch + 1, batch):
                    part = sizes[order[start : start + batch]]
                    totals = np.bincount(deal(part, world), weights=part, minlength=world)
                    found.append(totals.max() / totals.mean() - 1)
                excess[name] = 100 * float(np.mean(found))
            rows.append(
                f"| {batch} | {world} | {excess['snake']:.2f} % | {excess['by size']:.2f} % |"
            )
    return rows


def render(
    rates: dict[tuple[int, str], list[float]],
    balance_rows: list[str],
    args: argparse.Namespace,
    command: str,
) -> str:
    """The report: command, machine, date, and one table row per case and batch."""
    import torch

    lines = [
        "# A training step on 2 gloo ranks against one process, choice by choice",
        "",
        f"- command: `{command}`",
        f"- date: {date.today().isoformat()}",
        f"- machine: {platform.platform()}, {os.cpu_count()} CPU cores, torch "
        f"{torch.__version__}, one thread per process",
        f"- MI-MoE(SchNet), CLI defaults; the first {args.molecules} training molecules of "
        f"Tox21 (random split, seed 0); one warm-up epoch, then one timed epoch; "
        f"median of {args.rounds} rounds, the cases alternating within each round",
        "- molecules/s: of the whole run (both ranks together; both independent processes "
        "summed); the ratio is over the 1-process row of the same batch",
        "",
        "| global batch | case | molecules/s | vs 1 process | rounds |",
        "|---|---|---|---|---|",
    ]
    for batch in args.batches:
        one = statistics.median(rates[(batch, ONE)])
        for case in CASES:
            found = rates[(batch, case)]
            rate = statistics.median(found)
            spread = ", ".join(f"{r:.0f}" for r in found)
            lines.append(f"| {batch} | {case} | {rate:.1f} | {rate / one:.2f}x | {spread} |")
    lines += [
        "",
        "Paired within rounds: the ratio in each round, and their median.",
        "",
        "| global batch | ratio | median | per round |",
        "|---|---|---|---|",
    ]
    for batch in args.batches:
        for label, (top, bottom) in PAIRED.items():
            ratios = [
                a / b for a, b in zip(rates[(batch, top)], rates[(batch, bottom)], strict=True)
            ]
            per_round = ", ".join(f"{r:.2f}" for r in ratios)
            lines.append(f"| {batch} | {label} | {statistics.median(ratios):.2f}x | {per_round} |")
    lines += [
        "",
        "How evenly each deal splits the atoms: the largest rank total over the mean, averaged "
        "over the global batches of one epoch of these molecules (every step waits for the "
        "largest).",
        "",
        "| global batch | ranks | snake order | by size (default) |",
        "|---|---|---|---|",
        *balance_rows,
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--case", choices=CASES, help=argparse.SUPPRESS)
    parser.add_argument("--batch", type=int, default=32, help=argparse.SUPPRESS)
    parser.add_argument("--molecules", type=int, default=1024)
    parser.add_argument("--batches", default="32,64", help="global batch sizes, comma-separated")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/ddp_step_cpu.md")
    args = parser.parse_args(argv)
    if args.case:
        case_main(args)
        return 0
    args.batches = [int(b) for b in args.batches.split(",") if b.strip()]
    from mimoe_core.data import load_dataset, make_split
    from mimoe_core.featurization import featurize
    from mimoe_core.training.parts import molecule_sizes, subset

    data = featurize(load_dataset(DATASET, limit=_rows(args.molecules)))  # the cases' cache
    train = subset(data, make_split("random", data.smiles, seed=0).train)
    atoms, _ = molecule_sizes(train[: args.molecules])
    balance_rows = deal_balance(atoms, args.batches, len(atoms))
    rates: dict[tuple[int, str], list[float]] = {}
    for round_ in range(args.rounds):
        for batch in args.batches:
            for case in CASES:
                rate = measure(case, batch, args.molecules)
                rates.setdefault((batch, case), []).append(rate)
                print(
                    f"round {round_ + 1}, batch {batch}: {case}: {rate:.1f} molecules/s", flush=True
                )
    text = render(rates, balance_rows, args, command_line(__file__, argv))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
