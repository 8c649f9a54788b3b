"""What assembling the training batches costs, one by one or gathered from packed molecules,
and what loader worker processes change, measured side by side on this machine.

1. Batch assembly alone, what a training step does before its forward pass, on the first
   ``--molecules`` training molecules of Tox21, at each batch size of ``--batches`` and 1024,
   one thread: PyG's ``Batch.from_data_list`` over the molecules one by one (how every batch
   was made before 2026-12-07) against
   :class:`~mimoe_core.packed_molecules.PackedMolecules` (the same batch, gathered from flat
   tensors), the two alternating; molecules/s, microseconds per molecule, and their ratio.
   The same from shards of 512 molecules: each molecule decoded and batched one by one,
   against ``ShardSequence.batch`` (gathered from the decoded shards), over consecutive
   positions (one run of molecules per shard and batch, as training's order per shard gives).
   At issue 17's GPU target of 10,000 molecules/s a molecule has 100 us for the whole step.
2. What a loader worker copies: ``--memory-molecules`` molecules in memory (the training
   molecules repeated, each with tensors and strings of its own, as in a featurized list),
   one worker
   assembling one epoch of batches of 256, one by one against packed: the worker's private
   memory (USS) after the epoch, and what packing adds to the trainer's.
3. Training, ``mimoe train`` on the same molecules (MI-MoE(SchNet), CLI defaults, 2
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
from collections.abc import Sequence
from pathlib import Path
from typing import Any

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


def _training_molecules(molecules: int) -> list:
    """The first ``molecules`` training molecules of Tox21 (random split, seed 0)."""
    from mimoe_core.data import load_dataset, make_split
    from mimoe_core.featurization import featurize

    data = featurize(load_dataset(DATASET, limit=_rows(molecules)), progress=False, n_jobs=1)
    split = make_split("random", data.smiles, seed=0)
    return [data.data_list[i] for i in split.train[:molecules]]


def assembly_rates(train: list, batches: list[int], repeats: int = 3) -> dict:
    """Molecules/s of batch assembly alone, one by one and packed, at each batch size.

    The best of ``repeats`` passes over ``train`` each, the two ways alternating; the time to
    pack the molecules is reported apart (``"pack_seconds"``), as training packs them once.
    """
    from mimoe_core.conformer_views import conformer_view
    from mimoe_core.forward import assemble_batch
    from mimoe_core.packed_molecules import PackedMolecules

    torch.set_num_threads(1)
    start = time.perf_counter()
    packed = PackedMolecules(train)
    found: dict = {"pack_seconds": time.perf_counter() - start}

    def one_by_one(positions: range) -> None:
        assemble_batch([conformer_view(train[i], 0) for i in positions], torch.float32)

    def gathered(positions: range) -> None:
        packed.batch(positions, dtype=torch.float32)

    found.update(_best_rates({"one by one": one_by_one, "packed": gathered}, len(train), batches,
                             repeats))  # fmt: skip
    return found


def shard_assembly_rates(molecules: int, batches: list[int], work: Path, repeats: int = 3) -> dict:
    """Molecules/s of batch assembly from shards, one by one and packed, at each batch size.

    Shards of 512 molecules, 2 decoded at a time: each molecule decoded to a ``Data`` and
    ``Batch.from_data_list``, against ``ShardSequence.batch`` (gathered from the decoded
    shards).
    """
    from mimoe_core.data import load_dataset, make_split
    from mimoe_core.forward import assemble_batch
    from mimoe_core.shards import write_shards

    table = load_dataset(DATASET, limit=_rows(molecules))
    shards = write_shards(table, work / "shards", shard_size=512, progress=False, n_jobs=1)
    split = make_split("random", shards.smiles, seed=0)
    view = shards.subset(split.train[:molecules])

    def one_by_one(positions: range) -> None:
        assemble_batch([view[i] for i in positions], torch.float32)

    def gathered(positions: range) -> None:
        view.batch(positions, dtype=torch.float32)

    ways = {"one by one": one_by_one, "packed": gathered}
    return _best_rates(ways, len(view), batches, repeats)


def _best_rates(ways: dict, molecules: int, batches: list[int], repeats: int) -> dict:
    """``{batch: {way: molecules/s}}``, the best of ``repeats`` passes over ``molecules`` each.

    The ways alternate within each repeat.
    """
    found = {}
    for batch in batches:
        best = dict.fromkeys(ways, 0.0)
        for _ in range(repeats):
            for way, assemble in ways.items():
                start, done = time.perf_counter(), 0
                for first in range(0, molecules - batch + 1, batch):
                    assemble(range(first, first + batch))
                    done += batch
                best[way] = max(best[way], done / (time.perf_counter() - start))
        found[batch] = best
    return found


def worker_memory(train: list, molecules: int, batch: int = 256) -> dict:
    """A loader worker's private memory after one epoch, molecules one by one and packed.

    ``molecules`` molecules in memory: ``train`` repeated, each tensor and string copied so
    that every molecule has objects of its own, as in a featurized list. Returns, per way,
    the worker's USS and the size of the packed copy the trainer makes (0 one by one), bytes.
    """
    import multiprocessing

    import psutil

    from mimoe_core.packed_molecules import PackedMolecules
    from mimoe_core.training.batches import TrainingBatches

    many = [_own_copy(train[i % len(train)]) for i in range(molecules)]
    ways = {"one by one": _OneByOne(many), "packed": many}
    found = {}
    for way, held in ways.items():
        # Sized before the worker is forked: afterwards, every page the trainer writes (as
        # packing reads each molecule) would turn the worker's copy of it private.
        copy = PackedMolecules(held).nbytes if way == "packed" else 0
        batches = TrainingBatches(held, torch.device("cpu"), torch.float32, workers=1)
        steps = [
            range(first, min(first + batch, molecules)) for first in range(0, molecules, batch)
        ]
        for _ in batches.epoch(steps, torch.zeros(molecules, dtype=torch.long)):
            pass
        (worker,) = multiprocessing.active_children()
        found[way] = {"worker_uss": psutil.Process(worker.pid).memory_full_info().uss,
                      "packed_copy": copy}  # fmt: skip
        batches.close()
        del batches
        print(way, {k: round(v / 2**20, 1) for k, v in found[way].items()}, "MiB", flush=True)
    return found


def _own_copy(molecule: Any) -> Any:
    """``molecule`` with tensors and strings of its own, as each featurized molecule has."""
    from torch_geometric.data import Data

    def copied(value: Any) -> Any:
        if torch.is_tensor(value):
            return value.clone()
        if isinstance(value, str):
            return value.encode().decode()  # a new object, not the original
        return value

    return Data(**{key: copied(value) for key, value in molecule.items()})


class _OneByOne(Sequence):
    """Molecules in memory, read one at a time: how a worker assembled them before packing."""

    def __init__(self, molecules: list) -> None:
        self.molecules = molecules

    def __len__(self) -> int:
        return len(self.molecules)

    def __getitem__(self, i: int):
        return self.molecules[i]


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


def render(
    assembly: dict,
    shard_assembly: dict,
    memory: dict,
    found: dict,
    args: argparse.Namespace,
    argv: list[str] | None,
) -> str:
    """The report: command, machine, date, assembly rates, worker memory, the training table."""
    lines = report_header(
        "Assembling the training batches: one by one or packed, in line or in a loader worker",
        "bench_loader.py", argv,
    )  # fmt: skip
    lines += [
        f"- Tox21's first {_rows(args.molecules)} rows, random split (seed 0): assembly reads "
        f"the first {args.molecules} training molecules, training the whole training part "
        "(about as many); one thread per process",
        "",
        "Batch assembly alone (best of 3 passes each, the two ways alternating): one by one is "
        "PyG's `Batch.from_data_list` over the conformer views, packed is "
        "`PackedMolecules.batch` (the same batch, gathered from flat tensors; packing the "
        f"{args.molecules} molecules once took {assembly['pack_seconds'] * 1e3:.0f} ms):",
        "",
        "| batch | one by one: molecules/s | us per molecule | packed: molecules/s "
        "| us per molecule | packed / one by one | packed: share of 100 us |",
        "|---|---|---|---|---|---|---|",
    ]
    for batch in sorted(b for b in assembly if b != "pack_seconds"):
        slow, fast = assembly[batch]["one by one"], assembly[batch]["packed"]
        lines.append(
            f"| {batch} | {slow:,.0f} | {1e6 / slow:.1f} | {fast:,.0f} | {1e6 / fast:.1f} "
            f"| {fast / slow:.1f}x | {1e4 / fast:.1%} |"
        )
    lines += [
        "",
        "From shards (512 molecules per shard, at most 2 decoded at a time, the shards' "
        "decoding included): one by one is each molecule decoded to a `Data` and "
        "`Batch.from_data_list`, packed is `ShardSequence.batch` (gathered from the decoded "
        "shards):",
        "",
        "| batch | one by one: us per molecule | packed: us per molecule | packed / one by one |",
        "|---|---|---|---|",
    ]
    for batch, rates in sorted(shard_assembly.items()):
        slow, fast = rates["one by one"], rates["packed"]
        lines.append(f"| {batch} | {1e6 / slow:.1f} | {1e6 / fast:.1f} | {fast / slow:.1f}x |")
    lines += [
        "",
        f"A loader worker's private memory (USS) after assembling one epoch of "
        f"{args.memory_molecules:,} molecules in memory (the training molecules repeated, "
        "each with tensors and strings of its own) in batches of 256, and the size of the "
        "packed copy that the trainer makes (`PackedMolecules.nbytes`):",
        "",
        "| molecules read | worker USS (MiB) | per molecule (bytes) | packed copy (MiB) |",
        "|---|---|---|---|",
    ]
    for way, sizes in memory.items():
        lines.append(
            f"| {way} | {sizes['worker_uss'] / 2**20:.0f} "
            f"| {sizes['worker_uss'] / args.memory_molecules:,.0f} "
            f"| {sizes['packed_copy'] / 2**20:.0f} |"
        )
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
    parser.add_argument("--memory-molecules", type=int, default=100_000)
    args = parser.parse_args(argv)
    args.batches = [int(b) for b in args.batches.split(",") if b.strip()]
    sizes = sorted(b for b in {*args.batches, 1024} if b <= args.molecules)
    train = _training_molecules(args.molecules)
    assembly = assembly_rates(train, sizes)
    print(assembly, flush=True)
    with tempfile.TemporaryDirectory() as scratch:
        shard_assembly = shard_assembly_rates(args.molecules, sizes, Path(scratch))
    print(shard_assembly, flush=True)
    memory = worker_memory(train, args.memory_molecules)
    del train
    found: dict = {(batch, case): [] for batch in args.batches for case in CASES}
    with tempfile.TemporaryDirectory() as scratch:
        for round_ in range(args.rounds):
            for batch in args.batches:
                cases = list(CASES) if round_ % 2 == 0 else list(reversed(CASES))
                for case in cases:
                    run = train_case(CASES[case], batch, args, Path(scratch))
                    found[(batch, case)].append(run)
                    print(round_, batch, case, run, flush=True)
    write_report(args.out, render(assembly, shard_assembly, memory, found, args, argv))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
