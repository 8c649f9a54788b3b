"""The paper's open questions, measured: learnable cutoffs (Q1) and gate x backbone (Q4).

Issue 18 asks four questions; this script measures the ones whose options exist:

- **Q1, learnable cutoffs**: MI-MoE(SchNet) sparse k=2 with ``learnable_cutoffs`` (starting
  at the default 2.0-4.0 Å, bounds 1-6 Å, ramp 0.5 Å) against the same model with fixed
  cutoffs (the default; its runs are Q4's SchNet + MLP runs), on the same splits: test
  metric, the paired difference, the learned cutoffs, and time per run.
- **Q4, gate x backbone**: MI-MoE sparse k=2 of 5 with the ``mlp`` and ``transformer`` gates
  on SchNet and PaiNN experts, on FreeSolv (RMSE) and BACE (ROC-AUC), on the same scaffold
  splits (``scaffold_balanced``, seeds 0..S-1; the split seed is the run seed), CLI defaults
  otherwise (width 128, 100 epochs, patience 20, batch 32).

Questions 2 and 3 (``--conformers M``, ``--shared-trunk``) are not implemented yet; the
report says so. Mean ± sample std (ddof=1) over the splits, and the
paired difference between the gates per backbone and split.

    python benchmarks/bench_open_questions.py --datasets freesolv     # ~30 min on 2 cores
    python benchmarks/bench_open_questions.py --datasets freesolv --splits 2 --epochs 2 \\
        --work /tmp/oq --out /tmp/oq.md                               # smoke

Runs go to ``--work`` (one JSON per finished run; a rerun skips them). ``--jobs`` trainings
run at once, one thread each. Writes ``--out`` (default
``benchmarks/results/open_questions_cpu.md``).
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
    add_run_options,
    markdown_rows,
    mean_std,
    results,
    run_all,
    train_on_split,
    write_report,
)

ROOT = Path(__file__).resolve().parents[1]
BACKBONES = ("schnet", "painn")
GATES = ("mlp", "transformer")
METRIC = {"freesolv": "rmse", "bace": "roc_auc"}


def gate_backbone_run(name: str, split_seed: int, backbone: str, gate: str, epochs: int) -> dict:
    """Train one MI-MoE(backbone) with ``gate`` on one split; runs in a worker process."""
    config = {"backbone": backbone, "variant": "sparse", "top_k": 2, "gate": {"name": gate}}
    _, row = train_on_split(name, split_seed, config, METRIC[name], epochs=epochs)
    return {"question": "gate_backbone", "backbone": backbone, "gate": gate,
            "metric": METRIC[name], **row}  # fmt: skip


LEARNABLE = {"enabled": True, "lower": 1.0, "upper": 6.0, "ramp": 0.5}


def learnable_cutoffs_run(name: str, split_seed: int, epochs: int) -> dict:
    """Train MI-MoE(SchNet) with learnable cutoffs on one split; runs in a worker process."""
    config = {"backbone": "schnet", "variant": "sparse", "top_k": 2, "gate": {"name": "mlp"},
              "learnable_cutoffs": LEARNABLE}  # fmt: skip
    result, row = train_on_split(name, split_seed, config, METRIC[name], epochs=epochs)
    learned = result.metrics["model"]["learned_cutoffs"]
    return {"question": "learnable_cutoffs", "backbone": "schnet", "gate": "mlp",
            "metric": METRIC[name], "learned_cutoffs": " ".join(f"{c:.3f}" for c in learned),
            **row}  # fmt: skip


def render_learnable_cutoffs(table: pd.DataFrame, datasets: list[str]) -> list[str]:
    """Q1's table: fixed against learnable cutoffs per dataset, paired by split."""
    lines = [
        "## Q1: learnable cutoffs",
        "",
        "MI-MoE(SchNet), sparse k=2 of 5, MLP gate. Fixed: the default cutoffs 2.0, 2.5, "
        "3.0, 3.5, 4.0 Å. Learnable: the same starting values, bounds 1-6 Å (the neighbour "
        "search runs at 6 Å), ramp 0.5 Å.",
        "",
        "| dataset | metric | fixed cutoffs | learnable cutoffs | learnable - fixed, paired "
        "| splits | learned cutoffs (Å, mean over splits) | s per run, fixed | s per run, "
        "learnable |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name in datasets:
        fixed = table[(table.dataset == name) & (table.question == "gate_backbone")
                      & (table.backbone == "schnet") & (table.gate == "mlp")]  # fmt: skip
        learned = table[(table.dataset == name) & (table.question == "learnable_cutoffs")]
        if learned.empty or fixed.empty:
            lines.append(f"| {name} | {METRIC[name]} | not run | not run | | 0 | | | |")
            continue
        a, b = fixed.set_index("split").test, learned.set_index("split").test
        paired = (b - a).dropna()
        cutoffs = np.array([[float(c) for c in row.split()] for row in learned.learned_cutoffs])
        shown = ", ".join(f"{c:.2f}" for c in cutoffs.mean(axis=0))
        lines.append(
            f"| {name} | {METRIC[name]} | {mean_std(a)} | {mean_std(b)} | "
            f"{mean_std(paired) if len(paired) else ''} | {len(paired)} | {shown} | "
            f"{fixed.seconds.mean():.0f} | {learned.seconds.mean():.0f} |"
        )
    return lines


def render_gate_backbone(table: pd.DataFrame, datasets: list[str]) -> list[str]:
    """Q4's tables: metric per (dataset, backbone, gate), and the paired gate difference."""
    lines = [
        "## Q4: which gate for which backbone",
        "",
        "| dataset | metric | backbone | mlp gate | transformer gate | transformer - mlp, "
        "paired | splits | s per run |",
        "|---|---|---|---|---|---|---|---|",
    ]
    table = table[table.question == "gate_backbone"]
    for name in datasets:
        for backbone in BACKBONES:
            part = table[(table.dataset == name) & (table.backbone == backbone)]
            if part.empty:
                lines.append(f"| {name} | {METRIC[name]} | {backbone} | not run | | | 0 | |")
                continue
            wide = part.pivot(index="split", columns="gate", values="test")
            cells = [mean_std(wide[g].dropna()) if g in wide else "not run" for g in GATES]
            diff = (wide["transformer"] - wide["mlp"]).dropna() if set(GATES) <= set(wide) else (
                pd.Series(dtype=float))  # fmt: skip
            paired = mean_std(diff) if len(diff) else ""
            lines.append(
                f"| {name} | {METRIC[name]} | {backbone} | {cells[0]} | {cells[1]} | {paired} | "
                f"{len(wide)} | {part.seconds.mean():.0f} |"
            )
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", default="freesolv,bace")
    add_run_options(
        parser, ROOT / ".bench_open_questions", ROOT / "benchmarks/results/open_questions_cpu.md"
    )
    args = parser.parse_args(argv)
    datasets = args.datasets.split(",")
    unknown = sorted(set(datasets) - set(METRIC))
    if unknown:
        parser.error(f"--datasets: {unknown} not among {sorted(METRIC)}")
    runs = [
        (args.work / f"q4_{name}_{s}_{backbone}_{gate}_e{args.epochs}.json", gate_backbone_run,
         (name, s, backbone, gate, args.epochs))
        for name in datasets for s in range(args.splits) for backbone in BACKBONES
        for gate in GATES
    ]  # fmt: skip
    runs += [
        (args.work / f"q1_{name}_{s}_learnable_e{args.epochs}.json", learnable_cutoffs_run,
         (name, s, args.epochs))
        for name in datasets for s in range(args.splits)
    ]  # fmt: skip
    run_all(runs, args, datasets, lambda row: (
            f"{row['dataset']} split {row['split']} {row['question']} {row['backbone']} "
            f"{row['gate']}: test {row['metric']} {row['test']:.3f} "
            f"({row['seconds']:.0f} s)"))  # fmt: skip
    table = pd.DataFrame(results(runs))
    if "learned_cutoffs" in table:  # only Q1's rows have them
        table["learned_cutoffs"] = table["learned_cutoffs"].fillna("")

    import torch

    command = "python benchmarks/bench_open_questions.py " + " ".join(
        argv if argv is not None else sys.argv[1:]
    )
    lines = [
        "# The paper's open questions, measured",
        "",
        f"- command: `{command.strip()}`",
        f"- date: {date.today().isoformat()}",
        f"- machine: {platform.platform()}, {os.cpu_count()} CPU cores, torch "
        f"{torch.__version__}, {'CUDA' if torch.cuda.is_available() else 'CPU only'}",
        f"- {args.splits} scaffold_balanced splits (split seed = run seed), {args.epochs} "
        "epochs (patience 20), CLI defaults otherwise; mean ± sample std (ddof=1) over the "
        "splits; RMSE: lower is better, ROC-AUC: higher is better",
        "- Q2 conformer ensembles, Q3 shared trunk: not implemented yet, so not measured",
        "",
        *render_learnable_cutoffs(table, datasets),
        "",
        *render_gate_backbone(table, datasets),
        "",
        "## Runs",
        "",
        *markdown_rows(table),
    ]
    text = "\n".join(lines) + "\n"
    write_report(args.out, text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
