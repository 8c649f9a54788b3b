"""SchNet's filters once per atom pair against once per directed edge (PyG's way).

A SchNet filter depends only on the distance, which an edge j -> i and its mirror i -> j
share, so the SchNet expert computes the filter network on one edge per pair and gathers it
for both (``SchNetExpert.filters_per_pair``). The baseline is the same model with the switch
off, which computes what PyG's ``InteractionBlock`` computes on every edge (the tests check
both against PyG). Both run in one process on the same weights and batches, alternating
batch by batch, so that both see the same load:

    python benchmarks/bench_pair_filters.py --datasets freesolv,esol,bace

Timed: one training step (forward, loss, backward; the optimizer's step is the same in both
and left out) of MI-MoE(SchNet) with the CLI defaults and of the single-scale SchNet baseline
(6 blocks at 5 Å), batches of the CLI's default size.
"""

from __future__ import annotations

import argparse
import datetime
import platform
import time
from pathlib import Path

import numpy as np
import torch
from _parallel_runs import command_line, write_report
from _timing import turn_order
from bench_model import load_batches
from torch_geometric.data import Batch

from mimoe_core.models import create_model
from mimoe_core.models.radius_graph import radius_graph
from mimoe_core.models.schnet import SchNetExpert

MODELS = {
    "MI-MoE(SchNet), k=2 of 5": {"backbone": "schnet", "variant": "sparse", "top_k": 2},
    "single-scale SchNet (6 blocks, 5 Å)": {"backbone": "schnet", "variant": "plain"},
}


def set_per_pair(model: torch.nn.Module, per_pair: bool) -> None:
    for module in model.modules():
        if isinstance(module, SchNetExpert):
            module.filters_per_pair = per_pair


def step_seconds(model: torch.nn.Module, batch: Batch) -> float:
    start = time.perf_counter()
    out = model.forward_batch(batch)
    (out.y.pow(2).mean() + model.balance_weight * out.aux_loss).backward()
    seconds = time.perf_counter() - start
    model.zero_grad(set_to_none=True)
    return seconds


def compare(config: dict, batches: list[Batch], repeats: int) -> dict:
    """Median step seconds per pair and per edge, and the largest prediction difference."""
    torch.manual_seed(0)
    model = create_model(config)
    with torch.no_grad():
        predictions = {}
        for per_pair in (True, False):
            set_per_pair(model, per_pair)
            predictions[per_pair] = model.forward_batch(batches[0]).y
    difference = float((predictions[True] - predictions[False]).abs().max())
    times = {True: [], False: []}
    for per_pair in (True, False):  # warm-up
        set_per_pair(model, per_pair)
        step_seconds(model, batches[0])
    settings = (True, False)
    for r in range(repeats):
        for b, batch in enumerate(batches):
            for index in turn_order(2, r + b):
                set_per_pair(model, settings[index])
                times[settings[index]].append(step_seconds(model, batch))
    pair, edge = (float(np.median(times[k])) for k in (True, False))
    return {"per_pair": pair, "per_edge": edge, "difference": difference}


def edges_per_molecule(batches: list[Batch], cutoff: float) -> float:
    edges = sum(radius_graph(b.pos, b.batch, cutoff).edge_index.size(1) for b in batches)
    return edges / sum(b.num_graphs for b in batches)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", default="freesolv,esol,bace")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--batches", type=int, default=12)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--out", type=Path, help="also write the report here (markdown)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)

    lines = [
        "# SchNet filters per atom pair against per directed edge",
        "",
        f"- command: `{command_line(__file__, argv)}`",
        f"- date: {datetime.date.today()}",
        f"- machine: {platform.platform()}, CPU, {args.threads} thread(s), torch "
        f"{torch.__version__}",
        f"- one training step (forward, loss, backward) on batches of {args.batch_size}, "
        f"median over {args.batches} batches x {args.repeats} repeats, the two settings "
        "alternating batch by batch in one process; ratio < 1: per pair is faster",
        "",
        "| dataset | model | atoms per molecule | edges per molecule at 5 Å | per edge, ms "
        "| per pair, ms | per pair / per edge | largest prediction difference |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for dataset in args.datasets.split(","):
        batches = load_batches(dataset, args.batch_size, args.batches)
        atoms = sum(b.num_nodes for b in batches) / sum(b.num_graphs for b in batches)
        edges = edges_per_molecule(batches, 5.0)
        for name, config in MODELS.items():
            result = compare(config, batches, args.repeats)
            ratio = result["per_pair"] / result["per_edge"]
            lines.append(
                f"| {dataset} | {name} | {atoms:.1f} | {edges:.0f} | "
                f"{result['per_edge'] * 1e3:.1f} | {result['per_pair'] * 1e3:.1f} | "
                f"{ratio:.2f} | {result['difference']:.1e} |"
            )
            print(lines[-1], flush=True)
    report = "\n".join(lines) + "\n"
    if args.out:
        write_report(args.out, report)
    else:
        print(report)


if __name__ == "__main__":
    main()
