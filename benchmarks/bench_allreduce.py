"""What DDP's gradient all-reduce costs against a training step, on 2 gloo ranks.

Each of 2 ranks (one thread each) times forward and backward of MI-MoE(SchNet) (the CLI
defaults) on its own half of a global batch of ``--batch`` molecules of ``--dataset`` (drawn at
random, seed 0), then times a gloo all-reduce of as many float32 values as the model has
parameters, once as one flat tensor and once in DDP's default 25 MB buckets. Medians over
``--repeats``; the figure that matters is the ratio of the all-reduce to the step, both
measured in the same run:

    python benchmarks/bench_allreduce.py --out benchmarks/results/allreduce_cpu.md

It starts its own 2 ranks (``torchrun --standalone --nproc-per-node 2``).
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

BUCKET_BYTES = 25 * 1024 * 1024  # DDP's default bucket_cap_mb


def _median_seconds(fn, repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def rank_main(args: argparse.Namespace) -> None:
    """One rank: its step time, then the all-reduce times; rank 0 writes the report."""
    import torch
    import torch.distributed as dist
    from _parallel_runs import command_line, featurized, write_report
    from torch_geometric.data import Batch

    from mimoe_core.models.registry import create_model

    torch.set_num_threads(1)
    dist.init_process_group("gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    torch.manual_seed(0)
    model = create_model({"backbone": "schnet", "variant": "sparse", "top_k": 2})
    molecules = featurized(args.dataset, limit=args.batch).data_list
    mine = Batch.from_data_list(molecules[rank::world])

    def step() -> None:
        model.zero_grad(set_to_none=True)
        out = model.forward_batch(mine)
        (out.y.pow(2).mean() + out.aux_loss).backward()

    step_s = _median_seconds(step, args.repeats)
    params = sum(p.numel() for p in model.parameters())
    flat = torch.randn(params)
    buckets = list(flat.split(BUCKET_BYTES // 4))
    dist.barrier()
    flat_s = _median_seconds(lambda: dist.all_reduce(flat), args.repeats)
    bucket_s = _median_seconds(lambda: [dist.all_reduce(b) for b in buckets], args.repeats)
    steps = [torch.zeros(1) for _ in range(world)]
    dist.all_gather(steps, torch.tensor([step_s]))
    if rank == 0:
        slowest = max(float(s) for s in steps)
        lines = [
            "# DDP's gradient all-reduce against a training step (2 gloo ranks)",
            "",
            f"- command: `{command_line(__file__, args.argv)}`",
            f"- date: {datetime.date.today()}",
            f"- machine: {platform.platform()}, {os.cpu_count()} CPU cores, 1 thread per "
            f"rank, torch {torch.__version__}",
            f"- MI-MoE(SchNet), CLI defaults: {params:,} parameters; {len(molecules)} "
            f"molecules of {args.dataset} drawn at random (seed 0), {len(molecules) // world} "
            f"per rank; medians of {args.repeats} after a warm-up",
            "",
            "| what | ms | / slowest rank's step |",
            "|---|---|---|",
            *(
                f"| {what} | {1e3 * s:.1f} | {s / slowest:.3f} |"
                for what, s in (
                    ("forward + backward, slowest rank", slowest),
                    ("all-reduce, one flat tensor", flat_s),
                    (f"all-reduce, {len(buckets)} bucket(s) of up to 25 MB", bucket_s),
                )
            ),
        ]
        write_report(args.out, "\n".join(lines) + "\n")
    dist.destroy_process_group()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="bace")
    parser.add_argument("--batch", type=int, default=32, help="global batch, split over ranks")
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/allreduce_cpu.md"))
    args = parser.parse_args(argv)
    args.argv = argv
    if "RANK" in os.environ:
        rank_main(args)
        return 0
    given = sys.argv[1:] if argv is None else argv
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
    command = [*launcher, "--nproc-per-node", "2", __file__, *given]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run(command, env=env).returncode


if __name__ == "__main__":
    sys.exit(main())
