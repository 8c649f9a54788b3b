"""The paper's open questions, measured: which gate for which backbone (question 4).

Issue 18 asks four questions; this script measures the ones whose options exist:

- **Q4, gate x backbone**: MI-MoE sparse k=2 of 5 with the ``mlp`` and ``transformer`` gates
  on SchNet and PaiNN experts, on FreeSolv (RMSE) and BACE (ROC-AUC), on the same scaffold
  splits (``scaffold_balanced``, seeds 0..S-1; the split seed is the run seed), CLI defaults
  otherwise (width 128, 100 epochs, patience 20, batch 32).

Questions 1-3 (``--learnable-cutoffs``, ``--conformers M``, ``--shared-trunk``) are not
implemented yet; the report says so. Mean ± sample std (ddof=1) over the splits, and the
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


def render_gate_backbone(table: pd.DataFrame, datasets: list[str]) -> list[str]:
    """Q4's tables: metric per (dataset, backbone, gate), and the paired gate difference."""
    lines = [
        "## Q4: which gate for which backbone",
        "",
        "| dataset | metric | backbone | mlp gate | transformer gate | transformer - mlp, "
        "paired | splits | s per run |",
        "|---|---|---|---|---|---|---|---|",
    ]
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
    run_all(runs, args, datasets, lambda row: (
            f"{row['dataset']} split {row['split']} {row['backbone']} {row['gate']}: test "
            f"{row['metric']} {row['test']:.3f} ({row['seconds']:.0f} s)"))  # fmt: skip
    table = pd.DataFrame(results(runs))

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
        "- Q1 learnable cutoffs, Q2 conformer ensembles, Q3 shared trunk: not implemented "
        "yet, so not measured",
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
