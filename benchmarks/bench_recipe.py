"""Which recipe? Weight averaging, learning-rate warmup and atom attributes against the defaults.

MI-MoE(SchNet), sparse k=2 of 5, at full dataset size with the CLI defaults (width 128, 100
epochs, patience 20, batch 32, plateau schedule) and one change at a time, on the same
scaffold splits (``scaffold_balanced``, seeds 0..S-1; the split seed is the run seed):

- ``default``: the defaults;
- ``ema``: validation, early stopping and the kept model use a moving average of the
  weights (``--ema 0.999``);
- ``warmup``: the learning rate rises linearly over the first 5 epochs (``--warmup-epochs 5``);
- ``ema+warmup``: both;
- ``atom attributes``: experts also embed the chemical atom attributes
  (``--atom-attributes``: hybridization, aromaticity, charge, hydrogens, ring, R/S).

Per run: test and validation RMSE at the best validation epoch, the best epoch, epochs run,
seconds. The table is mean ± sample std (ddof=1) over the splits, and the paired difference
to ``default`` per split (negative = the change helps).

    python benchmarks/bench_recipe.py                    # ~1 h on 2 CPU cores
    python benchmarks/bench_recipe.py --datasets freesolv --splits 2 --epochs 3 \\
        --work /tmp/r --out /tmp/r.md                    # smoke

Runs go to ``--work`` (one JSON per finished run, so an interrupted benchmark continues);
``--jobs`` trainings run at once, one thread each. Writes ``--out`` (default
``benchmarks/results/recipe_cpu.md``).
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
    RUNS,
    add_run_options,
    command_line,
    exit_status,
    markdown_rows,
    mean_std,
    paired_differences,
    results,
    run_all,
    train_on_split,
    write_report,
)

ROOT = Path(__file__).resolve().parents[1]
# name: (model config over the defaults, TrainSettings fields over the defaults)
RECIPES = {
    "default": ({}, {}),
    "ema": ({}, {"ema_decay": 0.999}),
    "warmup": ({}, {"warmup_epochs": 5}),
    "ema+warmup": ({}, {"ema_decay": 0.999, "warmup_epochs": 5}),
    "atom attributes": ({"atom_attributes": True}, {}),
}


def run_one(name: str, split_seed: int, recipe: str, epochs: int) -> dict:
    """Train one (dataset, split, recipe); runs in a worker process."""
    config, settings = RECIPES[recipe]
    config = {"backbone": "schnet", "variant": "sparse", "top_k": 2, **config}
    _, row = train_on_split(name, split_seed, config, epochs=epochs, **settings)
    return {"recipe": recipe, **row}


def render(runs: pd.DataFrame, command: str) -> str:
    """The markdown report: per-recipe table, paired differences, per-run rows."""
    import torch

    lines = [
        "# Which recipe: weight averaging, learning-rate warmup, atom attributes",
        "",
        f"- command: `{command}`",
        f"- date: {date.today().isoformat()}",
        f"- machine: {platform.platform()}, {os.cpu_count()} CPU cores, torch "
        f"{torch.__version__}, {'CUDA' if torch.cuda.is_available() else 'CPU only'}",
        "- model: MI-MoE(SchNet) sparse k=2 of 5, CLI defaults without EMA otherwise (`default`: "
        "no EMA, the defaults until 2026-12-02); scaffold_balanced "
        "splits, split seed = run seed",
        "- mean ± sample std (ddof=1) over the splits",
        "",
        "| dataset | recipe | splits | test RMSE | val RMSE | best epoch | epochs run | "
        "s per run |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for (dataset, recipe), part in runs.groupby(["dataset", "recipe"], sort=False):
        lines.append(
            f"| {dataset} | {recipe} | {len(part)} | {mean_std(part.test)} | "
            f"{mean_std(part.val)} | {part.best_epoch.mean():.0f} | "
            f"{part.epochs_run.mean():.0f} | {part.seconds.mean():.0f} |"
        )
    lines += [
        "",
        "Paired by split: test RMSE of the recipe minus that of `default` (negative = the "
        "change helps), and on how many splits it helps.",
        "",
        "| dataset | recipe | RMSE difference | helps on |",
        "|---|---|---|---|",
    ]
    lines += paired_differences(runs, "recipe", "default", list(RECIPES)[1:], "test", "negative")
    lines += ["", "## Runs", "", *markdown_rows(runs)]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", default="freesolv,esol")
    add_run_options(parser, RUNS / "recipe", ROOT / "benchmarks/results/recipe_cpu.md")
    args = parser.parse_args(argv)
    args.work.mkdir(parents=True, exist_ok=True)
    datasets = args.datasets.split(",")
    runs = [
        (args.work / f"{name}_{s}_{recipe.replace(' ', '_')}_e{args.epochs}.json", run_one,
         (name, s, recipe, args.epochs))
        for name in datasets for s in range(args.splits) for recipe in RECIPES
    ]  # fmt: skip
    failures = run_all(runs, args, datasets, lambda row: (
            f"{row['dataset']} split {row['split']} {row['recipe']}: test rmse "
            f"{row['test']:.3f} ({row['seconds']:.0f} s)"))  # fmt: skip
    table = pd.DataFrame(results(runs))
    if table.empty:
        print("no finished run yet; nothing to report")
        return 1
    for column, order in (("recipe", list(RECIPES)), ("dataset", datasets)):
        table[column] = pd.Categorical(table[column], order, ordered=True)
    table = table.sort_values(["dataset", "recipe", "split"]).astype(
        {"recipe": str, "dataset": str}
    )
    command = command_line(__file__, argv)
    text = render(table.reset_index(drop=True), command)
    write_report(args.out, text)
    return exit_status(failures)


if __name__ == "__main__":
    sys.exit(main())
