"""Does the gate read topology, or only size? The topology gate against two ablation gates.

MI-MoE(SchNet), sparse k=2 of 5, trained with each of three gates on the same scaffold
splits (``scaffold_balanced``, seeds 0..S-1; the split seed is the run seed):

- ``mlp``: the default topology gate (MLP over the descriptor trajectory);
- ``size``: :class:`~mimoe_core.models.SizeGate`, which reads only the number of atoms;
- ``random``: :class:`~mimoe_core.models.RandomGate`, a fixed hash of the molecule with
  weight 1/k, which reads nothing.

Everything else is the CLI's defaults (width 128, 100 epochs, patience 20, batch 32) at
full dataset size. Per run: test RMSE at the best validation epoch, epochs run, seconds,
and how strongly routing follows size on the test molecules (Spearman of the expected
cutoff sum_e alpha_e c_e against the atom count). The table is mean ± sample std (ddof=1)
over the splits, and the paired difference to the topology gate per split.

    python benchmarks/bench_gate_ablation.py                    # ~1 h on 2 CPU cores
    python benchmarks/bench_gate_ablation.py --datasets freesolv --splits 2 --epochs 2 \\
        --out /tmp/g.md                                         # smoke

Runs go to ``--work`` (one JSON per finished run); a rerun with the same ``--work`` skips
the finished ones, so an interrupted benchmark continues. ``--jobs`` trainings run at once,
each on one thread. Writes ``--out`` (default ``benchmarks/results/gate_ablation_cpu.md``).
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
from _parallel_runs import (
    RUNS,
    add_run_options,
    command_line,
    exit_status,
    featurized,
    markdown_rows,
    mean_std,
    paired_differences,
    results,
    run_all,
    train_on_split,
    write_report,
)
from scipy.stats import spearmanr

ROOT = Path(__file__).resolve().parents[1]
GATES = ("mlp", "size", "random")


def run_one(name: str, split_seed: int, gate: str, epochs: int, hidden: int) -> dict:
    """Train one (dataset, split, gate) and score it; runs in a worker process."""
    from mimoe_core.data import make_split
    from mimoe_core.forward import run_model

    config = {"backbone": "schnet", "variant": "sparse", "top_k": 2, "gate": {"name": gate},
              "expert": {"hidden_channels": hidden}}  # fmt: skip
    result, row = train_on_split(name, split_seed, config, epochs=epochs)
    ds = featurized(name)
    split = make_split("scaffold_balanced", ds.smiles, seed=split_seed)
    test = [ds.data_list[i] for i in split.test]
    alpha = run_model(result.model, test, ds.table.task, 64, "cpu")["alpha"]
    expected_cutoff = alpha @ np.asarray(result.model.cutoffs, dtype=np.float64)
    atoms = [d.num_nodes for d in test]
    return {
        "dataset": name,
        "split": split_seed,
        "gate": gate,
        "test_rmse": row["test"],
        "val_rmse": row["val"],
        **{k: row[k] for k in ("best_epoch", "epochs_run", "seconds")},
        "routing_vs_size": float(spearmanr(expected_cutoff, atoms).statistic),
    }


def render(runs: pd.DataFrame, command: str, notes: list[str]) -> str:
    """The markdown report: per-gate table, paired differences, per-run rows."""
    import torch

    lines = [
        "# Does the gate read topology, or only size?",
        "",
        f"- command: `{command}`",
        f"- date: {date.today().isoformat()}",
        f"- machine: {platform.platform()}, {os.cpu_count()} CPU cores, torch "
        f"{torch.__version__}, {'CUDA' if torch.cuda.is_available() else 'CPU only'}",
        "- model: MI-MoE(SchNet) sparse k=2 of 5, cutoffs 2.0-4.0 Å, CLI defaults without EMA;"
        " scaffold_balanced splits, split seed = run seed",
        "- mean ± sample std (ddof=1) over the splits; routing vs size = Spearman of the "
        "expected cutoff against the atom count on the test molecules",
        *(f"- {note}" for note in notes),
        "",
        "| dataset | gate | splits | test RMSE | routing vs size | epochs run | s per run |",
        "|---|---|---|---|---|---|---|",
    ]
    for (dataset, gate), part in runs.groupby(["dataset", "gate"], sort=False):
        lines.append(
            f"| {dataset} | {gate} | {len(part)} | {mean_std(part.test_rmse)} | "
            f"{mean_std(part.routing_vs_size)} | {part.epochs_run.mean():.0f} | "
            f"{part.seconds.mean():.0f} |"
        )
    lines += [
        "",
        "Paired by split: test RMSE of the ablation minus that of the topology gate (positive ="
        " the topology gate is better), and on how many splits the topology gate is better.",
        "",
        "| dataset | ablation | RMSE difference | topology gate better on |",
        "|---|---|---|---|",
    ]
    # positive = the topology gate is better: the ablation's RMSE is higher
    lines += paired_differences(runs, "gate", "mlp", GATES[1:], "test_rmse", "positive")
    lines += ["", "## Runs", "", *markdown_rows(runs)]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", default="freesolv,esol")
    parser.add_argument("--hidden", type=int, default=128)
    add_run_options(
        parser, RUNS / "gate_ablation", ROOT / "benchmarks/results/gate_ablation_cpu.md"
    )
    args = parser.parse_args(argv)
    args.work.mkdir(parents=True, exist_ok=True)
    datasets = args.datasets.split(",")
    runs = [
        (args.work / f"{name}_{s}_{gate}_e{args.epochs}_h{args.hidden}.json", run_one,
         (name, s, gate, args.epochs, args.hidden))
        for name in datasets for s in range(args.splits) for gate in GATES
    ]  # fmt: skip
    failures = run_all(runs, args, datasets, lambda row: (
            f"{row['dataset']} split {row['split']} {row['gate']}: test rmse "
            f"{row['test_rmse']:.3f} ({row['seconds']:.0f} s)"))  # fmt: skip
    table = pd.DataFrame(results(runs))
    table["gate"] = pd.Categorical(table.gate, GATES, ordered=True)
    table["dataset"] = pd.Categorical(table.dataset, datasets, ordered=True)
    table = table.sort_values(["dataset", "gate", "split"]).astype({"gate": str, "dataset": str})
    command = command_line(__file__, argv)
    text = render(table.reset_index(drop=True), command, [])
    write_report(args.out, text)
    return exit_status(failures)


if __name__ == "__main__":
    sys.exit(main())
