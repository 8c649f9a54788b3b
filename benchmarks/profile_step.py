"""Where a training step's time goes, and how often it makes the host wait for the device.

On a GPU the host queues kernels ahead of the device, so the cost of Python, dispatch and
launches hides behind the device's work, until an operation needs a value the device
computes: a size (``nonzero``, and so every boolean-mask index), a scalar (``.item()``,
``bool(tensor)``, ``int(tensor)``). There the host waits until the queue is empty, and the
device then waits while the host catches up. The issue-17 target of 10,000 QM9 molecules/s
on one GPU (about 100 microseconds a molecule) depends on how many such waits a step holds.

This script trains MI-MoE with the CLI defaults (``--backbone``, sparse Top-k routing, bf16
on CUDA) on the first ``--steps`` batches of ``--batch`` training molecules of ``--dataset``
(default Tox21; random split, seed 0): one epoch to warm up, one timed epoch without the
profiler (the rate), one epoch under ``torch.profiler``. It counts, per training step (inside
``TrainingRun._train_step``, not the batches' assembly), the operators that make the host
wait (:data:`HOST_WAITS`) and where in ``mimoe_core`` each was called (the innermost
function of the package, named with the line of its ``def``), and lists the
operators with the most self time (device time on CUDA, CPU time on the CPU). The counts are
what a GPU step would pay, with two differences on the CPU: a CPU kernel that reads a size
itself shows no operator (``bincount`` reads its input's maximum), and the fused AdamW's CPU
kernel reads each parameter's step count, which its CUDA kernel keeps on the device
(:data:`CPU_KERNEL_READS`, left out of the CPU count). On CUDA the report also counts the
waits themselves (:data:`DEVICE_WAITS`, the runtime's calls).

    python benchmarks/profile_step.py --out benchmarks/results/profile_step_cpu.md
    python benchmarks/profile_step.py --device cuda --batch 1024 --steps 4   # on a GPU

Featurizes the Tox21 rows it needs first (from the feature cache when warm).
"""

from __future__ import annotations

import argparse
import bisect
import math
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path

import torch
from _parallel_runs import report_header

#: Operators that read a device value on the host: on a GPU, each waits for the queue to empty.
#: Boolean-mask indexing appears as its ``nonzero``; ``.item()``, ``bool()`` and ``int()`` of a
#: tensor as ``_local_scalar_dense``.
HOST_WAITS = (
    "aten::_local_scalar_dense",
    "aten::nonzero",
    "aten::_unique2",
    "aten::unique_consecutive",
    "aten::unique_dim",
)
#: Operators whose CPU kernel reads values on the host where the CUDA kernel does not: the
#: fused AdamW reads each parameter's step count on the CPU, on the device on a GPU.
CPU_KERNEL_READS = ("aten::_fused_adamw_", "aten::_fused_adam_")
#: CUDA runtime calls that block the host until the device is done (CUDA profiles only).
DEVICE_WAITS = ("cudaStreamSynchronize", "cudaDeviceSynchronize", "cudaEventSynchronize")
#: The range each training step is recorded in.
STEP_RANGE = "mimoe::train_step"
PACKAGE = "mimoe_core"


def build_run(args: argparse.Namespace):
    """A ``TrainingRun`` on the first ``steps * batch`` training molecules of ``dataset``."""
    from mimoe_core.data import load_dataset, make_split
    from mimoe_core.featurization import featurize
    from mimoe_core.training import TrainSettings
    from mimoe_core.training.trainer import TrainingRun

    molecules = args.steps * args.batch
    rows = math.ceil(molecules / 0.8) + 50  # the random split keeps 80 % for training
    data = featurize(load_dataset(args.dataset, limit=rows), progress=False, n_jobs=args.jobs)
    split = make_split("random", data.smiles, seed=0)
    settings = TrainSettings(seed=0, progress=False, batch_size=args.batch, device=args.device)
    run = TrainingRun(data, split, {"backbone": args.backbone}, settings)
    if len(run.train_list) < molecules:
        raise SystemExit(
            f"{args.dataset} has {len(run.train_list)} training molecules in its first {rows} "
            f"rows, fewer than --steps x --batch = {molecules}"
        )
    run.train_list = run.train_list[:molecules]
    return run


