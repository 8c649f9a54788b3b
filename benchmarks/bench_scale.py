"""How fast, and in how much memory, do featurization and training run as data and processes grow?

Every measurement is one ``mimoe`` command run as a subprocess (``torchrun`` for 2 ranks),
watched by a thread that sums the resident memory (RSS) of the process and all its children
every 0.1 s. Reported per step: wall time, molecules per second, peak RSS of the whole process
tree (all ranks and worker processes together) and, for featurization, the size on disk of
what it wrote.

1. Featurize the large dataset (``--large``, default Tox21, 7,831 rows; HIV with
   ``--hiv FILE``, a local copy of MoleculeNet's ``HIV.csv``) into a fresh cache on 1 and on 2
   worker processes; then, from the warm cache, in memory and streamed into shards.
2. Train one epoch on the large dataset: 1 process with 2 threads (the baseline), 1 process
   with 1 thread, 2 gloo ranks with 1 thread each (same global batch), 2 ranks reading
   the shards, and, as the machine's ceiling, two independent 1-thread trainings at once
   (their rates summed); then 1 process on 1 thread and 2 ranks at a larger global batch
   (``--larger-batch``, default 64), since the per-step work that does not shrink with the
   batch weighs more on 16 molecules per rank. The training rate is ``metrics.json``'s
   ``timing`` (training passes only).
3. QM9 at full size (DFT geometries: descriptors only) featurized on 2 processes and trained
   one epoch on 1 process (2 threads) and on 2 gloo ranks.
4. (``--parts standin``) HIV's size without HIV's file: the first 41,127 QM9 SMILES embedded
   by ETKDG + MMFF like any CSV, featurized on 2 processes and trained one epoch.

    python benchmarks/bench_scale.py                    # ~35 min on 2 CPU cores
    python benchmarks/bench_scale.py --parts standin --out benchmarks/results/scale_cpu_standin.md
    python benchmarks/bench_scale.py --large-limit 300 --qm9-limit 2000 --out /tmp/s.md  # smoke

Writes ``--out`` (default ``benchmarks/results/scale_cpu.md``) with command, machine and date.
Targets (issue 17): Tox21 training peak RSS <= 2 GB; HIV featurize + train <= 8 GB; 2 processes
>= 1.6x the 1-process training throughput on a 2-core machine; on one GPU, QM9 >= 10,000
molecules/s in training (sparse routing, bf16), which needs a GPU and is not run here.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from datetime import date
from pathlib import Path

import psutil
import torch
from _parallel_runs import command_line

ROOT = Path(__file__).resolve().parents[1]


def _tree_rss(proc: psutil.Process, pss: bool = False) -> int:
    """The tree's resident bytes: summed RSS (pages that forked processes share counted in
    each), or with ``pss`` the proportional set size (a shared page split among its users)."""
    total = 0
    for p in [proc, *proc.children(recursive=True)]:
        try:
            total += p.memory_full_info().pss if pss else p.memory_info().rss
        except psutil.Error:
            pass
    return total


def measure(command: list[str], env: dict[str, str], log: Path) -> dict:
    """Run ``command``; its wall seconds, peak tree RSS (bytes) and exit code."""
    return measure_together([command], env, [log])


def measure_together(
    commands: list[list[str]], env: dict[str, str], logs: list[Path], pss: bool = False
) -> dict:
    """Start every command at once and wait for all: the wall seconds until the last ends,
    the peak RSS (or PSS, see :func:`_tree_rss`) of all their process trees together (bytes)
    and the exit code (0)."""
    start = time.perf_counter()
    outs = [log.open("w") for log in logs]
    procs = [
        subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env)
        for command, out in zip(commands, outs, strict=True)
    ]
    watched, peak, done = [psutil.Process(p.pid) for p in procs], [0], threading.Event()

    def watch() -> None:
        while not done.is_set():
            total = 0
            for proc in watched:
                try:
                    total += _tree_rss(proc, pss)
                except psutil.Error:
                    pass
            peak[0] = max(peak[0], total)
            time.sleep(0.1)

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    codes = [proc.wait() for proc in procs]
    done.set()
    thread.join()
    for out in outs:
        out.close()
    for command, code, log in zip(commands, codes, logs, strict=True):
        if code != 0:
            raise RuntimeError(
                f"{' '.join(command)} failed ({code}); see {log}:\n{log.read_text()[-3000:]}"
            )
    return {"seconds": time.perf_counter() - start, "peak_rss": peak[0], "code": 0}


def _env(cache: Path, threads: int) -> dict[str, str]:
    return {**os.environ, "MIMOE_CACHE_DIR": str(cache), "OMP_NUM_THREADS": str(threads)}


def _mimoe(*args: str) -> list[str]:
    return [sys.executable, "-m", "mimoe_core", *args]


def _torchrun(nproc: int, *args: str) -> list[str]:
    return [sys.executable, "-m", "torch.distributed.run", "--standalone",
            "--nproc-per-node", str(nproc), "-m", "mimoe_core", *args]  # fmt: skip


def _size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def _kept(report: Path) -> int:
    return int(json.loads((report / "summary.json").read_text())["kept"])


def _source(args: argparse.Namespace) -> tuple[str, list[str]]:
    if args.hiv:
        return "HIV (local file)", ["--data", str(args.hiv), "--target-cols", "HIV_active",
                                    "--task", "classification"]  # fmt: skip
    return args.large, ["--dataset", args.large]


def featurize_step(work: Path, step: str, args: list[str], cache: Path, jobs: int,
                   written: Path | None) -> dict:  # fmt: skip
    """One ``mimoe featurize`` into ``work/report_<step>``: its row of the table."""
    report = work / f"report_{step}"
    command = _mimoe("featurize", *args, "--out", str(report), "--jobs", str(jobs), "--quiet")
    found = measure(command, _env(cache, 1), work / f"featurize_{step}.log")
    n = _kept(report)
    disk = _size(written) if written is not None else None
    return {"processes": jobs, "molecules": n, "per_second": n / found["seconds"], **found,
            "disk": disk}  # fmt: skip


def featurize_rows(work: Path, name: str, source: list[str], limit: list[str]) -> list[dict]:
    rows = []
    for jobs in (1, 2):
        cache = work / f"cache_{jobs}"
        row = featurize_step(work, str(jobs), [*source, *limit], cache, jobs, cache)
        rows.append({"step": f"featurize {name}, cold cache", **row})
    warm, shards = work / "cache_2", work / "shards"
    row = featurize_step(work, "warm", [*source, *limit], warm, 2, None)
    rows.append({"step": f"featurize {name}, warm cache, in memory", **row})
    into = [*source, *limit, "--shards", str(shards), "--shard-size", "2048"]
    row = featurize_step(work, "shards", into, warm, 2, shards)
    rows.append({"step": f"featurize {name}, warm cache, into shards", **row})
    return rows


#: The case whose rate the ceiling (two independent 1-thread trainings) is compared with.
ONE_THREAD = "1 process, 1 thread"


def train_rows(work: Path, name: str, source: list[str], limit: list[str], cache: Path,
               shards: Path | None, epochs: int, only: tuple[int, ...] = (0, 1, 2, 3),
               ceiling: bool = True, larger_batch: int | None = None
               ) -> list[dict]:  # fmt: skip
    """One training epoch per case (:func:`measure`) at the CLI's batch size; with
    ``ceiling``, also :func:`independent_pair_row`; with ``larger_batch``, 1 process on 1
    thread and 2 gloo ranks again at that global batch. Ratios: against the first case, and
    against the 1-process 1-thread run of the same batch size."""
    common = ["--epochs", str(epochs), "--device", "cpu", "--split", "random", "--quiet",
              "--patience", "100"]  # fmt: skip
    cases = [
        ("1 process, 2 threads (baseline)", 2, _mimoe("train", *source, *limit, *common)),
        (ONE_THREAD, 1, _mimoe("train", *source, *limit, *common)),
        ("2 gloo ranks, 1 thread each", 1, _torchrun(2, "train", *source, *limit, *common)),
    ]
    if shards is not None:
        cases.append(("2 gloo ranks, from shards", 1,
                      _torchrun(2, "train", "--shards", str(shards), *common)))  # fmt: skip
    chosen = [case for i, case in enumerate(cases) if i in only]
    if larger_batch:
        wide = [*common, "--batch-size", str(larger_batch)]
        chosen += [
            (f"1 process, 1 thread, global batch {larger_batch}", 1,
             _mimoe("train", *source, *limit, *wide)),
            (f"2 gloo ranks, 1 thread each, global batch {larger_batch} "
             f"({larger_batch // 2} per rank)", 1, _torchrun(2, "train", *source, *limit, *wide)),
        ]  # fmt: skip
    rows = []
    for i, (label, threads, command) in enumerate(chosen):
        run = work / f"train_{name}_{i}"
        found = measure(
            [*command, "--out", str(run)], _env(cache, threads), work / f"{run.name}.log"
        )
        metrics = json.loads((run / "metrics.json").read_text())
        rows.append({"step": f"train {name}, {label}", "processes": metrics["world_size"],
                     "molecules": metrics["n_train"],
                     "per_second": metrics["timing"]["train_molecules_per_second"], **found,
                     "disk": None, "batch": metrics["settings"]["batch_size"]})  # fmt: skip
        if ceiling and label == ONE_THREAD:  # the ceiling beside its own baseline
            pair = independent_pair_row(work, name, command, cache)
            rows.append({**pair, "batch": metrics["settings"]["batch_size"]})
    base = rows[0]["per_second"]
    one_thread = {r["batch"]: r["per_second"] for r in rows
                  if "1 thread" in r["step"] and r["processes"] == 1}  # fmt: skip
    for row in rows:
        row["vs_baseline"] = row["per_second"] / base
        if row["batch"] in one_thread:
            row["vs_one_thread"] = row["per_second"] / one_thread[row["batch"]]
    return rows


def independent_pair_row(work: Path, name: str, command: list[str], cache: Path) -> dict:
    """Two independent 1-thread trainings at once, each on the whole training set, with no
    communication: the throughput two processes can reach on this machine at all (shared
    caches, memory bandwidth, the host's scheduling), the ceiling for 2 DDP ranks."""
    runs = [work / f"train_{name}_independent_{k}" for k in (0, 1)]
    found = measure_together(
        [[*command, "--out", str(run)] for run in runs],
        _env(cache, 1),
        [work / f"{run.name}.log" for run in runs],
    )
    metrics = [json.loads((run / "metrics.json").read_text()) for run in runs]
    return {"step": f"train {name}, 2 independent processes at once, 1 thread each (no "
                    "communication: this machine's ceiling for 2 ranks)",
            "processes": 2, "molecules": sum(m["n_train"] for m in metrics),
            "per_second": sum(m["timing"]["train_molecules_per_second"] for m in metrics),
            **found, "disk": None}  # fmt: skip


def standin_rows(work: Path, n: int, epochs: int) -> list[dict]:
    """HIV-sized, without HIV: the first ``n`` QM9 SMILES, embedded by ETKDG + MMFF like any CSV."""
    from mimoe_core.data import load_qm9

    table = load_qm9(limit=n)
    csv = work / "qm9_smiles.csv"
    csv.write_text(
        "smiles,gap\n"
        + "".join(f"{x.smiles},{y[0]}\n" for x, y in zip(table.inputs, table.targets, strict=True))
    )
    source = ["--data", str(csv), "--target-cols", "gap"]
    cache = work / "cache_standin"
    name = f"{n:,} QM9 SMILES (HIV-sized)"
    rows = [{"step": f"featurize {name}, cold cache",
             **featurize_step(work, "standin", source, cache, 2, cache)}]  # fmt: skip
    rows += train_rows(work, "standin", source, [], cache, None, epochs, only=(0, 2), ceiling=False)
    for row in rows[1:]:
        row["step"] = row["step"].replace("train standin", f"train {name}")
    return rows


def render(rows: list[dict], command: str, notes: list[str]) -> str:
    cpu = platform.processor() or platform.machine()
    lines = [
        "# Scale-out: featurization and training throughput and memory",
        "",
        f"Command: `{command}`  ",
        f"Machine: {os.cpu_count()} CPU cores ({cpu}), "
        f"{psutil.virtual_memory().total / 2**30:.0f} GiB RAM, no GPU; torch {torch.__version__}, "
        f"Python {platform.python_version()}  ",
        f"Date: {date.today().isoformat()}",
        "",
        "Peak RSS is the whole process tree (every rank and worker together), sampled every "
        "0.1 s. Training rates count the training passes only (`metrics.json` `timing`); the "
        "wall time also includes start-up, reading the cache, validation and the final "
        "evaluation. One run per row (no seeds to spread over).",
        "",
        "The training baseline is one process with 2 threads (both cores); `vs 1 thread` "
        "compares with one process on one core at the same global batch size.",
        "",
        "| step | processes | molecules | molecules/s | vs baseline | vs 1 thread | wall s "
        "| peak RSS GiB | on disk MiB |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        ratio = f"{r['vs_baseline']:.2f}x" if "vs_baseline" in r else ""
        one = f"{r['vs_one_thread']:.2f}x" if "vs_one_thread" in r else ""
        disk = f"{r['disk'] / 2**20:.1f}" if r.get("disk") else ""
        lines.append(
            f"| {r['step']} | {r['processes']} | {r['molecules']} | {r['per_second']:.1f} "
            f"| {ratio} | {one} | {r['seconds']:.1f} | {r['peak_rss'] / 2**30:.2f} | {disk} |"
        )
    return "\n".join([*lines, "", *notes, ""])


def qm9_rows(work: Path, qm9_limit: int | None, epochs: int) -> list[dict]:
    """QM9 at full size (or ``qm9_limit`` rows): featurized on 2 processes, then one epoch on
    1 process and on 2 gloo ranks."""
    qlimit = ["--limit", str(qm9_limit)] if qm9_limit else []
    qcache = work / "cache_qm9"
    row = featurize_step(work, "qm9", ["--dataset", "qm9", *qlimit], qcache, 2, qcache)
    rows = [{"step": "featurize QM9 (DFT geometries), cold cache", **row}]
    return rows + train_rows(work, "QM9", ["--dataset", "qm9"], qlimit, qcache, None, epochs,
                             only=(0, 2), ceiling=False)  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--large", default="tox21", help="bundled dataset for steps 1-2")
    parser.add_argument("--hiv", type=Path, default=None, help="a local HIV.csv (MoleculeNet)")
    parser.add_argument("--large-limit", type=int, default=None)
    parser.add_argument("--qm9-limit", type=int, default=None)
    parser.add_argument(
        "--parts",
        type=lambda text: text.split(","),
        default=["large", "qm9"],
        help="comma-separated: large (steps 1-2), train (step 2 alone, on the cache and shards "
        "of an earlier --work), qm9 (step 3), standin (default large,qm9)",
    )
    parser.add_argument(
        "--standin",
        type=int,
        default=41127,
        metavar="N",
        help="part standin: featurize (ETKDG) and train on the first N QM9 SMILES, HIV's size "
        "(41,127) without HIV's file",
    )
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument(
        "--larger-batch",
        type=int,
        default=64,
        help="step 2: also train 1 process and 2 ranks at this global batch (0: not)",
    )
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/scale_cpu.md")
    parser.add_argument("--work", type=Path, default=None, help="scratch folder (default: temp)")
    args = parser.parse_args(argv)
    work = args.work or Path(tempfile.mkdtemp(prefix="bench_scale_"))
    work.mkdir(parents=True, exist_ok=True)
    command = command_line(__file__, argv)
    notes = []
    if args.hiv is None and "large" in args.parts:
        notes.append(
            "HIV (41,127 rows) is not bundled and MoleculeNet's server is not reachable from "
            "this machine, so its rows are missing; Tox21 stands in as the large set. Rerun with "
            "`--hiv HIV.csv` where the file is at hand (`mimoe_core.data.download` fetches it)."
        )
    if {"qm9", "standin"} & set(args.parts) and importlib.util.find_spec("qm9pack") is None:
        parser.error("parts qm9 and standin read QM9: pip install 'mimoe[qm9]'")
    name, source = _source(args)
    limit = ["--limit", str(args.large_limit)] if args.large_limit else []
    rows: list[dict] = []
    failed = []

    def part(label: str, measure) -> None:
        """Run one part; a command that fails ends that part, not the rows measured so far."""
        try:
            rows.extend(measure())
        except RuntimeError as err:
            failed.append(label)
            said = " ".join(str(err).split())  # the command, then its log's end: the reason
            said = said if len(said) <= 700 else f"{said[:300]} ... {said[-400:]}"
            notes.append(f"**Part {label} failed**, its rows are missing: {said}")

    if "large" in args.parts:
        part("large (featurization)", lambda: featurize_rows(work, name, source, limit))
    if "large" in args.parts or "train" in args.parts:  # train alone: reuse --work's cache
        part("train", lambda: train_rows(
            work, name, source, limit, work / "cache_2", work / "shards", args.epochs,
            larger_batch=args.larger_batch,
        ))  # fmt: skip
    if "standin" in args.parts:
        part("standin", lambda: standin_rows(work, args.standin, args.epochs))
    if "qm9" in args.parts:
        part("qm9", lambda: qm9_rows(work, args.qm9_limit, args.epochs))
    notes.append(
        "Not measured here: NCCL on GPUs and the QM9 GPU throughput target (>= 10,000 "
        "molecules/s with bf16): no GPU was lent to this session."
    )
    text = render(rows, command, notes)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    print(text)
    if args.work is None:
        shutil.rmtree(work, ignore_errors=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
