"""The paper's open questions, measured: cutoffs, conformers, shared trunk, gates (Q1-Q4).

Issue 18 asks four questions; this script measures each against today's default:

- **Q1, learnable cutoffs**: MI-MoE(SchNet) sparse k=2 with ``learnable_cutoffs`` (starting
  at the default 2.0-4.0 Å, bounds 1-6 Å, ramp 0.5 Å), with the cutoffs held at the start,
  learned at the model's learning rate and at 20 times it, against the same model with fixed
  cutoffs (the default; its runs are Q4's SchNet + MLP runs), on the same splits: test
  metric, paired differences, the cutoffs at the end, and time per epoch.
- **Q2, conformer ensembles** (``--conformers M``): MI-MoE(SchNet) sparse k=2 trained on
  M = 5 conformers per molecule (one drawn per epoch), predicting their average, with the
  spread over the conformers as its uncertainty (``--uncertainty conformers``, conformal
  calibration), against one conformer (Q4's SchNet + MLP runs) on the same splits; and the
  cost of featurizing M = 1, 3, 5 (seconds and cache size, fresh caches, one process).
- **Q3, shared trunk** (``shared_trunk``, memory-lean experts): peak memory (each
  configuration in a fresh process), seconds per training step and per epoch (the schemes
  side by side in one process), and parameters, for MI-MoE(DimeNet++) and MI-MoE(ViSNet)
  at hidden 128 (dense, and sparse k=2 of 5): independent experts against experts that
  share the embedding and their first block, the trunk on the largest graph (4 Å) or on the
  smallest (2 Å); and the accuracy of MI-MoE(SchNet) sparse k=2 with either trunk against
  independent experts (Q4's SchNet + MLP runs) on the same splits.
- **Q4, gate x backbone**: MI-MoE sparse k=2 of 5 with the ``mlp`` and ``transformer`` gates
  on SchNet and PaiNN experts, on FreeSolv (RMSE) and BACE (ROC-AUC), on the same scaffold
  splits (``scaffold_balanced``, seeds 0..S-1; the split seed is the run seed), CLI defaults
  otherwise (width 128, 100 epochs, patience 20, batch 32).

Mean ± sample std (ddof=1) over the splits, and paired differences per split.

    python benchmarks/bench_open_questions.py --datasets freesolv     # ~1 h on 2 cores
    python benchmarks/bench_open_questions.py --questions 3           # one question (and
                                                                      # its baseline runs)
    python benchmarks/bench_open_questions.py --datasets freesolv --splits 2 --epochs 2 \\
        --cost-steps 1 --work /tmp/oq --out /tmp/oq.md                # smoke

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
from _memory import PeakMemory
from _parallel_runs import (
    EARLIER_DEFAULTS,
    RUNS,
    add_run_options,
    command_line,
    exit_status,
    featurized,
    markdown_rows,
    mean_std,
    origin_notes,
    results,
    run_all,
    run_pending,
    train_on_split,
    write_report,
)
from _timing import epochs_side_by_side

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = ROOT / "benchmarks/results/open_questions_cpu.md"
BACKBONES = ("schnet", "painn")
GATES = ("mlp", "transformer")
METRIC = {"freesolv": "rmse", "bace": "roc_auc"}


def mixture(backbone: str = "schnet", gate: str = "mlp", **overrides) -> dict:
    """The config every question starts from: MI-MoE sparse k=2 of 5, CLI defaults otherwise."""
    config = {"backbone": backbone, "variant": "sparse", "top_k": 2, "gate": {"name": gate}}
    return {**config, **overrides}


def baseline_runs(table: pd.DataFrame, name: str) -> pd.DataFrame:
    """The default model's runs on ``name``: Q4's SchNet + MLP, the baseline of Q1-Q3."""
    return table[(table.dataset == name) & (table.question == "gate_backbone")
                 & (table.backbone == "schnet") & (table.gate == "mlp")]  # fmt: skip


def training_options(args: argparse.Namespace) -> dict:
    """The TrainSettings fields every training run of this benchmark takes from the
    command line: ``--epochs``, and ``--compile`` where given."""
    return {"epochs": args.epochs, **({"compile": True} if args.compile else {})}


def gate_backbone_run(name: str, split_seed: int, backbone: str, gate: str, train: dict) -> dict:
    """Train one MI-MoE(backbone) with ``gate`` on one split; runs in a worker process.
    ``train``: TrainSettings fields (:func:`training_options`), as in every run here."""
    config = mixture(backbone, gate)
    _, row = train_on_split(name, split_seed, config, METRIC[name], **train)
    return {"question": "gate_backbone", "backbone": backbone, "gate": gate,
            "metric": METRIC[name], **row}  # fmt: skip


LEARNABLE = {"enabled": True, "lower": 1.0, "upper": 6.0, "ramp": 0.5}
#: Q1's learnable-cutoff variants: name -> the cutoffs' learning-rate scale. "held" keeps
#: them at the start (scale 0): the same model (6 Å bases, edge ramp) with fixed cutoffs, so
#: that "learnable - held" is what learning the cutoffs does.
CUTOFF_VARIANTS = {"held": 0.0, "learnable": 1.0, "learnable x20": 20.0}


def learnable_cutoffs_run(name: str, split_seed: int, train: dict, variant: str) -> dict:
    """Train MI-MoE(SchNet) with learnable cutoffs on one split; runs in a worker process."""
    config = mixture(learnable_cutoffs=LEARNABLE)
    scale = CUTOFF_VARIANTS[variant]
    result, row = train_on_split(
        name, split_seed, config, METRIC[name], **train, cutoff_lr_scale=scale
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
        fixed = baseline_runs(table, name)
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


def q1_epoch_cost(name: str, repeats: int = 9) -> dict:
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
    settings = TrainSettings(seed=0, progress=False, device="cpu", **EARLIER_DEFAULTS)
    trainers = {k: TrainingRun(ds, split, c, settings) for k, c in configs.items()}
    median, usage = epochs_side_by_side(trainers, repeats)[:2]
    return {"question": "learnable_cutoffs_cost", "dataset": name, "repeats": repeats,
            "fixed_s_per_epoch": median["fixed"], "learnable_s_per_epoch": median["learnable"],
            "ratio": median["learnable"] / median["fixed"], "fixed_usage": usage["fixed"],
            "learnable_usage": usage["learnable"]}  # fmt: skip


def render_epoch_cost(costs: list[dict]) -> list[str]:
    """Q1's cost table: seconds per training epoch, timed side by side."""
    lines = [
        "Cost: seconds per training epoch (median over the epochs timed, split 0, one thread, "
        "the two models taking turns epoch by epoch in one process so that both see the same "
        "load).",
        "",
        "An epoch's time depends on which experts the gate picks (a larger cutoff reads more "
        "edges), and the two gates learn to route differently: the share of molecules each "
        "expert received (smallest cutoff first) is beside the time.",
        "",
        "| dataset | fixed, s per epoch | learnable, s per epoch | learnable / fixed "
        "| epochs timed | fixed, share per expert | learnable, share per expert |",
        "|---|---|---|---|---|---|---|",
    ]
    for c in costs:
        shares = [
            " ".join(f"{u:.2f}" for u in c[key]) if key in c else ""
            for key in ("fixed_usage", "learnable_usage")
        ]
        lines.append(
            f"| {c['dataset']} | {c['fixed_s_per_epoch']:.2f} | {c['learnable_s_per_epoch']:.2f} "
            f"| {c['ratio']:.2f} | {c['repeats']} | {shares[0]} | {shares[1]} |"
        )
    return lines


