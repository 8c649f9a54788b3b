"""An A/B of one ``mimoe train`` command between two checkouts of this repository.

Each round runs the command once with ``old``'s ``mimoe_core`` and once with ``new``'s (in
alternating order, so that a slow spell of the machine hits both), as ``--ranks`` gloo
processes under ``torchrun`` (or one process), one thread each, with the same feature cache.
It reports each run's training rate (``metrics.json`` ``timing``), the medians, and the
ratio new / old paired within each round:

    git worktree add /tmp/old <commit>
    python benchmarks/ab_trees.py --old /tmp/old --new . --ranks 2 --rounds 3 \\
        --out benchmarks/results/NAME.md -- --shards DIR --epochs 1 --split random

The arguments after ``--`` are those of ``mimoe train`` (``--out``, ``--device cpu`` and
``--quiet`` are added); give paths in them as absolute paths, since each run starts in its
checkout (the working directory comes first on the module path).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from _parallel_runs import report_header, write_report


def _git_commit(tree: Path) -> str:
    done = subprocess.run(
        ["git", "-C", str(tree), "log", "-1", "--format=%h %s"],
        capture_output=True,
        text=True,
        check=False,
    )
    return done.stdout.strip()[:100] or "not a git checkout"


def _check_imported_from(tree: Path) -> None:
    """Raise unless a run started as :func:`_rate` starts one imports ``tree``'s package."""
    environment = {**os.environ, "PYTHONPATH": str(tree.resolve())}
    done = subprocess.run(
        [sys.executable, "-c", "import mimoe_core; print(mimoe_core.__file__)"],
        capture_output=True, text=True, env=environment, cwd=tree, check=False,
    )  # fmt: skip
    if not done.stdout.strip().startswith(str(tree.resolve())):
        raise RuntimeError(f"{tree}: mimoe_core is imported from {done.stdout.strip()!r}")


def _rate(tree: Path, ranks: int, train_args: list[str], out: Path) -> float:
    """Training molecules/s of one run of ``mimoe train`` with ``tree``'s package."""
    launch = (
        ["-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(ranks)]
        if ranks > 1
        else []
    )
    command = [sys.executable, *launch, "-m", "mimoe_core", "train", *train_args,
               "--device", "cpu", "--quiet", "--out", str(out)]  # fmt: skip
    environment = {**os.environ, "PYTHONPATH": str(tree.resolve()), "OMP_NUM_THREADS": "1"}
    # From inside the tree: the working directory comes first on the path of `python -m`.
    done = subprocess.run(
        command, capture_output=True, text=True, env=environment, cwd=tree, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"{tree}: mimoe train failed: {done.stderr[-2000:]}")
    metrics = json.loads((out / "metrics.json").read_text())
    return float(metrics["timing"]["train_molecules_per_second"])


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    split = argv.index("--") if "--" in argv else len(argv)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--old", type=Path, required=True, help="the baseline checkout")
    parser.add_argument("--new", type=Path, required=True, help="the checkout compared with it")
    parser.add_argument("--ranks", type=int, default=2, help="processes (torchrun if > 1)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", type=Path, required=True, help="the markdown report")
    args = parser.parse_args(argv[:split])
    train_args = argv[split + 1 :]
    trees = {"old": args.old, "new": args.new}
    for tree in trees.values():
        _check_imported_from(tree)
    rates: dict[str, list[float]] = {"old": [], "new": []}
    with tempfile.TemporaryDirectory() as scratch:
        for round_ in range(args.rounds):
            order = ("old", "new") if round_ % 2 == 0 else ("new", "old")
            for name in order:
                run = Path(scratch) / f"{name}_{round_}"
                rates[name].append(_rate(trees[name], args.ranks, train_args, run))
    paired = [new / old for old, new in zip(rates["old"], rates["new"], strict=True)]
    lines = [
        *report_header("A/B of `mimoe train` between two checkouts", __file__, argv),
        f"- old: `{args.old}` at {_git_commit(args.old)}",
        f"- new: `{args.new}` at {_git_commit(args.new)}",
        f"- {args.ranks} process(es), one thread each, {args.rounds} rounds, the order "
        "alternating; training molecules/s from each run's `metrics.json`",
        "",
        "| round | old | new | new / old |",
        "|---|---|---|---|",
    ]
    for k, (old, new, ratio) in enumerate(zip(rates["old"], rates["new"], paired, strict=True)):
        lines.append(f"| {k} | {old:.1f} | {new:.1f} | {ratio:.3f} |")
    lines.append(
        f"| median | {statistics.median(rates['old']):.1f} | "
        f"{statistics.median(rates['new']):.1f} | {statistics.median(paired):.3f} |"
    )
    write_report(args.out, "\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
