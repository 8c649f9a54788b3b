"""Where a training-loss spike comes from: every training step of the first epochs of one
accuracy run, with its loss and the largest |output| of the batch.

The full-size accuracy runs keep only each epoch's mean loss. Single-scale PaiNN on BACE
split 1 had a mean epoch-1 loss of tens of thousands (a BCE loss is ~0.7 at the start); this
replays that training eagerly (no ``--compile``), with the benchmark's settings, and prints
the epochs' mean losses and the steps whose batch had an output above ``--threshold``:

    python benchmarks/diagnose_loss_spike.py --out benchmarks/results/loss_spike_cpu.md
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
from pathlib import Path

import torch
from _parallel_runs import command_line, featurized, write_report
from bench_accuracy import MODELS, model_config


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="bace")
    parser.add_argument("--split", type=int, default=1, help="scaffold_balanced seed = run seed")
    parser.add_argument("--model", default="single-scale PaiNN", choices=list(MODELS))
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--threshold", type=float, default=50.0, help="|output| to list")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/loss_spike_cpu.md"))
    args = parser.parse_args(argv)

    from mimoe_core.data import make_split
    from mimoe_core.training import TrainSettings, train, trainer

    torch.set_num_threads(1)
    steps: list[tuple[int, float, float, int]] = []  # step, loss, max |output|, molecules
    masked_loss = trainer.masked_loss

    def recorded(out, target, mask, task, *rest):
        loss = masked_loss(out, target, mask, task, *rest)
        steps.append((len(steps), float(loss.detach()), float(out.detach().abs().max()), len(out)))
        return loss

    trainer.masked_loss = recorded
    ds = featurized(args.dataset)
    split = make_split("scaffold_balanced", ds.smiles, seed=args.split)
    settings = TrainSettings(
        seed=args.split, progress=False, device="cpu", epochs=args.epochs, patience=args.epochs
    )
    result = train(ds, split, model_config(args.model, "full"), settings)
    per_epoch = len(steps) // args.epochs
    lines = [
        f"# Training-loss spike: {args.model}, {args.dataset} split {args.split}, eager",
        "",
        f"- command: `{command_line(__file__, argv)}`",
        f"- date: {datetime.date.today()}",
        f"- machine: {platform.platform()}, {os.cpu_count()} CPU cores, 1 thread, torch "
        f"{torch.__version__}",
        f"- the accuracy benchmark's settings (CLI defaults, `{args.model}`), {args.epochs} "
        f"epochs, {per_epoch} training steps per epoch",
        "",
        "| epoch | mean training loss |",
        "|---|---|",
        *(f"| {int(r.epoch)} | {r.loss:.4f} |" for r in result.history.itertuples()),
        "",
        f"Steps whose batch had an output with |value| > {args.threshold:g} (step counted over "
        "the run; loss: the batch's mean):",
        "",
        "| step | epoch | loss | max abs output | molecules |",
        "|---|---|---|---|---|",
        *(
            f"| {step} | {step // per_epoch} | {loss:.4g} | {top:.4g} | {n} |"
            for step, loss, top, n in steps
            if top > args.threshold
        ),
    ]
    write_report(args.out, "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
