"""What a training step costs on 2 gloo ranks against one process, and what each per-step
choice adds, measured side by side on this machine.

Every case trains MI-MoE(SchNet) with the CLI defaults (hidden 128, K = 5, k = 2, EMA) on the
first ``--molecules`` training molecules of Tox21 (random split, seed 0): one warm-up epoch,
then one timed epoch; one thread per process. The cases, at each global batch of
``--batches``:

- 1 process, the optimizer's per-tensor loop (``--no-fused-optimizer``; the default until
  2026-12-06), and 1 process with the fused kernel (the default now);
- 2 independent 1-process trainings at once, no communication at all: what two processes
  reach on this machine, the ceiling for 2 ranks;
- 2 gloo ranks with DDP's defaults (buffers broadcast before every forward) and the
  per-tensor loop, as this project trained until 2026-12-06;
- 2 gloo ranks, fused, buffers synced once (the default now,
  ``distributed.FORWARD_SYNC_BUFFERS``);
- 2 gloo ranks as the default but without the gradient all-reduce (DDP's
  ``require_backward_grad_sync`` off: not a valid training, the ranks' weights drift apart).
  Until 2026-12-07 it bounded what the communication costs; since the balancing loss is
  taken over the global batch its all-reduce stays in, and ranks whose weights differ wait
  for each other there, so this row can run slower than the default.

Cases alternate in ``--rounds`` rounds, so that a slow spell of the machine hits all of them;
each row is the median of its rounds, ratios are against the 1-process rows of the same
batch, and a second table gives the main ratios paired within each round. Last, one AdamW
step alone, loop against fused kernel. Run with nothing else on the cores (17 minutes here
with the defaults below and 5 rounds):

    python benchmarks/bench_ddp_step.py --batches 32,64 --rounds 5

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

from _parallel_runs import command_line

ROOT = Path(__file__).resolve().parents[1]
DATASET = "tox21"
LOOP, FUSED = "1 process, per-tensor loop", "1 process, fused (default)"
CEILING = "2 independent processes at once, fused (no communication: the ceiling)"
BEFORE = "2 gloo ranks, per-tensor loop, buffers every forward (before)"
NOW = "2 gloo ranks, fused, buffers once (default)"
BOUND = "2 gloo ranks, default without the gradient all-reduce (bound)"
#: case name: (processes, fused optimizer, buffers broadcast every forward, gradient sync);
#: -2 processes: two independent 1-process trainings at once.
CASES = {
    LOOP: (1, False, True, True),
    FUSED: (1, True, True, True),
    CEILING: (-2, True, True, True),
    BEFORE: (2, False, True, True),
    NOW: (2, True, False, True),
    BOUND: (2, True, False, False),
}
#: Ratios taken within each round (the cases of a round ran minutes apart, not hours).
PAIRED = {
    "1 process: fused / loop": (FUSED, LOOP),
    "2 ranks: default / before": (NOW, BEFORE),
    "2 ranks, default / 1 process, fused (issue 17's target: >= 1.6)": (NOW, FUSED),
    "2 ranks, default / 1 process, loop": (NOW, LOOP),
    "2 ranks, before / 1 process, loop (as measured until 2026-12-06)": (BEFORE, LOOP),
    "ceiling / 1 process, fused": (CEILING, FUSED),
}


def case_main(args: argparse.Namespace) -> None:
    """One case in this process (one rank of it under torchrun): print its molecules/s."""
    import torch

    from mimoe_core.data import load_dataset, make_split
    from mimoe_core.featurization import featurize
    from mimoe_core.training import TrainSettings, distributed
    from mimoe_core.training.trainer import TrainingRun

    _, fused, every_forward, grad_sync = CASES[args.case]
    torch.set_num_threads(1)
    context = distributed.init_from_env("cpu") if "RANK" in os.environ else distributed.current()
    distributed.FORWARD_SYNC_BUFFERS = every_forward
    data = featurize(load_dataset(DATASET, limit=_rows(args.molecules)), progress=False, n_jobs=1)
    split = make_split("random", data.smiles, seed=0)
    settings = TrainSettings(
        seed=0, progress=False, batch_size=args.batch, fused_optimizer=fused, device="cpu"
    )
    run = TrainingRun(data, split, {"backbone": "schnet"}, settings, context=context)
    run.train_list = run.train_list[: args.molecules]
    if not grad_sync:
        run.step_forward.require_backward_grad_sync = False
    run.train_epoch(0)
    start = time.perf_counter()
    run.train_epoch(1)
    seconds = time.perf_counter() - start
    if context.is_main:
        print("RESULT " + json.dumps({"per_second": len(run.train_list) / seconds}), flush=True)
    if context.distributed:
        distributed.shutdown()


def _rows(molecules: int) -> int:
    """Dataset rows whose random split (80 % training) holds ``molecules`` training ones."""
    return math.ceil(molecules / 0.8) + 50


def optimizer_step_ms(fused: bool, repeats: int = 200) -> float:
    """Median milliseconds of one AdamW step over MI-MoE(SchNet)'s parameters (CLI
    defaults) with random gradients, one thread."""
    import torch

    from mimoe_core.models import create_model
    from mimoe_core.training.trainer import fused_option

    torch.set_num_threads(1)
    params = [p for p in create_model({"backbone": "schnet"}).parameters() if p.requires_grad]
    for param in params:
        param.grad = torch.randn_like(param)
    groups = [{"params": params}]
    optimizer = torch.optim.AdamW(groups, lr=5e-4, **fused_option(groups, fused))
    times = []
    for step in range(repeats + 10):
        start = time.perf_counter()
        optimizer.step()
        if step >= 10:  # the first steps allocate the moments
            times.append(time.perf_counter() - start)
    return 1e3 * statistics.median(times)


def _command(case: str, batch: int, molecules: int) -> list[str]:
    processes = CASES[case][0]
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
    copies = 2 if CASES[case][0] == -2 else 1
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


def render(
    rates: dict[tuple[int, str], list[float]],
    step_ms: dict[str, float],
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
        "summed); vs loop and vs fused: over the 1-process rows of the same batch",
        "",
        "| global batch | case | molecules/s | vs 1 process, loop | vs 1 process, fused | rounds |",
        "|---|---|---|---|---|---|",
    ]
    for batch in args.batches:
        loop = statistics.median(rates[(batch, LOOP)])
        fused = statistics.median(rates[(batch, FUSED)])
        for case in CASES:
            found = rates[(batch, case)]
            rate = statistics.median(found)
            spread = ", ".join(f"{r:.0f}" for r in found)
            lines.append(
                f"| {batch} | {case} | {rate:.1f} | {rate / loop:.2f}x | {rate / fused:.2f}x "
                f"| {spread} |"
            )
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
    loop, fused = step_ms["loop"], step_ms["fused"]
    lines += [
        "",
        "One AdamW step over MI-MoE(SchNet)'s parameters (random gradients, one thread, median "
        f"of 200 steps): per-tensor loop {loop:.2f} ms, fused kernel {fused:.2f} ms "
        f"({fused / loop:.2f}x).",
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
    from mimoe_core.data import load_dataset
    from mimoe_core.featurization import featurize

    featurize(load_dataset(DATASET, limit=_rows(args.molecules)))  # the cache the cases read
    step_ms = {"loop": optimizer_step_ms(False), "fused": optimizer_step_ms(True)}
    print(f"AdamW step: loop {step_ms['loop']:.2f} ms, fused {step_ms['fused']:.2f} ms", flush=True)
    rates: dict[tuple[int, str], list[float]] = {}
    for round_ in range(args.rounds):
        for batch in args.batches:
            for case in CASES:
                rate = measure(case, batch, args.molecules)
                rates.setdefault((batch, case), []).append(rate)
                print(
                    f"round {round_ + 1}, batch {batch}: {case}: {rate:.1f} molecules/s", flush=True
                )
    text = render(rates, step_ms, args, command_line(__file__, argv))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
