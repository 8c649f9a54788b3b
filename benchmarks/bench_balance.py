"""What the load-balancing weight does on a real dataset: expert usage over epochs, and accuracy.

MI-MoE(SchNet), sparse k=2 of 5, trained on FreeSolv (all molecules, seeded scaffold split per
seed) with several balancing weights, the default 0.1 among them. For each weight the script
prints the load of each expert (the fraction of routing slots it receives, summing to 1) at
a few epochs, the largest load at the end (1/K = 0.2 is perfectly balanced, 1/k = 0.5 means
collapse onto k experts), the balancing loss and the test RMSE, mean ± sample std (ddof=1)
over seeds.

    python benchmarks/bench_balance.py                       # ~40 min on 2 CPU cores
    python benchmarks/bench_balance.py --weights 0,0.01 --seeds 0 --epochs 3   # smoke

Writes ``--out`` (default ``benchmarks/results/balance_cpu.md``) with command, machine and date.
"""

from __future__ import annotations

import argparse
import platform
import sys
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from _parallel_runs import EARLIER_DEFAULTS

from mimoe_core.data import load_dataset, make_split
from mimoe_core.featurization import featurize
from mimoe_core.training import TrainSettings, train


def _loads(history: pd.DataFrame, top_k: int) -> np.ndarray:
    """[epochs, K] share of the routing slots per expert (each row sums to 1)."""
    cols = sorted(
        (c for c in history.columns if c.startswith("usage_")), key=lambda c: int(c.split("_")[1])
    )
    return history[cols].to_numpy() / top_k


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="freesolv")
    parser.add_argument("--weights", default="0,0.01,0.1,1.0")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()

    weights = [float(w) for w in args.weights.split(",")]
    seeds = [int(s) for s in args.seeds.split(",")]
    out = args.out or Path(__file__).parent / "results" / "balance_cpu.md"
    ds = featurize(load_dataset(args.dataset), progress=False)
    top_k, num_experts = 2, 5
    lines = [
        "# Load balancing: expert usage over epochs against the balancing weight",
        "",
        f"- command: `python {' '.join(sys.argv)}`",
        f"- date: {date.today().isoformat()}",
        f"- machine: {platform.machine()}, {torch.get_num_threads()} torch threads, "
        f"{'CUDA ' + torch.cuda.get_device_name() if torch.cuda.is_available() else 'CPU only'}",
        f"- {args.dataset}: {len(ds)} molecules, scaffold_balanced split 80/10/10 per seed "
        f"{seeds}; MI-MoE(SchNet) sparse k={top_k} of K={num_experts}, hidden {args.hidden}, "
        f"{args.epochs} epochs (patience {args.epochs}), batch 32",
        "- load: share of the routing slots per expert (sums to 1); balanced = 0.20 each, "
        f"collapse onto {top_k} experts = 0.50 for two of them",
        "- mean ± sample std (ddof=1) over seeds",
        "",
    ]
    rows = []
    for weight in weights:
        per_seed = []
        for seed in seeds:
            split = make_split("scaffold_balanced", ds.smiles, seed=seed)
            config = {
                "backbone": "schnet",
                "variant": "sparse",
                "top_k": top_k,
                "balance_weight": weight,
                "expert": {"hidden_channels": args.hidden, "num_layers": 3},
            }
            settings = TrainSettings(
                epochs=args.epochs, patience=args.epochs, seed=seed, progress=False,
                **EARLIER_DEFAULTS,
            )  # fmt: skip
            result = train(ds, split, config, settings)
            loads = _loads(result.history, top_k)
            per_seed.append(
                {
                    "loads": loads,
                    "rmse": result.metrics["test"]["rmse"],
                    "aux": float(result.history["aux_loss"].iloc[-1]),
                }
            )
            print(
                f"weight {weight} seed {seed}: test RMSE {per_seed[-1]['rmse']:.3f}, "
                f"final load {np.round(loads[-1], 3).tolist()}",
                flush=True,
            )
        rows.append((weight, per_seed))

    lines += ["## Summary", ""]
    lines.append(
        "| balance weight | test RMSE | largest final load | balancing loss (last epoch) |"
    )
    lines.append("|---|---|---|---|")
    for weight, per_seed in rows:
        rmse = np.array([s["rmse"] for s in per_seed])
        top = np.array([s["loads"][-1].max() for s in per_seed])
        aux = np.array([s["aux"] for s in per_seed])
        lines.append(f"| {weight:g} | {_ms(rmse)} | {_ms(top)} | {_ms(aux)} |")
    lines += ["", "## Load per expert over epochs (mean over seeds)", ""]
    for weight, per_seed in rows:
        mean = np.mean([s["loads"] for s in per_seed], axis=0)
        epochs = sorted({0, 1, 4, 9, mean.shape[0] // 2, mean.shape[0] - 1} & set(range(len(mean))))
        lines += [
            f"### weight {weight:g}",
            "",
            "| epoch | " + " | ".join(f"expert {e + 1}" for e in range(mean.shape[1])) + " |",
            "|---|" + "---|" * mean.shape[1],
        ]
        lines += [f"| {ep} | " + " | ".join(f"{v:.3f}" for v in mean[ep]) + " |" for ep in epochs]
        lines.append("")
    text = "\n".join(lines)
    print(text)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)


def _ms(values: np.ndarray) -> str:
    std = values.std(ddof=1) if values.size > 1 else float("nan")
    return f"{values.mean():.3f} ± {std:.3f}"


if __name__ == "__main__":
    main()
