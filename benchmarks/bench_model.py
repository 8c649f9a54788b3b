"""Forward+backward time and peak memory: single-scale backbone vs MI-MoE dense vs sparse.

All variants run in one process on the same batches of a bundled dataset (conformers and
descriptor trajectories from the featurization cache), so the ratios compare like with like:

    python benchmarks/bench_model.py --dataset freesolv --backbones schnet,painn

Rows per backbone: the single-scale backbone (full depth, one cutoff), MI-MoE dense (all K
experts), MI-MoE sparse (Top-k, only routed molecules reach an expert; once as the untrained gate
routes, once forced onto the k largest cutoffs, the worst case) and, for reference,
the same sparse weights with every expert computed (the paper's Algorithm 1). Peak memory is
``torch.cuda.max_memory_allocated`` on a GPU; on the CPU it is the growth of the process's
peak resident set while the variant runs, measured in a fresh subprocess per variant.
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import time

import numpy as np
import torch
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


def time_variant(config: dict, batches: list[Batch], device: torch.device, repeats: int):
    """Median seconds per batch of forward+backward, routing usage, peak memory in MiB."""
    config = dict(config)
    compute_all = config.pop("compute_all", False)
    force_largest = config.pop("force_largest", False)
    torch.manual_seed(0)
    model = create_model(config).to(device)
    if force_largest:  # every molecule routed to the most expensive experts
        with torch.no_grad():
            model.gate.to_logits.weight.zero_()
            model.gate.to_logits.bias.copy_(torch.arange(model.num_experts, dtype=torch.float))
    batches = [b.to(device) for b in batches]
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)

    def step(batch: Batch):
        out = model.forward_batch(batch, compute_all=compute_all)
        (out.y.pow(2).mean() + 0.01 * out.aux_loss).backward()
        model.zero_grad(set_to_none=True)
        return out

    for batch in batches[:2]:
        step(batch)  # warm-up
    times, usage = [], []
    for _ in range(repeats):
        for batch in batches:
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            start = time.perf_counter()
            out = step(batch)
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            times.append(time.perf_counter() - start)
            usage.append(out.selected.float().mean(0).cpu().numpy())
    if device.type == "cuda":
        peak = torch.cuda.max_memory_allocated(device) / 2**20
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 - rss_before
    params = sum(p.numel() for p in model.parameters())
    return float(np.median(times)), np.mean(usage, axis=0).tolist(), peak, params


def main() -> None:
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
    parser.add_argument("--one", help=argparse.SUPPRESS)  # internal: one variant, JSON out
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    device = torch.device(
        ("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device
    )
    if args.one:
        backbone, name = json.loads(args.one)
        result = time_variant(
            variants(backbone, args)[name],
            load_batches(args.dataset, args.batch_size, args.batches),
            device,
            args.repeats,
        )
        print(json.dumps(result))
        return

    batches = load_batches(args.dataset, args.batch_size, args.batches)
    atoms = np.mean([b.num_nodes / b.num_graphs for b in batches])
    print(
        f"dataset: {args.dataset}  batches: {args.batches} x {args.batch_size} molecules "
        f"({atoms:.1f} atoms each on average)  device: {device}  threads: {args.threads}"
    )
    print(f"hidden {args.hidden}, expert layers {args.expert_layers}, forward+backward")
    for backbone in args.backbones.split(","):
        rows = {}
        for name in variants(backbone, args):
            cmd = [sys.executable, __file__, *sys.argv[1:], "--one", json.dumps([backbone, name])]
            proc = subprocess.run(cmd, capture_output=True, text=True, env=os.environ.copy())
            if proc.returncode:
                sys.exit(f"{name} failed:\n{proc.stderr}")
            rows[name] = json.loads(proc.stdout.strip().splitlines()[-1])
        print(f"\n{'variant':66s} {'ms/batch':>9s} {'peak MiB':>9s} {'params':>9s}  usage")
        for name, (sec, usage, peak, params) in rows.items():
            shares = " ".join(f"{u:.2f}" for u in usage)
            print(f"{name:66s} {sec * 1e3:9.1f} {peak:9.1f} {params:9d}  [{shares}]")
        single, dense, sparse, worst, _ = (r[0] for r in rows.values())
        verdict = {True: "PASS", False: "FAIL"}
        for label, value in (("sparse", sparse), ("worst-case sparse", worst)):
            r_dense, r_single = value / dense, value / single
            ok_dense = verdict[r_dense <= TARGET_SPARSE_VS_DENSE]
            ok_single = verdict[r_single <= TARGET_SPARSE_VS_SINGLE]
            print(
                f"{label}: / dense = {r_dense:.2f} (target <= {TARGET_SPARSE_VS_DENSE}: "
                f"{ok_dense}), / single = {r_single:.2f} (target <= "
                f"{TARGET_SPARSE_VS_SINGLE}: {ok_single})"
            )


if __name__ == "__main__":
    main()
