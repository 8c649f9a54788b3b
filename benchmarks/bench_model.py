"""Forward+backward time and peak memory: single-scale backbone vs MI-MoE dense vs sparse.

All variants run on the same batches of a bundled dataset (conformers and descriptor
trajectories from the featurization cache), so the ratios compare like with like:

    python benchmarks/bench_model.py --dataset freesolv --backbones schnet,painn

Rows per backbone: the single-scale backbone (full depth, one cutoff), MI-MoE dense (all K
experts), MI-MoE sparse (Top-k, only routed molecules reach an expert; once as the untrained gate
routes, once forced onto the k largest cutoffs, the worst case) and, for reference,
the same sparse weights with every expert computed (the paper's Algorithm 1).

Time: every variant of a backbone lives in one process, and they take turns batch by batch
(who goes first rotates), so that all of them see the same load; timing them one after the
other let a change of load on a shared machine move the ratios by a third. Peak memory is
what the variant's training steps add to the memory held before them
(``torch.cuda.max_memory_allocated`` on a GPU, the peak resident set on the CPU), measured in
a fresh subprocess per variant.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch
from _memory import PeakMemory
from _parallel_runs import command_line
from _timing import turn_order
from torch_geometric.data import Batch

from mimoe_core.featurization import featurize_dataset
from mimoe_core.models import create_model

TARGET_SPARSE_VS_DENSE = 0.6
TARGET_SPARSE_VS_SINGLE = 1.5


def variants(backbone: str, args) -> dict[str, dict]:
    """Config per variant; the experts of MI-MoE use the paper's shallower depth."""
    common = {
        "backbone": backbone,
        "expert": {"hidden_channels": args.hidden, "num_layers": args.expert_layers},
        "top_k": args.top_k,
    }
    return {
        f"single-scale {backbone} ({args.single_layers} layers, {args.single_cutoff} Å)": {
            **common,
            "variant": "plain",
            "plain": {"cutoff": args.single_cutoff, "num_layers": args.single_layers},
        },
        f"MI-MoE({backbone}) dense, K=5": {**common, "variant": "dense"},
        f"MI-MoE({backbone}) sparse, k={args.top_k} of 5": {**common, "variant": "sparse"},
        f"MI-MoE({backbone}) sparse, worst case (the {args.top_k} largest cutoffs)": {
            **common,
            "variant": "sparse",
            "force_largest": True,
        },
        f"MI-MoE({backbone}) sparse weights, all experts computed": {
            **common,
            "variant": "sparse",
            "compute_all": True,
        },
    }


