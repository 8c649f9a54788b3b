"""The paper's open questions, measured: learnable cutoffs (Q1) and gate x backbone (Q4).

Issue 18 asks four questions; this script measures the ones whose options exist:

- **Q1, learnable cutoffs**: MI-MoE(SchNet) sparse k=2 with ``learnable_cutoffs`` (starting
  at the default 2.0-4.0 Å, bounds 1-6 Å, ramp 0.5 Å), with the cutoffs held at the start,
  learned at the model's learning rate and at 20 times it, against the same model with fixed
  cutoffs (the default; its runs are Q4's SchNet + MLP runs), on the same splits: test
  metric, paired differences, the cutoffs at the end, and time per epoch.
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
import time
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
from _parallel_runs import (
    add_run_options,
    featurized,
    markdown_rows,
    mean_std,
    results,
    run_all,
    run_pending,
    train_on_split,
    write_report,
)

ROOT = Path(__file__).resolve().parents[1]
BACKBONES = ("schnet", "painn")
GATES = ("mlp", "transformer")
METRIC = {"freesolv": "rmse", "bace": "roc_auc"}


def mixture(backbone: str = "schnet", gate: str = "mlp", **overrides) -> dict:
    """The config every question starts from: MI-MoE sparse k=2 of 5, CLI defaults otherwise."""
    config = {"backbone": backbone, "variant": "sparse", "top_k": 2, "gate": {"name": gate}}
    return {**config, **overrides}


def gate_backbone_run(name: str, split_seed: int, backbone: str, gate: str, epochs: int) -> dict:
    """Train one MI-MoE(backbone) with ``gate`` on one split; runs in a worker process."""
    config = mixture(backbone, gate)
    _, row = train_on_split(name, split_seed, config, METRIC[name], epochs=epochs)
    return {"question": "gate_backbone", "backbone": backbone, "gate": gate,
            "metric": METRIC[name], **row}  # fmt: skip


LEARNABLE = {"enabled": True, "lower": 1.0, "upper": 6.0, "ramp": 0.5}
#: Q1's learnable-cutoff variants: name -> the cutoffs' learning-rate scale. "held" keeps
#: them at the start (scale 0): the same model (6 Å bases, edge ramp) with fixed cutoffs, so
#: that "learnable - held" is what learning the cutoffs does.
CUTOFF_VARIANTS = {"held": 0.0, "learnable": 1.0, "learnable x20": 20.0}


def learnable_cutoffs_run(name: str, split_seed: int, epochs: int, variant: str) -> dict:
    """Train MI-MoE(SchNet) with learnable cutoffs on one split; runs in a worker process."""
    config = mixture(learnable_cutoffs=LEARNABLE)
    scale = CUTOFF_VARIANTS[variant]
    result, row = train_on_split(
        name, split_seed, config, METRIC[name], epochs=epochs, cutoff_lr_scale=scale
    )
    learned = result.metrics["model"]["learned_cutoffs"]
    return {"question": "learnable_cutoffs", "backbone": "schnet", "gate": "mlp",
            "cutoffs": variant, "metric": METRIC[name],
            "learned_cutoffs": " ".join(f"{c:.3f}" for c in learned), **row}  # fmt: skip


def render_learnable_cutoffs(table: pd.DataFrame, datasets: list[str]) -> list[str]:
    """Q1's table: each cutoff variant against fixed cutoffs per dataset, paired by split."""
    lines = [
        "## Q1: learnable cutoffs",
        "",
        "MI-MoE(SchNet), sparse k=2 of 5, MLP gate, all starting at the default cutoffs 2.0, "
        "2.5, 3.0, 3.5, 4.0 Å. **fixed**: the default model. The learnable-cutoff model "
        "(bounds 1-6 Å, ramp 0.5 Å) differs from it in two ways: every expert's radial basis "
        "and envelope span 0-6 Å (the neighbour search runs at 6 Å), and its cutoffs can "
        "move. **held**: that model with the cutoffs held at the start (cutoff learning rate "
        "0), which separates the two. **learnable**: the cutoffs at the model's learning rate; "
        "**learnable x20**: at 20 times it. Paired differences are against fixed, and against "
        "held.",
        "",
        "| dataset | metric | cutoffs | test | - fixed, paired | - held, paired | splits | "
        "cutoffs at the end (Å, mean over splits) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name in datasets:
        fixed = table[(table.dataset == name) & (table.question == "gate_backbone")
                      & (table.backbone == "schnet") & (table.gate == "mlp")]  # fmt: skip
        mine = table[(table.dataset == name) & (table.question == "learnable_cutoffs")]
        if fixed.empty:
            lines.append(f"| {name} | {METRIC[name]} | fixed | not run | | | 0 | |")
            continue
        base = fixed.set_index("split").test
        lines.append(
            f"| {name} | {METRIC[name]} | fixed | {mean_std(base)} | | | {len(base)} | "
            "2.00, 2.50, 3.00, 3.50, 4.00 |"
        )
        held = mine[mine.cutoffs == "held"].set_index("split").test
        for variant in CUTOFF_VARIANTS:
            part = mine[mine.cutoffs == variant]
            if part.empty:
                lines.append(f"| {name} | {METRIC[name]} | {variant} | not run | | | 0 | |")
                continue
            test = part.set_index("split").test
            vs_fixed = (test - base).dropna()
            vs_held = (test - held).dropna() if variant != "held" else []
            cutoffs = np.array([[float(c) for c in row.split()] for row in part.learned_cutoffs])
            shown = ", ".join(f"{c:.2f}" for c in cutoffs.mean(axis=0))
            lines.append(
                f"| {name} | {METRIC[name]} | {variant} | {mean_std(test)} | "
                f"{mean_std(vs_fixed) if len(vs_fixed) else ''} | "
                f"{mean_std(vs_held) if len(vs_held) else ''} | {len(test)} | {shown} |"
            )
    return lines


def q1_epoch_cost(name: str, repeats: int = 3) -> dict:
    """Seconds per training epoch, fixed against learnable cutoffs, timed in one process.

    The two models alternate epoch by epoch (after one warm-up epoch each) on split 0 with
    one thread, so both see the same machine load; the medians and their ratio are reported.
    """
    import torch

    from mimoe_core.data import make_split
    from mimoe_core.training import TrainSettings
    from mimoe_core.training.trainer import TrainingRun

    torch.set_num_threads(1)
    ds = featurized(name)
    split = make_split("scaffold_balanced", ds.smiles, seed=0)
    configs = {"fixed": mixture(), "learnable": mixture(learnable_cutoffs=LEARNABLE)}
    settings = TrainSettings(seed=0, progress=False, device="cpu")
    trainers = {k: TrainingRun(ds, split, c, settings) for k, c in configs.items()}
    times: dict[str, list[float]] = {k: [] for k in configs}
    for epoch in range(repeats + 1):
        for key, trainer in trainers.items():
            start = time.perf_counter()
            trainer.train_epoch(epoch)
            if epoch > 0:  # the first epoch warms up allocations and caches
                times[key].append(time.perf_counter() - start)
    median = {k: float(np.median(v)) for k, v in times.items()}
    return {"question": "learnable_cutoffs_cost", "dataset": name, "repeats": repeats,
            "fixed_s_per_epoch": median["fixed"], "learnable_s_per_epoch": median["learnable"],
            "ratio": median["learnable"] / median["fixed"]}  # fmt: skip


def render_epoch_cost(costs: list[dict]) -> list[str]:
    """Q1's cost table: seconds per training epoch, timed side by side."""
    lines = [
        "Cost: seconds per training epoch (median of 3, split 0, one thread, the two models "
        "alternating epoch by epoch in one process so that both see the same load).",
        "",
        "| dataset | fixed, s per epoch | learnable, s per epoch | learnable / fixed |",
        "|---|---|---|---|",
    ]
    for c in costs:
        lines.append(
            f"| {c['dataset']} | {c['fixed_s_per_epoch']:.2f} | {c['learnable_s_per_epoch']:.2f} "
            f"| {c['ratio']:.2f} |"
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


def _slug(variant: str) -> str:
    """A file-name part: ``"learnable x20"`` -> ``"learnable_x20"``."""
    return variant.replace(" ", "_")


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
        (args.work / f"q1_{name}_{s}_{_slug(variant)}_e{args.epochs}.json",
         learnable_cutoffs_run, (name, s, args.epochs, variant))
        for name in datasets for s in range(args.splits) for variant in CUTOFF_VARIANTS
    ]  # fmt: skip
    run_all(runs, args, datasets, lambda row: (
            f"{row['dataset']} split {row['split']} {row['question']} {row['backbone']} "
            f"{row['gate']} {row.get('cutoffs', '')}: test {row['metric']} {row['test']:.3f} "
            f"({row['seconds']:.0f} s)"))  # fmt: skip
    costs = [(args.work / f"q1_cost_{name}.json", q1_epoch_cost, (name,)) for name in datasets]
    if not args.report_only:
        run_pending(costs, 1, lambda row: f"{row['dataset']} Q1 epoch cost: {row['ratio']:.2f}x")
    table = pd.DataFrame(results(runs))
    if table.empty:
        parser.error(f"no finished runs in {args.work} to report")
    for column in ("cutoffs", "learned_cutoffs"):  # only Q1's rows have them
        table[column] = table[column].fillna("") if column in table else ""

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
        f"- runs finished: {len(table)} of {len(runs)} (a rerun continues the rest; tables "
        "count the splits each row has)",
        "- Q2 conformer ensembles, Q3 shared trunk: not implemented yet, so not measured",
        "",
        *render_learnable_cutoffs(table, datasets),
        "",
        *render_epoch_cost(results(costs)),
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