#: Q2: conformers per molecule of the ensemble runs, and the sizes whose cost is measured.
ENSEMBLE = 5
ENSEMBLE_COST_SIZES = (1, 3, 5)


def conformer_ensemble_run(name: str, split_seed: int, train: dict) -> dict:
    """Train MI-MoE(SchNet) on M conformers per molecule; runs in a worker process."""
    result, row = train_on_split(
        name, split_seed, mixture(), METRIC[name], conformers=ENSEMBLE, **train,
        uncertainty="conformers",
    )  # fmt: skip
    unc = result.metrics["uncertainty"]["test"]
    return {"question": "conformers", "backbone": "schnet", "gate": "mlp",
            "conformers": ENSEMBLE, "metric": METRIC[name],
            "spread_spearman": unc.get("spearman"), "coverage": unc.get("coverage"),
            **row}  # fmt: skip


def q2_featurize_cost(name: str, limit: int) -> dict:
    """Seconds and cache bytes of featurizing ``limit`` molecules with M = 1, 3, 5.

    One process, one worker, each size into a fresh cache folder (nothing cached before).
    """
    import tempfile

    from mimoe_core.conformers import ConformerSettings
    from mimoe_core.data import load_dataset
    from mimoe_core.featurization import CACHE_FILE, featurize

    table = load_dataset(name, limit=limit)
    row = {"question": "conformers_cost", "dataset": name, "molecules": len(table)}
    for size in ENSEMBLE_COST_SIZES:
        with tempfile.TemporaryDirectory() as cache:
            start = time.perf_counter()
            ds = featurize(table, ConformerSettings(keep_conformers=size), cache_dir=cache,
                           n_jobs=1, progress=False)  # fmt: skip
            row[f"M={size}: seconds"] = time.perf_counter() - start
            row[f"M={size}: cache_bytes"] = (Path(cache) / CACHE_FILE).stat().st_size
            row[f"M={size}: kept"] = len(ds)
    return row


