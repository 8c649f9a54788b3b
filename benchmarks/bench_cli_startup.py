"""How long ``mimoe train --help`` takes, against the parser as it was when it imported torch.

Each round starts, one after the other, a fresh ``python -m mimoe_core train --help`` and a
fresh interpreter that imports ``mimoe_core.models`` (torch, PyG) before building the same
parser and printing the same help: what the command line did until the model names moved to
``mimoe_core.constants``. Wall seconds of each process, median and range over ``--rounds``,
and the ratio of the medians, both measured in the same run:

    python benchmarks/bench_cli_startup.py --out benchmarks/results/cli_startup_cpu.md
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

from _parallel_runs import report_header, write_report

CASES = {
    "`mimoe train --help`": [sys.executable, "-m", "mimoe_core", "train", "--help"],
    "the same help after importing the models (as before)": [
        sys.executable,
        "-c",
        "import mimoe_core.models\n"
        "from mimoe_core.cli import build_parser\n"
        "build_parser().parse_args(['train', '--help'])",
    ],
}


def _seconds(command: list[str]) -> float:
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - start
    if done.returncode != 0 or "usage: mimoe train" not in done.stdout:
        raise RuntimeError(f"{command[-1]!r} did not print the help: {done.stderr[-2000:]}")
    return seconds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/cli_startup_cpu.md"))
    args = parser.parse_args(argv)
    times: dict[str, list[float]] = {name: [] for name in CASES}
    for _ in range(args.rounds):  # interleaved, so a slow moment of the machine hits both
        for name, command in CASES.items():
            times[name].append(_seconds(command))
    baseline = statistics.median(times[list(CASES)[1]])
    lines = [
        *report_header("`mimoe train --help`: start-up without torch", __file__, argv),
        f"- wall seconds of a fresh process, {args.rounds} interleaved rounds",
        "",
        "| what | median s | range s | / before |",
        "|---|---|---|---|",
    ]
    for name, values in times.items():
        median = statistics.median(values)
        lines.append(
            f"| {name} | {median:.2f} | {min(values):.2f}-{max(values):.2f} "
            f"| {median / baseline:.3f} |"
        )
    write_report(args.out, "\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