def record_steps(run) -> None:
    """Wrap each of ``run``'s training steps in the profiler range :data:`STEP_RANGE`."""
    step = run._train_step

    def recorded(*args, **kwargs):
        with torch.profiler.record_function(STEP_RANGE):
            return step(*args, **kwargs)

    run._train_step = recorded


def step_windows(events) -> list[tuple[float, float]]:
    """The (start, end) microseconds of every :data:`STEP_RANGE`, sorted."""
    return sorted((e.time_range.start, e.time_range.end) for e in events if e.name == STEP_RANGE)


def in_windows(start: float, windows: list[tuple[float, float]]) -> bool:
    """Whether ``start`` falls in one of the sorted, disjoint ``windows``.

    By time, not by the parent range: on a GPU, autograd runs the backward pass's operators
    in a thread of its own, outside the range the step's thread opened.

    Example:
        >>> [in_windows(t, [(0, 10), (20, 30)]) for t in (5, 15, 20, 31)]
        [True, False, True, False]
    """
    at = bisect.bisect_right(windows, (start, math.inf)) - 1
    return at >= 0 and windows[at][0] <= start <= windows[at][1]


def callers(event) -> list[str]:
    """The names of the ranges ``event`` ran in, innermost first: operators, and with
    ``with_stack`` the Python functions as ``path(line): name``."""
    names = []
    parent = event.cpu_parent
    while parent is not None:
        names.append(parent.name)
        parent = parent.cpu_parent
    return names


def call_site(frames: list[str]) -> str:
    """The innermost of ``frames`` in this package, as ``module.py(line): function``.

    Example:
        >>> call_site(["torch/nn/modules/module.py(1779): _call_impl",
        ...            "/x/mimoe_core/models/mimoe.py(363): _expert_embeddings"])
        'models/mimoe.py(363): _expert_embeddings'
        >>> call_site(["torch/autograd/__init__.py(354): backward"])
        'outside mimoe_core'
    """
    marker = f"{PACKAGE}/"
    for frame in frames:
        if marker in frame:
            return frame.split(marker, 1)[1]
    return f"outside {PACKAGE}"


def _self_time(event, on_device: bool) -> float:
    """Microseconds of the event's self time: on the device (CUDA) or the CPU."""
    if not on_device:
        return event.self_cpu_time_total
    for name in ("self_device_time_total", "self_cuda_time_total"):  # newer torch, older
        if hasattr(event, name):
            return getattr(event, name)
    return 0.0


def summarize(events, steps: int, on_device: bool) -> dict:
    """Per-step host waits (by operator and by call site) and self time by operator, from
    the profiler's function events of ``steps`` training steps."""
    waits_by_op: Counter = Counter()
    waits_by_site: Counter = Counter()
    self_time: defaultdict[str, float] = defaultdict(float)
    calls: Counter = Counter()
    device_waits = cpu_kernel_reads = 0
    windows = step_windows(events)
    for event in events:
        if event.name == STEP_RANGE or not in_windows(event.time_range.start, windows):
            continue
        if event.name in DEVICE_WAITS:
            device_waits += 1
            continue
        self_time[event.name] += _self_time(event, on_device)
        calls[event.name] += 1
        if event.name in HOST_WAITS:
            frames = callers(event)
            if on_device or not set(CPU_KERNEL_READS) & set(frames):
                waits_by_op[event.name] += 1
                waits_by_site[call_site(frames)] += 1
            else:
                cpu_kernel_reads += 1
    return {
        "waits": sum(waits_by_op.values()) / steps,
        "device_waits": device_waits / steps,
        "cpu_kernel_reads": cpu_kernel_reads / steps,
        "waits_by_op": {k: v / steps for k, v in waits_by_op.most_common()},
        "waits_by_site": {k: v / steps for k, v in waits_by_site.most_common()},
        "self_ms": {k: v / 1000 / steps for k, v in self_time.items()},
        "calls": {k: v / steps for k, v in calls.items()},
    }