def render_conformers(table: pd.DataFrame, costs: list[dict], datasets: list[str]) -> list[str]:
    """Q2's tables: accuracy and spread of an M-conformer ensemble, then featurization cost."""
    lines = [
        "## Q2: conformer ensembles",
        "",
        f"MI-MoE(SchNet), sparse k=2 of 5, MLP gate. **1 conformer**: the default (Q4's SchNet "
        f"+ MLP runs). **{ENSEMBLE} conformers** (`--conformers {ENSEMBLE} --uncertainty "
        "conformers`): the 5 lowest-energy ETKDG/MMFF conformers per molecule; each epoch "
        "shows every training molecule one of them (seeded draw), and validation, test and "
        "prediction average over all five. The sample std over the five is the uncertainty: "
        "its Spearman correlation with the absolute test error, and the test coverage of its "
        "conformal 90 % interval.",
        "",
        "| dataset | metric | conformers | test | - 1 conformer, paired | spread-error Spearman "
        "| 90 % coverage | splits | s per run |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name in datasets:
        base = baseline_runs(table, name)
        mine = table[(table.dataset == name) & (table.question == "conformers")]
        for label, part in (("1", base), (str(ENSEMBLE), mine)):
            if part.empty:
                lines.append(f"| {name} | {METRIC[name]} | {label} | not run | | | | 0 | |")
                continue
            test = part.set_index("split").test
            paired = spearman = coverage = ""
            if part is mine:
                diff = (test - base.set_index("split").test).dropna()
                paired = mean_std(diff) if len(diff) else ""
                spearman = mean_std(part.spread_spearman.astype(float))
                coverage = mean_std(part.coverage.astype(float))
            lines.append(
                f"| {name} | {METRIC[name]} | {label} | {mean_std(test)} | {paired} | "
                f"{spearman} | {coverage} | {len(test)} | {part.seconds.mean():.0f} |"
            )
    lines += [
        "",
        "Cost of featurization: the first molecules of each dataset into a fresh cache "
        "(conformers and descriptor trajectories; one process, one worker), per M.",
        "",
        "| dataset | molecules | M | seconds | / M=1 | cache MiB | / M=1 |",
        "|---|---|---|---|---|---|---|",
    ]
    for c in costs:
        one_s, one_b = c["M=1: seconds"], c["M=1: cache_bytes"]
        for size in ENSEMBLE_COST_SIZES:
            sec, size_b = c[f"M={size}: seconds"], c[f"M={size}: cache_bytes"]
            lines.append(
                f"| {c['dataset']} | {c['molecules']} | {size} | {sec:.1f} | {sec / one_s:.2f} "
                f"| {size_b / 2**20:.2f} | {size_b / one_b:.2f} |"
            )
    return lines


TRUNK = {"enabled": True, "layers": 1}
#: Q3's cost measurements: the backbones whose mixtures the paper could not fit, the two
#: ways a mixture runs its experts, and the experts compared: independent, a trunk on the
#: largest graph (4 Å, the issue's scheme), a trunk on the smallest (2 Å, cheaper to run).
LEAN_BACKBONES = ("dimenet++", "visnet")
LEAN_VARIANTS = ("dense", "sparse")
LEAN_EXPERTS = {"independent": None, "trunk at 4 Å": 4.0, "trunk at 2 Å": 2.0}


def shared_trunk_run(name: str, split_seed: int, train: dict, experts: str) -> dict:
    """Train MI-MoE(SchNet) with a shared trunk on one split; runs in a worker process."""
    config = mixture(shared_trunk={**TRUNK, "cutoff": LEAN_EXPERTS[experts]})
    _, row = train_on_split(name, split_seed, config, METRIC[name], **train)
    return {"question": "shared_trunk", "backbone": "schnet", "gate": "mlp",
            "experts": experts, "metric": METRIC[name], **row}  # fmt: skip


def _lean_trainer(
    name: str, backbone: str, variant: str, experts: str, steps: int, device: str = "cpu"
):
    """A training run of Q3's configuration on the first ``steps`` batches of split 0."""
    import dataclasses

    import torch

    from mimoe_core.data import make_split
    from mimoe_core.training import TrainSettings
    from mimoe_core.training.trainer import TrainingRun

    torch.set_num_threads(1)
    ds = featurized(name)
    split = make_split("scaffold_balanced", ds.smiles, seed=0)
    part = dataclasses.replace(split, train=split.train[: steps * LEAN_BATCH])
    config = mixture(backbone, variant=variant, expert={"hidden_channels": 128, "num_layers": 3})
    if LEAN_EXPERTS[experts] is not None:
        config["shared_trunk"] = {**TRUNK, "cutoff": LEAN_EXPERTS[experts]}
    settings = TrainSettings(
        seed=0, progress=False, device=device, batch_size=LEAN_BATCH, **EARLIER_DEFAULTS
    )
    return TrainingRun(ds, part, config, settings), len(split.train)


LEAN_BATCH = 32


def q3_memory(
    name: str, backbone: str, variant: str, experts: str, steps: int, device: str = "cpu"
) -> dict:
    """Peak memory of training steps with independent experts or a shared trunk.

    On the CPU it runs in a fresh process (``run_pending(fresh=True)``) started with
    glibc's mmap threshold fixed, so that freed tensors leave the resident set; one thread.
    The peak (:class:`PeakMemory`: the RSS, or on a GPU the CUDA allocator's) is over two
    epochs of the first ``steps`` batches of 32 of split 0's training set, above the memory
    held before them: activations, gradients, optimizer moments.
    """
    trainer, _ = _lean_trainer(name, backbone, variant, experts, steps, device)
    with PeakMemory(trainer.device) as peak:
        for epoch in range(2):
            trainer.train_epoch(epoch)
    return {"question": "shared_trunk_memory", "dataset": name, "backbone": backbone,
            "variant": variant, "experts": experts, "steps": steps, "peak_mib": peak.mib,
            "device": device,
            "memory_method": peak.method,
            "params": sum(p.numel() for p in trainer.model.parameters())}  # fmt: skip


def q3_time(
    name: str, backbone: str, variant: str, steps: int, repeats: int = 3, device: str = "cpu"
) -> dict:
    """Seconds per training step of every Q3 expert scheme, timed side by side.

    One process, one thread: the schemes' training runs (on the first ``steps`` batches of
    32 of split 0) alternate epoch by epoch after a warm-up epoch each, so that all see the
    same machine load; the median epoch per scheme, per step and per epoch of the whole
    training set (per step times its batches).
    """
    import math

    built = {e: _lean_trainer(name, backbone, variant, e, steps, device) for e in LEAN_EXPERTS}
    median = epochs_side_by_side({e: t for e, (t, _) in built.items()}, repeats).median
    row = {"question": "shared_trunk_time", "dataset": name, "backbone": backbone,
           "variant": variant, "steps": steps, "repeats": repeats, "device": device}  # fmt: skip
    for experts, (trainer, train_size) in built.items():
        per_step = median[experts] / math.ceil(len(trainer.split.train) / LEAN_BATCH)
        row[f"{experts}: s_per_step"] = per_step
        row[f"{experts}: s_per_epoch"] = per_step * math.ceil(train_size / LEAN_BATCH)
    return row


TRUNK_COST_COLUMNS = ["peak_mib", "s_per_step", "s_per_epoch", "params"]


def trunk_costs(memory: list[dict], timing: list[dict]) -> pd.DataFrame:
    """Q3's cost measurements, one row per (dataset, backbone, variant, experts).

    Columns: those four, ``peak_mib``, ``s_per_step``, ``s_per_epoch``, ``params`` (NaN
    where not measured) and the ratios ``peak_vs_independent``, ``step_vs_independent``
    (NaN for independent experts). Written next to the report as a CSV for notebook 05.
    """
    merged: dict[tuple, dict] = {}
    for c in memory:
        key = (c["dataset"], c["backbone"], c["variant"], c["experts"])
        merged[key] = {k: c[k] for k in ("peak_mib", "params")}
    for t in timing:
        for experts in LEAN_EXPERTS:
            key = (t["dataset"], t["backbone"], t["variant"], experts)
            found = {k.split(": ")[1]: v for k, v in t.items() if k.startswith(f"{experts}: ")}
            merged.setdefault(key, {}).update(found)
    keys = ["dataset", "backbone", "variant", "experts"]
    frame = pd.DataFrame([{**dict(zip(keys, k, strict=True)), **v} for k, v in merged.items()])
    frame = frame.reindex(columns=keys + TRUNK_COST_COLUMNS)
    base = frame[frame.experts == "independent"].set_index(keys[:3])
    own = frame.set_index(keys[:3])
    lean = (frame.experts != "independent").to_numpy()
    for column, field in (
        ("peak_vs_independent", "peak_mib"),
        ("step_vs_independent", "s_per_step"),
    ):
        ratio = own[field].to_numpy() / base[field].reindex(own.index).to_numpy()
        frame[column] = np.where(lean, ratio, np.nan)
    return frame


CPU_COST_METHOD = (
    "Training steps of batch 32 on the first training molecules of split 0, one thread. Peak "
    "memory: each configuration in a fresh process, the peak RSS over two epochs above the "
    "memory held before them (activations, gradients, optimizer moments), with glibc set to "
    "return freed blocks. Time: the three schemes in one process, alternating epoch by epoch "
    "after a warm-up epoch each (median of 3), so that all see the same load; seconds per "
    "epoch are per step times the training set's batches."
)
GPU_COST_METHOD = (
    "Training steps of batch 32 on the first training molecules of split 0, on one GPU "
    "(bfloat16 autocast, the trainer's default there). Peak memory: the CUDA allocator's peak "
    "(`torch.cuda.max_memory_allocated`) over two epochs above the memory held before them. "
    "Time: as on the CPU (the schemes alternating epoch by epoch, median of 3), each epoch "
    "timed to a device synchronization."
)


def render_trunk_costs(costs: pd.DataFrame, method: str) -> list[str]:
    """Q3's cost table: independent experts against a shared trunk, measured as ``method``
    says (:data:`CPU_COST_METHOD` or :data:`GPU_COST_METHOD`)."""
    lines = [
        "Experts of width 128 and 3 blocks. **independent**: every expert embeds the atoms and "
        "runs its 3 blocks on its own graph (today's default). **trunk at 4 Å** "
        "(`--shared-trunk`): the atom embedding and the first block run once per batch on the "
        "graph at the largest cutoff, and each expert runs its 2 remaining blocks on its own "
        "graph from the trunk's atom states. **trunk at 2 Å** (`--shared-trunk --trunk-cutoff "
        f"2`): the same on the smallest graph. {method} Ratios are against independent "
        "experts, same dataset, backbone and variant.",
        "",
        "| dataset | backbone | variant | experts | peak MiB | / independent | s per step | "
        "/ independent | s per epoch | params |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for c in costs.itertuples(index=False):

        def cell(value: float, ratio: float, digits: int) -> tuple[str, str]:
            if np.isnan(value):
                return "not run", ""
            return f"{value:.{digits}f}", "" if np.isnan(ratio) else f"{ratio:.2f}"

        peak = cell(c.peak_mib, c.peak_vs_independent, 0)
        step = cell(c.s_per_step, c.step_vs_independent, 2)
        epoch = "" if np.isnan(c.s_per_epoch) else f"{c.s_per_epoch:.0f}"
        params = "" if np.isnan(c.params) else f"{int(c.params):,}"
        lines.append(
            f"| {c.dataset} | {c.backbone} | {c.variant} | {c.experts} | {peak[0]} | {peak[1]} "
            f"| {step[0]} | {step[1]} | {epoch} | {params} |"
        )
    return lines


def render_shared_trunk(table: pd.DataFrame, costs: pd.DataFrame, datasets: list[str]) -> list[str]:
    """Q3's tables: cost of independent experts against a shared trunk, then accuracy."""
    lines = [
        "## Q3: memory-lean experts (a shared trunk)",
        "",
        *render_trunk_costs(costs, CPU_COST_METHOD),
    ]
    lines += [
        "",
        "Accuracy: MI-MoE(SchNet), sparse k=2 of 5, MLP gate, with a shared trunk (1 of 3 "
        "blocks, at 4 Å or at 2 Å) against independent experts (Q4's SchNet + MLP runs), "
        "paired by split.",
        "",
        "| dataset | metric | experts | test | - independent, paired | splits | s per run |",
        "|---|---|---|---|---|---|---|",
    ]
    for name in datasets:
        base = baseline_runs(table, name)
        mine = table[(table.dataset == name) & (table.question == "shared_trunk")]
        schemes = [(e, mine[mine.experts == e]) for e in LEAN_EXPERTS if e != "independent"]
        for label, part in [("independent", base), *schemes]:
            if part.empty:
                lines.append(f"| {name} | {METRIC[name]} | {label} | not run | | 0 | |")
                continue
            test = part.set_index("split").test
            paired = ""
            if label != "independent" and not base.empty:
                diff = (test - base.set_index("split").test).dropna()
                paired = mean_std(diff) if len(diff) else ""
            lines.append(
                f"| {name} | {METRIC[name]} | {label} | {mean_std(test)} | {paired} | "
                f"{len(test)} | {part.seconds.mean():.0f} |"
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


def _describe_memory(row: dict) -> str:
    return (
        f"{row['dataset']} Q3 {row['backbone']} {row['variant']} {row['experts']}: "
        f"{row['peak_mib']:.0f} MiB"
    )


def _describe_time(row: dict) -> str:
    steps = ", ".join(
        f"{e} {row[f'{e}: s_per_step']:.2f}" for e in LEAN_EXPERTS if f"{e}: s_per_step" in row
    )
    return f"{row['dataset']} Q3 {row['backbone']} {row['variant']} s per step: {steps}"


def gpu_trunk_costs(args: argparse.Namespace, argv, lean_memory: list, lean_time: list) -> int:
    """Q3's memory and time on the GPU (``--device cuda``), written to their own report
    (``--out``, default ``benchmarks/results/open_questions_gpu.md``) and CSV beside it."""
    import torch

    if not torch.cuda.is_available():
        print("--device cuda: torch sees no CUDA device", file=sys.stderr)
        return 2
    failures: list[str] = []
    out = args.out if args.out != DEFAULT_OUT else DEFAULT_OUT.with_name("open_questions_gpu.md")
    if not args.report_only:
        # One process: the allocator's peak is reset per measurement, unlike the CPU's RSS.
        failures += run_pending(lean_time, 1, _describe_time)
        failures += run_pending(lean_memory, 1, _describe_memory)
    costs = trunk_costs(results(lean_memory), results(lean_time))
    if costs.empty:
        print(f"no finished GPU measurements in {args.work}", file=sys.stderr)
        return 1
    costs.to_csv(trunk_cost_csv(out), index=False)
    command = command_line(__file__, argv)
    lines = [
        "# The paper's open question 3 on a GPU: memory and time of a shared trunk",
        "",
        f"- command: `{command}`",
        f"- date: {date.today().isoformat()}",
        f"- machine: {platform.platform()}, {torch.cuda.get_device_name()}, torch "
        f"{torch.__version__}",
        "",
        *render_trunk_costs(costs, GPU_COST_METHOD),
    ]
    write_report(out, "\n".join(lines) + "\n")
    return exit_status(failures)


def trunk_cost_csv(report: Path) -> Path:
    """Where Q3's cost table goes: beside the report, ``<stem>_trunk_cost.csv``."""
    return report.with_name(f"{report.stem}_trunk_cost.csv")


def reported_datasets(datasets: list[str], work: Path) -> list[str]:
    """The datasets the report shows: those asked for, and every other dataset of the
    benchmark with a finished run or measurement in ``work``, in :data:`METRIC`'s order."""
    finished = {part for path in work.glob("q*.json") for part in path.stem.split("_")}
    return [name for name in METRIC if name in datasets or name in finished]


def _question_of(run) -> str:
    """ "1", "3" or "4": the question a run answers (its file name starts q1_, q3_, q4_)."""
    return run[0].name[1]


def _is_baseline(run) -> bool:
    """Whether a run is one of the baseline runs of Q1-Q3 (see :func:`baseline_runs`)."""
    return run[1] is gate_backbone_run and run[2][2:4] == ("schnet", "mlp")


def _slug(variant: str) -> str:
    """A file-name part: ``"learnable x20"`` -> ``"learnable_x20"``, ``"dimenet++"`` ->
    ``"dimenetpp"``, ``"trunk at 4 Å"`` -> ``"trunk_at_4A"``."""
    return variant.replace(" ", "_").replace("+", "p").replace("Å", "A")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", default="freesolv,bace")
    add_run_options(parser, RUNS / "open_questions", DEFAULT_OUT)
    parser.add_argument(
        "--compile", action="store_true",
        help="train the remaining runs with the experts' message passing compiled (the same "
        "model to rounding, faster; the runs say so, and the report counts them)",
    )  # fmt: skip
    parser.add_argument(
        "--cost-steps", type=int, default=4, help="training steps per Q3 cost measurement"
    )
    parser.add_argument(
        "--questions", default="1,2,3,4", help="which to run (the report shows every finished run)"
    )
    parser.add_argument(
        "--cost-molecules", type=int, default=200, help="molecules per Q2 featurization cost"
    )
    parser.add_argument(
        "--device", choices=("cpu", "cuda"), default="cpu",
        help="cuda: only Q3's memory and time on the GPU, into open_questions_gpu.md",
    )  # fmt: skip
    args = parser.parse_args(argv)
    datasets = args.datasets.split(",")
    unknown = sorted(set(datasets) - set(METRIC))
    if unknown:
        parser.error(f"--datasets: {unknown} not among {sorted(METRIC)}")
    questions = set(args.questions.split(","))
    if not questions <= {"1", "2", "3", "4"}:
        parser.error(f"--questions: {args.questions!r}; the questions are 1, 2, 3, 4")
    train = training_options(args)
    # The report shows every dataset with finished runs, so that one dataset's invocation
    # does not drop the others' tables; only the invocation's datasets are trained.
    trained, datasets = datasets, reported_datasets(datasets, args.work)

    def to_train(runs_or_measurements: list) -> list:
        return [run for run in runs_or_measurements if run[2][0] in trained]

    runs = [
        (args.work / f"q4_{name}_{s}_{backbone}_{gate}_e{args.epochs}.json", gate_backbone_run,
         (name, s, backbone, gate, train))
        for name in datasets for s in range(args.splits) for backbone in BACKBONES
        for gate in GATES
    ]  # fmt: skip
    runs += [
        (args.work / f"q1_{name}_{s}_{_slug(variant)}_e{args.epochs}.json",
         learnable_cutoffs_run, (name, s, train, variant))
        for name in datasets for s in range(args.splits) for variant in CUTOFF_VARIANTS
    ]  # fmt: skip
    runs += [
        (args.work / f"q3_{name}_{s}_{_slug(experts)}_e{args.epochs}.json", shared_trunk_run,
         (name, s, train, experts))
        for name in datasets for s in range(args.splits) for experts in LEAN_EXPERTS
        if experts != "independent"
    ]  # fmt: skip
    runs += [
        (args.work / f"q2_{name}_{s}_m{ENSEMBLE}_e{args.epochs}.json", conformer_ensemble_run,
         (name, s, train))
        for name in datasets for s in range(args.splits)
    ]  # fmt: skip
    wanted = to_train([run for run in runs if _question_of(run) in questions or _is_baseline(run)])
    costs = [(args.work / f"q1_cost_{name}.json", q1_epoch_cost, (name,)) for name in datasets]
    lean = [(name, bb, variant) for name in datasets for bb in LEAN_BACKBONES
            for variant in LEAN_VARIANTS]  # fmt: skip
    steps, device = args.cost_steps, args.device
    on = "" if device == "cpu" else f"_{device}"  # the CPU's files keep their first names
    lean_memory = [
        (args.work / f"q3_memory_{name}_{_slug(bb)}_{variant}_{_slug(experts)}_s{steps}{on}.json",
         q3_memory, (name, bb, variant, experts, steps, device))
        for name, bb, variant in lean for experts in LEAN_EXPERTS
    ]  # fmt: skip
    lean_time = [
        (args.work / f"q3_time_{name}_{_slug(bb)}_{variant}_s{steps}{on}.json", q3_time,
         (name, bb, variant, steps, 3, device))
        for name, bb, variant in lean
    ]  # fmt: skip
    if device == "cuda":
        return gpu_trunk_costs(args, argv, to_train(lean_memory), to_train(lean_time))
    ensemble_costs = [
        (args.work / f"q2_cost_{name}_n{args.cost_molecules}.json", q2_featurize_cost,
         (name, args.cost_molecules))
        for name in datasets
    ]  # fmt: skip
    failures: list[str] = []
    if not args.report_only and "1" in questions:
        failures += run_pending(
            to_train(costs), 1, lambda row: f"{row['dataset']} Q1 epoch cost: {row['ratio']:.2f}x"
        )
    if not args.report_only and "2" in questions:
        failures += run_pending(
            to_train(ensemble_costs), 1, lambda row: f"{row['dataset']} Q2 featurization cost"
        )
    if not args.report_only and "3" in questions:
        failures += run_pending(to_train(lean_time), 1, _describe_time)
        # Large allocations get their own mappings, returned to the kernel when freed, so
        # the resident set follows the memory in use (glibc otherwise keeps freed blocks).
        os.environ["MALLOC_MMAP_THRESHOLD_"] = str(64 * 1024)
        failures += run_pending(to_train(lean_memory), 1, _describe_memory, fresh=True)
        del os.environ["MALLOC_MMAP_THRESHOLD_"]
    # The trainings after the cost measurements, which then run alone.
    failures += run_all(wanted, args, trained, lambda row: (
            f"{row['dataset']} split {row['split']} {row['question']} {row['backbone']} "
            f"{row['gate']} {row.get('cutoffs', '')}: test {row['metric']} {row['test']:.3f} "
            f"({row['seconds']:.0f} s)"))  # fmt: skip
    finished = results(runs)
    table = pd.DataFrame(finished).drop(columns="restored_from", errors="ignore")
    if table.empty:
        parser.error(f"no finished runs in {args.work} to report")
    # Only some questions' rows have these.
    for column in ("cutoffs", "learned_cutoffs", "experts", "conformers", "spread_spearman",
                   "coverage"):  # fmt: skip
        table[column] = table[column].astype(object).fillna("") if column in table else ""

    import torch

    trunk_cost_frame = trunk_costs(results(lean_memory), results(lean_time))
    if not trunk_cost_frame.empty:
        trunk_cost_frame.to_csv(trunk_cost_csv(args.out), index=False)
    command = command_line(__file__, argv)
    lines = [
        "# The paper's open questions, measured",
        "",
        f"- command: `{command}`",
        f"- date: {date.today().isoformat()}",
        f"- machine: {platform.platform()}, {os.cpu_count()} CPU cores, torch "
        f"{torch.__version__}, {'CUDA' if torch.cuda.is_available() else 'CPU only'}",
        f"- {args.splits} scaffold_balanced splits (split seed = run seed), {args.epochs} "
        "epochs (patience 20), CLI defaults without EMA otherwise; mean ± sample std (ddof=1) "
        "over the splits; RMSE: lower is better, ROC-AUC: higher is better",
        f"- runs finished: {len(table)} of {len(runs)} (a rerun continues the rest; tables "
        "count the splits each row has)",
        *(
            [
                "- rendered from the finished runs in the work folder, trained by earlier "
                "invocations of this script (one per question or dataset) with these settings"
            ]
            if args.report_only
            else []
        ),  # fmt: skip
        *origin_notes(
            finished
            + results(costs)
            + results(ensemble_costs)
            + results(lean_memory)
            + results(lean_time)
        ),  # fmt: skip
        "",
        *render_learnable_cutoffs(table, datasets),
        "",
        *render_epoch_cost(results(costs)),
        "",
        *render_conformers(table, results(ensemble_costs), datasets),
        "",
        *render_shared_trunk(table, trunk_cost_frame, datasets),
        "",
        *render_gate_backbone(table, datasets),
        "",
        "## Runs",
        "",
        *markdown_rows(table),
    ]
    text = "\n".join(lines) + "\n"
    write_report(args.out, text)
    return exit_status(failures)


if __name__ == "__main__":
    sys.exit(main())