def load_batches(dataset: str, batch_size: int, count: int) -> list[Batch]:
    """``count`` batches of randomly drawn molecules (seed 0) from the featurization cache,
    as many as the dataset fills when it holds fewer."""
    data = featurize_dataset(dataset, progress=False).data_list
    order = np.random.default_rng(0).permutation(len(data))
    count = min(count, len(data) // batch_size)
    return [
        Batch.from_data_list([data[i] for i in order[b * batch_size : (b + 1) * batch_size]])
        for b in range(count)
    ]


class Variant:
    """One model of a variant and its training step (forward, loss, backward)."""

    def __init__(self, config: dict, device: torch.device):
        config = dict(config)
        self.compute_all = config.pop("compute_all", False)
        force_largest = config.pop("force_largest", False)
        torch.manual_seed(0)
        self.model = create_model(config).to(device)
        if force_largest:  # every molecule routed to the most expensive experts
            with torch.no_grad():
                gate = self.model.gate.to_logits
                gate.weight.zero_()
                gate.bias.copy_(torch.arange(self.model.num_experts, dtype=torch.float))
        self.params = sum(p.numel() for p in self.model.parameters())
        self.device = device

    def step(self, batch: Batch):
        out = self.model.forward_batch(batch, compute_all=self.compute_all)
        (out.y.pow(2).mean() + 0.01 * out.aux_loss).backward()
        self.model.zero_grad(set_to_none=True)
        return out

    def timed_step(self, batch: Batch) -> tuple[float, np.ndarray]:
        """Seconds of one step and the share of molecules each expert received."""
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        start = time.perf_counter()
        out = self.step(batch)
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        return time.perf_counter() - start, out.selected.float().mean(0).cpu().numpy()


def time_interleaved(
    configs: dict[str, dict], batches: list[Batch], device: torch.device, repeats: int
) -> dict[str, dict]:
    """Median seconds per batch and mean routing usage of every variant, all built in this
    process and taking turns batch by batch."""
    built = {name: Variant(config, device) for name, config in configs.items()}
    batches = [b.to(device) for b in batches]
    for variant in built.values():
        for batch in batches[:2]:
            variant.step(batch)  # warm-up
    names = list(built)
    times = {name: [] for name in names}
    usage = {name: [] for name in names}
    turn = 0
    for _ in range(repeats):
        for batch in batches:
            for index in turn_order(len(names), turn):
                seconds, shares = built[names[index]].timed_step(batch)
                times[names[index]].append(seconds)
                usage[names[index]].append(shares)
            turn += 1
    return {
        name: {
            "seconds": float(np.median(times[name])),
            "usage": np.mean(usage[name], axis=0).tolist(),
            "params": built[name].params,
        }
        for name in names
    }


def peak_memory(config: dict, batches: list[Batch], device: torch.device) -> float:
    """MiB that two passes of the variant's steps over ``batches`` add to the memory held
    before them (:class:`PeakMemory`); on the CPU call it in a fresh process started with
    glibc's mmap threshold fixed (as ``main`` does), so that freed tensors leave the
    resident set and loading the dataset does not lend the steps its freed blocks."""
    variant = Variant(config, device)
    batches = [b.to(device) for b in batches]
    with PeakMemory(device) as peak:
        for _ in range(2):
            for batch in batches:
                variant.step(batch)
    return peak.mib


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="freesolv")
    parser.add_argument("--backbones", default="schnet,painn")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--batches", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--expert-layers", type=int, default=3)
    parser.add_argument("--single-layers", type=int, default=6)
    parser.add_argument("--single-cutoff", type=float, default=5.0)
    parser.add_argument("--top-k", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda")
    parser.add_argument("--out", type=Path, help="also write the report here")
    parser.add_argument("--memory-of", help=argparse.SUPPRESS)  # internal: one variant
    args = parser.parse_args(argv)

    torch.set_num_threads(args.threads)
    device = torch.device(
        ("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device
    )
    batches = load_batches(args.dataset, args.batch_size, args.batches)
    if args.memory_of:
        backbone, name = json.loads(args.memory_of)
        print(json.dumps(peak_memory(variants(backbone, args)[name], batches, device)))
        return

    atoms = np.mean([b.num_nodes / b.num_graphs for b in batches])
    lines = [
        f"command: {command_line(__file__, argv)}",
        f"date: {datetime.date.today()}  machine: {platform.platform()}, "
        f"{os.cpu_count()} CPU cores, torch {torch.__version__}",
        f"dataset: {args.dataset}  batches: {len(batches)} x {args.batch_size} molecules "
        f"({atoms:.1f} atoms each on average)  device: {device}  threads: {args.threads}",
        f"hidden {args.hidden}, expert layers {args.expert_layers}, forward+backward; "
        f"ms/batch: median of {len(batches)} batches x {args.repeats} repeats, the variants "
        "taking turns batch by batch in one process",
    ]
    print("\n".join(lines), flush=True)
    memory_env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": str(64 * 1024)}
    for backbone in args.backbones.split(","):
        configs = variants(backbone, args)
        timed = time_interleaved(configs, batches, device, args.repeats)
        for name, result in timed.items():
            cmd = [
                sys.executable,
                __file__,
                *(sys.argv[1:] if argv is None else argv),
                "--memory-of",
                json.dumps([backbone, name]),
            ]
            proc = subprocess.run(cmd, capture_output=True, text=True, env=memory_env)
            if proc.returncode:
                sys.exit(f"{name} failed:\n{proc.stderr}")
            result["peak"] = json.loads(proc.stdout.strip().splitlines()[-1])
        block = ["", f"{'variant':66s} {'ms/batch':>9s} {'peak MiB':>9s} {'params':>9s}  usage"]
        for name, r in timed.items():
            shares = " ".join(f"{u:.2f}" for u in r["usage"])
            block.append(
                f"{name:66s} {r['seconds'] * 1e3:9.1f} {r['peak']:9.1f} {r['params']:9d}  "
                f"[{shares}]"
            )
        single, dense, sparse, worst, _ = (r["seconds"] for r in timed.values())
        verdict = {True: "PASS", False: "FAIL"}
        for label, value in (("sparse", sparse), ("worst-case sparse", worst)):
            r_dense, r_single = value / dense, value / single
            ok_dense = verdict[r_dense <= TARGET_SPARSE_VS_DENSE]
            ok_single = verdict[r_single <= TARGET_SPARSE_VS_SINGLE]
            block.append(
                f"{label}: / dense = {r_dense:.2f} (target <= {TARGET_SPARSE_VS_DENSE}: "
                f"{ok_dense}), / single = {r_single:.2f} (target <= "
                f"{TARGET_SPARSE_VS_SINGLE}: {ok_single})"
            )
        print("\n".join(block), flush=True)
        lines += block
    if args.out:
        args.out.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