def profile_run(run, steps: int) -> dict:
    """Warm up, time an epoch, then profile one: the rate and :func:`summarize`'s figures.

    ``run`` is a ``TrainingRun`` whose training list holds ``steps`` batches.
    """
    record_steps(run)
    on_device = run.device.type == "cuda"
    run.train_epoch(0)  # warm-up: allocator, caches, first-call costs
    if on_device:
        torch.cuda.synchronize(run.device)
    start = time.perf_counter()
    run.train_epoch(1)
    if on_device:
        torch.cuda.synchronize(run.device)
    seconds = time.perf_counter() - start
    activities = [torch.profiler.ProfilerActivity.CPU]
    if on_device:
        activities.append(torch.profiler.ProfilerActivity.CUDA)
    with torch.profiler.profile(activities=activities, with_stack=True) as prof:
        run.train_epoch(2)
        if on_device:
            torch.cuda.synchronize(run.device)
    summary = summarize(prof.events(), steps, on_device)
    summary.update(
        device=str(run.device),
        amp=run.use_amp,
        per_second=len(run.train_list) / seconds,
        step_ms=seconds * 1000 / steps,
        on_device=on_device,
        threads=torch.get_num_threads(),
        gpu=torch.cuda.get_device_name(run.device) if on_device else None,
    )
    return summary


def render(summary: dict, args: argparse.Namespace, header: list[str], top: int = 15) -> str:
    """The markdown report."""
    where = "device (CUDA)" if summary["on_device"] else "CPU"
    lines = [
        *header,
        f"- device: {summary['device']}"
        + (f" ({summary['gpu']})" if summary["gpu"] else f", {summary['threads']} threads")
        + f", bf16 autocast {'on' if summary['amp'] else 'off'}",
        f"- MI-MoE({args.backbone}), CLI defaults (sparse Top-k); {args.steps} steps of "
        f"{args.batch} {args.dataset} training molecules; one warm-up epoch, one timed "
        "epoch, one profiled epoch",
        "",
        f"Timed without the profiler: {summary['step_ms']:.1f} ms a step, "
        f"{summary['per_second']:.1f} molecules/s.",
        "",
        f"**Host waits per training step: {summary['waits']:.1f}** (operators that read a "
        "device value on the host; on a GPU each empties the queue; the same count on the CPU).",
        "",
        "| operator | per step |",
        "|---|---|",
        *(f"| `{op}` | {n:.1f} |" for op, n in summary["waits_by_op"].items()),
        "",
        *(
            [
                f"CUDA runtime calls that blocked the host ({', '.join(DEVICE_WAITS)}): "
                f"{summary['device_waits']:.1f} per step.",
                "",
            ]
            if summary["on_device"]
            else [
                "On the CPU, a kernel that reads a size itself (`bincount`) shows no operator, "
                "so this is a lower bound of a GPU step's waits. Not counted: "
                f"{summary['cpu_kernel_reads']:.1f} reads per step inside "
                f"{', '.join(f'`{op}`' for op in CPU_KERNEL_READS)}, whose CPU kernel reads "
                "each parameter's step count on the host (the CUDA kernel, on the device).",
                "",
            ]
        ),
        "| called from | per step |",
        "|---|---|",
        *(f"| `{site}` | {n:.1f} |" for site, n in summary["waits_by_site"].items()),
        "",
        f"The {top} operators with the most self time on the {where}, per step:",
        "",
        "| operator | ms | calls |",
        "|---|---|---|",
    ]
    ranked = sorted(summary["self_ms"].items(), key=lambda item: -item[1])[:top]
    lines += [f"| `{op}` | {ms:.2f} | {summary['calls'][op]:.0f} |" for op, ms in ranked]
    total = sum(summary["self_ms"].values())
    lines += ["", f"All operators' self time: {total:.1f} ms a step (under the profiler).", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="tox21")
    parser.add_argument("--backbone", default="schnet")
    parser.add_argument("--batch", type=int, default=256, help="molecules per step")
    parser.add_argument("--steps", type=int, default=4, help="steps per epoch")
    parser.add_argument("--device", default="cpu", help="cpu, cuda or auto")
    parser.add_argument("--jobs", type=int, default=2, help="featurization processes")
    parser.add_argument("--out", type=Path, default=None, help="also write the report here")
    args = parser.parse_args(argv)
    if args.batch < 1 or args.steps < 1:
        parser.error("--batch and --steps must be at least 1")
    summary = profile_run(build_run(args), args.steps)
    header = report_header("A training step: host waits and time by operator", __file__, argv)
    text = render(summary, args, header)
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
