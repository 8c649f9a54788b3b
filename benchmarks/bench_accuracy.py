"""Accuracy at full size: MI-MoE against its own single-scale backbones and chemprop.

Every model trains on the same scaffold splits of each dataset (``scaffold_balanced``,
seeds 0..S-1; the split seed is the run seed) with the CLI defaults (width 128, 3 blocks per
expert, up to 100 epochs, patience 20, batch 32, the moving average of the weights):

- single-scale SchNet and single-scale PaiNN: one backbone of 6 blocks at 5 Å, the compute
  of the two experts a sparse k=2 mixture runs per molecule (the ``blocks`` column);
- MI-MoE(SchNet) and MI-MoE(PaiNN): sparse k=2 of 5 experts at 2.0-4.0 Å, MLP gate;
- on FreeSolv and ESOL only: the ablations MI-MoE(SchNet) with one expert, and dense, a
  deep ensemble of 3 MI-MoE(SchNet) (a row beside the others, not a contender in the
  targets: it runs three models per molecule), and MI-MoE(SchNet) on 5 conformers per
  molecule (``--conformers 5``: one drawn per epoch in training, the prediction averaged
  over the 5; the open questions' Q2 measured it ahead of one conformer on FreeSolv; a
  contender against chemprop and the moonshot, paired against the 1-conformer mixture);
- chemprop 2.x, its D-MPNN with its CLI defaults (50 epochs, batch 64, the epoch of the
  lowest validation loss), from its own environment (``--chemprop PATH``: the ``chemprop``
  executable, e.g. ``pip install chemprop==2.3.1`` into a separate venv, because it pins
  its own RDKit). It reads the same molecules and the same split (its ``--splits-file``);
  the test metrics are computed here, by the code that scores the other models.

Per run: the test metric (RMSE for regression, ROC-AUC for classification, mean over
targets) and the second one (MAE, PR-AUC), the validation metric, the best epoch, epochs
run, seconds, and the message-passing blocks one molecule runs through. The tables are mean
± sample std (ddof=1) over the splits, with paired differences per split; the targets of
issue 15 are checked at the end, and rows without runs say why.

    python benchmarks/bench_accuracy.py --datasets freesolv,esol,bace,clintox \\
        --chemprop /work/chemprop-venv/bin/chemprop      # a CPU run of several sessions
    python benchmarks/bench_accuracy.py --datasets lipo,tox21 --device cuda --jobs 12  # GPU
    python benchmarks/bench_accuracy.py --datasets lipo,tox21   # or many CPU sessions
    python benchmarks/bench_accuracy.py --setting smoke --datasets freesolv --splits 2 \\
        --work /tmp/a --out /tmp/a.md                     # a minute: the script runs

Runs go to ``--work`` (one JSON per finished run, so an interrupted benchmark continues
where it stopped; default ``benchmarks/results/runs/accuracy_<setting>``, committed with the
report, so that the benchmark continues on another machine); ``--jobs`` trainings run at
once, one thread each. Writes ``--out`` (default ``benchmarks/results/accuracy_full.md``) and
the runs beside it as CSV (what notebook 05 draws).
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
from _parallel_runs import (
    RUNS,
    command_line,
    exit_status,
    featurized,
    markdown_rows,
    mean_std,
    origin_notes,
    results,
    run_pending,
    trainings_at_once,
    write_report,
)

ROOT = Path(__file__).resolve().parents[1]
DATASETS = ("freesolv", "esol", "lipo", "bace", "tox21", "clintox")
NAMES = {"freesolv": "FreeSolv", "esol": "ESOL", "lipo": "Lipophilicity", "bace": "BACE",
         "tox21": "Tox21", "clintox": "ClinTox"}  # fmt: skip
REGRESSION = ("freesolv", "esol", "lipo")
#: Datasets this 2-core CPU machine trains only in a run of many hours.
LONG_ON_CPU = ("lipo", "tox21")
ABLATION_DATASETS = ("freesolv", "esol")

SETTINGS = {
    # The CLI defaults at full dataset size.
    "full": {"limit": None, "train": {}},
    # That the script runs end to end (a minute); its numbers mean nothing.
    "smoke": {"limit": 60, "train": {"epochs": 2, "patience": 2, "batch_size": 16}},
}
SMOKE_WIDTH = 16

#: model name: (backbone, model config over the defaults); chemprop has no config.
MODELS = {
    "single-scale SchNet": ("schnet", {"variant": "plain"}),
    "MI-MoE(SchNet)": ("schnet", {"variant": "sparse", "top_k": 2}),
    "MI-MoE(SchNet), one expert": ("schnet", {"variant": "one_expert"}),
    "MI-MoE(SchNet), dense": ("schnet", {"variant": "dense"}),
    "single-scale PaiNN": ("painn", {"variant": "plain"}),
    "MI-MoE(PaiNN)": ("painn", {"variant": "sparse", "top_k": 2}),
    "MI-MoE(SchNet), ensemble of 3": ("schnet", {"variant": "sparse", "top_k": 2}),
    "MI-MoE(SchNet), 5 conformers": ("schnet", {"variant": "sparse", "top_k": 2}),
    "chemprop D-MPNN": ("d-mpnn", None),
}
ENSEMBLE = "MI-MoE(SchNet), ensemble of 3"
ENSEMBLE_SIZE = 3
#: The model trained and evaluated on a conformer ensemble, and its conformers per molecule.
ON_CONFORMERS = "MI-MoE(SchNet), 5 conformers"
CONFORMERS = 5
RUN_COLUMNS = ["dataset", "split", "model", "metric", "test", "val", "test_mae", "test_pr_auc",
               "blocks", "best_epoch", "epochs_run", "seconds"]  # fmt: skip
#: On FreeSolv and ESOL only; the ensemble is a row, not a contender in the targets (it
#: runs three models per molecule).
ABLATIONS = ("MI-MoE(SchNet), one expert", "MI-MoE(SchNet), dense", ENSEMBLE, ON_CONFORMERS)
#: Each mixture against its own single-scale backbone.
MIXTURE_OF = {"MI-MoE(SchNet)": "single-scale SchNet", "MI-MoE(PaiNN)": "single-scale PaiNN"}
#: The mixtures whose best is compared with chemprop and the moonshot.
CONTENDERS = (*MIXTURE_OF, ON_CONFORMERS)
#: Further paired comparisons: a model against the same model without its option.
OPTION_OF = {ON_CONFORMERS: "MI-MoE(SchNet)"}
CHEMPROP = "chemprop D-MPNN"
#: What the ensemble's runs also record of its std (conformal 90 % intervals fitted on the
#: validation set): the uncertainty benchmark's figures at full size, for free.
UNCERTAINTY = ("spearman", "coverage", "width")
#: Issue 15's moonshot, without pretraining (pretrained Uni-Mol: 1.48 and 0.79).
MOONSHOT = {"freesolv": 1.5, "esol": 0.80}


def metrics_of(name: str) -> tuple[str, str]:
    """The dataset's metric and its second one."""
    return ("rmse", "mae") if name in REGRESSION else ("roc_auc", "pr_auc")


def models_for(name: str, with_chemprop: bool) -> list[str]:
    """The models trained on ``name``: the ablations on FreeSolv and ESOL only."""
    return [
        model for model in MODELS
        if (model not in ABLATIONS or name in ABLATION_DATASETS)
        and (model != CHEMPROP or with_chemprop)
    ]  # fmt: skip


def model_config(model: str, setting: str) -> dict:
    """The model config of a named model (the CLI defaults under it)."""
    backbone, overrides = MODELS[model]
    config = {"backbone": backbone, **overrides}
    if setting == "smoke":
        config["expert"] = {"hidden_channels": SMOKE_WIDTH, "num_layers": 3}
    return config


def train_run(
    name: str, split_seed: int, model: str, setting: str, compiled: bool = False,
    device: str = "cpu",
) -> dict:  # fmt: skip
    """Train one of our models on one (dataset, split); runs in a worker process.
    ``compiled``: with the experts' message passing compiled (``--compile``); ``device``:
    where it trains (``--device``)."""
    from _parallel_runs import train_on_split

    metric, second = metrics_of(name)
    limit = SETTINGS[setting]["limit"]
    conformers = CONFORMERS if model == ON_CONFORMERS else 1
    result, row = train_on_split(
        name, split_seed, model_config(model, setting), metric, conformers=conformers,
        limit=limit, recipe={}, compile=compiled, device=device, **SETTINGS[setting]["train"],
    )  # fmt: skip
    mixture = getattr(result.model, "moe", result.model)
    return {
        "model": model, "setting": setting, "metric": metric, **row,
        f"test_{second}": float(result.metrics["test"][second]),
        # a prediction runs every conformer through the model
        "blocks": conformers * int(mixture.compute_per_molecule().blocks),
    }  # fmt: skip


def ensemble_run(
    name: str, split_seed: int, setting: str, compiled: bool = False, device: str = "cpu"
) -> dict:
    """A deep ensemble of MI-MoE(SchNet) (members seeded split seed + 0, 1, 2: member 0 is
    the plain MI-MoE(SchNet) run of the split); the mean of the members' predictions.
    ``compiled``: with the experts' message passing compiled (``--compile``); ``device``:
    where it trains (``--device``)."""
    import torch
    from _parallel_runs import gpu_field

    from mimoe_core.data import make_split
    from mimoe_core.training import TrainSettings, train_ensemble

    torch.set_num_threads(1)
    metric, second = metrics_of(name)
    ds = featurized(name, limit=SETTINGS[setting]["limit"])
    split = make_split("scaffold_balanced", ds.smiles, seed=split_seed)
    settings = TrainSettings(
        seed=split_seed, progress=False, device=device, compile=compiled,
        **SETTINGS[setting]["train"],
    )  # fmt: skip
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="ensemble_") as tmp:
        result = train_ensemble(
            ds, split, ENSEMBLE_SIZE, model_config(ENSEMBLE, setting), settings, out_dir=tmp
        )
        members = [
            json.loads(path.read_text())
            for path in sorted(Path(tmp).glob("members/*/metrics.json"))
        ]
    scores = result.metrics
    return {
        "model": ENSEMBLE, "setting": setting, "metric": metric, "dataset": name,
        "split": split_seed, "test": float(scores["test"][metric]),
        "val": float(scores["val"][metric]),
        "best_epoch": float(np.mean([m["best_epoch"] for m in members])),
        "epochs_run": float(np.mean([m["epochs_run"] for m in members])),
        "seconds": time.perf_counter() - start, f"test_{second}": float(scores["test"][second]),
        "blocks": ENSEMBLE_SIZE * 6, "member_tests": [m["test"][metric] for m in members],
        **{f"test_{key}": scores["uncertainty"]["test"].get(key) for key in UNCERTAINTY},
        **({"compiled": True} if compiled else {}),
        **({"fused_optimizer": True} if settings.fused_optimizer else {}),
        **gpu_field(device),
    }  # fmt: skip


def chemprop_run(name: str, split_seed: int, setting: str, executable: str) -> dict:
    """chemprop's CLI with its defaults on our molecules and split; scored here."""
    from mimoe_core.analysis.metrics import compute_metrics
    from mimoe_core.data import make_split

    metric, second = metrics_of(name)
    ds = featurized(name, limit=SETTINGS[setting]["limit"])
    split = make_split("scaffold_balanced", ds.smiles, seed=split_seed)
    targets = list(ds.table.target_names)
    labels = np.stack([d.y[0].numpy() for d in ds.data_list]).astype(float)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="chemprop_") as tmp:
        folder = Path(tmp)
        frame = pd.DataFrame(labels, columns=targets)
        frame.insert(0, "smiles", ds.smiles)
        frame.to_csv(folder / "data.csv", index=False)
        parts = {p: [int(i) for i in getattr(split, p)] for p in ("train", "val", "test")}
        (folder / "splits.json").write_text(json.dumps([parts]))
        epochs = ["--epochs", "3"] if setting == "smoke" else []
        command = [
            executable, "train", "--data-path", str(folder / "data.csv"),
            "--task-type", "regression" if metric == "rmse" else "classification",
            "--smiles-columns", "smiles", "--target-columns", *targets,
            "--splits-file", str(folder / "splits.json"), "--output-dir", str(folder / "out"),
            "--accelerator", "cpu", "--devices", "1", "--num-workers", "0",
            "--pytorch-seed", str(split_seed), "--data-seed", str(split_seed), *epochs,
        ]  # fmt: skip
        done = subprocess.run(command, env=env, capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(f"chemprop train failed ({done.returncode}):\n{done.stderr[-1500:]}")
        test_smiles = [ds.smiles[i] for i in split.test]
        predicted = _chemprop_test_predictions(folder / "out", targets, test_smiles)
        best_epoch = _chemprop_best_epoch(folder / "out")
    seconds = time.perf_counter() - start
    scores = compute_metrics(ds.table.task, predicted, labels[split.test])
    return {
        "model": CHEMPROP, "setting": setting, "metric": metric, "dataset": name,
        "split": split_seed, "test": float(scores[metric]), "val": float("nan"),
        "best_epoch": best_epoch, "epochs_run": 3 if setting == "smoke" else 50,
        "seconds": seconds, f"test_{second}": float(scores[second]), "blocks": 3,
        "chemprop_version": _chemprop_version(executable),
    }  # fmt: skip


def _chemprop_test_predictions(out: Path, targets: list[str], smiles: list[str]) -> np.ndarray:
    """The test predictions chemprop writes beside its model, checked to be those of
    ``smiles`` (the split's test molecules) in that order."""
    found = sorted(out.rglob("test_predictions.csv"))
    if not found:
        raise RuntimeError(f"chemprop wrote no test_predictions.csv under {out}")
    frame = pd.read_csv(found[0])
    if frame["smiles"].tolist() != smiles:
        raise RuntimeError(f"{found[0]} does not list the split's test molecules in order")
    return frame[targets].to_numpy(dtype=float)


def _chemprop_best_epoch(out: Path) -> int:
    """The epoch of chemprop's kept checkpoint (its name says it), -1 when not found."""
    for path in out.rglob("best*.ckpt"):
        match = re.search(r"epoch=(\d+)", path.name)
        if match:
            return int(match.group(1))
    return -1


def all_runs(
    args: argparse.Namespace, datasets: list[str], models: Sequence[str] | None = None
) -> list:
    """Every run of ``datasets``: the splits in order, then the models (so that a partial
    benchmark has whole splits); chemprop when an executable is given or its runs exist.
    ``models``: only these (names of :data:`MODELS`), else all."""
    runs = []
    compiled = getattr(args, "compile", False)
    device = getattr(args, "device", "cpu")
    for name in datasets:
        for split_seed in range(args.splits):
            for model in models_for(name, with_chemprop=True):
                if models is not None and model not in models:
                    continue
                path = args.work / f"{args.setting}_{name}_{split_seed}_{_slug(model)}.json"
                if model == ENSEMBLE:
                    arguments = (name, split_seed, args.setting, compiled, device)
                    runs.append((path, ensemble_run, arguments))
                elif model != CHEMPROP:
                    arguments = (name, split_seed, model, args.setting, compiled, device)
                    runs.append((path, train_run, arguments))
                elif args.chemprop or path.exists():
                    arguments = (name, split_seed, args.setting, args.chemprop)
                    runs.append((path, chemprop_run, arguments))
    return runs


def models_named(option: str) -> list[str]:
    """The models of ``--models``: comma-separated slugs (``mi_moe_schnet``), as in the run
    files' names.

    Raises:
        ValueError: naming the slugs that are not models, and the ones that are.
    """
    by_slug = {_slug(model): model for model in MODELS}
    slugs = [slug.strip() for slug in option.split(",") if slug.strip()]
    unknown = [slug for slug in slugs if slug not in by_slug]
    if unknown or not slugs:
        raise ValueError(f"--models: {unknown or option!r} not among {list(by_slug)}")
    return [by_slug[slug] for slug in slugs]


def _slug(model: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", model.lower()).strip("_")


def dataset_table(runs: pd.DataFrame, name: str, splits: int, why_missing: dict) -> list[str]:
    """One dataset's rows: every model, mean ± std of each column; a model without runs
    says why (``why_missing[model]``)."""
    metric, second = metrics_of(name)
    lines = [
        f"| model | splits | test {metric} | test {second} | val {metric} | blocks | "
        "best epoch | epochs run | s per run |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for model in models_for(name, with_chemprop=True):
        part = runs[(runs.dataset == name) & (runs.model == model)] if len(runs) else runs
        if part.empty:
            lines.append(f"| {model} | 0 of {splits} | not run: {why_missing[model]} |||||||")
            continue
        val = mean_std(part.val) if part.val.notna().all() else ""
        lines.append(
            f"| {model} | {len(part)} of {splits} | {mean_std(part.test)} | "
            f"{mean_std(part[f'test_{second}'])} | {val} | {part.blocks.iloc[0]} | "
            f"{part.best_epoch.mean():.0f} | {part.epochs_run.mean():.0f} | "
            f"{part.seconds.mean():.0f} |"
        )
    return lines


def paired(runs: pd.DataFrame, name: str, model: str, baseline: str) -> pd.Series:
    """Per split: ``model``'s test metric relative to ``baseline``'s, in percent, signed so
    that negative is better for ``model`` (lower RMSE, higher ROC-AUC)."""
    part = runs[runs.dataset == name]
    a = part[part.model == model].set_index("split").test
    b = part[part.model == baseline].set_index("split").test
    common = a.index.intersection(b.index)
    sign = 1.0 if metrics_of(name)[0] == "rmse" else -1.0
    return sign * 100.0 * (a[common] - b[common]) / b[common]


def comparisons(runs: pd.DataFrame, datasets: list[str]) -> list[str]:
    """Paired differences: each mixture against its backbone and against chemprop."""
    lines = [
        "| dataset | model | against | difference, % | better on |",
        "|---|---|---|---|---|",
    ]
    pairs = {**MIXTURE_OF, **OPTION_OF}
    for name in datasets:
        for model, baseline_model in pairs.items():
            for baseline in (baseline_model, CHEMPROP):
                diff = paired(runs, name, model, baseline)
                if diff.empty:
                    continue
                lines.append(
                    f"| {NAMES[name]} | {model} | {baseline} | {mean_std(diff)} | "
                    f"{int((diff < 0).sum())} of {len(diff)} |"
                )
    return lines


def targets(runs: pd.DataFrame, splits: int) -> list[str]:
    """Issue 15's targets, each met, not met, or not measured (and which runs are missing)."""

    def complete(name: str, model: str) -> pd.Series | None:
        part = runs[(runs.dataset == name) & (runs.model == model)] if len(runs) else runs
        return part.test if len(part) == splits else None

    lines = ["## Targets", ""]
    for name in REGRESSION:
        for model, backbone in MIXTURE_OF.items():
            a, b = complete(name, model), complete(name, backbone)
            if a is None or b is None:
                verdict = "not measured (runs missing)"
            else:
                gain = 100.0 * (1.0 - a.mean() / b.mean())
                direction = "lower" if gain >= 0 else "higher"
                verdict = f"{abs(gain):.1f} % {direction} -> {'met' if gain >= 5.0 else 'NOT met'}"
            lines.append(
                f"- {NAMES[name]}: {model} at least 5 % lower mean RMSE than {backbone} "
                f"(matched blocks per molecule): {verdict}"
            )
    ahead, measured = [], []
    for name in DATASETS:
        chemprop = complete(name, CHEMPROP)
        mixtures = [m.mean() for model in CONTENDERS if (m := complete(name, model)) is not None]
        if chemprop is None or not mixtures:
            continue
        measured.append(NAMES[name])
        if name in REGRESSION and min(mixtures) < chemprop.mean():
            ahead.append(NAMES[name])
        elif name not in REGRESSION and max(mixtures) > chemprop.mean():
            ahead.append(NAMES[name])
    verdict = "met" if len(ahead) >= 4 else ("NOT met" if len(measured) == 6 else "open")
    lines.append(
        f"- the best MI-MoE ahead of chemprop on at least 4 of 6 datasets: ahead on "
        f"{len(ahead)} of {len(measured)} measured ({', '.join(ahead) or 'none'}) -> {verdict}"
    )
    for name, bound in MOONSHOT.items():
        mixtures = {m: s for m in CONTENDERS if (s := complete(name, m)) is not None}
        if not mixtures:
            lines.append(f"- moonshot, {NAMES[name]} RMSE at most {bound}: not measured")
            continue
        best = min(mixtures, key=lambda m: mixtures[m].mean())
        value = mixtures[best].mean()
        lines.append(
            f"- moonshot, {NAMES[name]} RMSE at most {bound}: best {best} {value:.3f} -> "
            f"{'met' if value <= bound else 'NOT met'}"
        )
    return lines


def ensemble_uncertainty(runs: pd.DataFrame) -> list[str]:
    """The ensemble's std as an uncertainty, per regression dataset: Spearman of |error|
    against it, and coverage and width of its conformal 90 % test intervals (the runs that
    recorded them)."""
    columns = [f"test_{key}" for key in UNCERTAINTY]
    if not set(columns) <= set(runs.columns):
        return []
    part = runs[(runs.model == ENSEMBLE) & runs[columns[0]].notna()]
    if part.empty:
        return []
    lines = [
        "## The ensemble's std as an uncertainty",
        "",
        f"{ENSEMBLE}: the std of its members' predictions, z-scaled, and split-conformal 90 % "
        "intervals normalized by it, both fitted on the validation set (`mimoe train "
        "--ensemble-size 3`); the issue 16 figures at full size. Target: Spearman > 0.3, "
        "coverage 0.87-0.93.",
        "",
        "| dataset | splits | Spearman(abs error, std) | 90 % coverage | mean width |",
        "|---|---|---|---|---|",
    ]
    for name, rows in part.groupby("dataset", sort=False):
        cells = " | ".join(mean_std(rows[c].astype(float)) for c in columns)
        lines.append(f"| {NAMES[name]} | {len(rows)} | {cells} |")
    return [*lines, ""]


def render(
    runs: pd.DataFrame, args: argparse.Namespace, command: str, notes: list[str] = ()
) -> str:
    """The markdown report; ``notes``: more header lines."""
    import torch

    chemprop_version = chemprop_line(args.chemprop, runs)
    lines = [
        "# Accuracy at full size: MI-MoE, its single-scale backbones, chemprop",
        "",
        f"- command: `{command}`",
        f"- date: {date.today().isoformat()}",
        f"- machine: {platform.platform()}, {os.cpu_count()} CPU cores, torch "
        f"{torch.__version__}, {'CUDA' if torch.cuda.is_available() else 'CPU only'}; "
        f"{trainings_at_once(args)}",
        f"- setting `{args.setting}`: "
        + ("full datasets, the CLI defaults" if args.setting == "full" else
           f"{SETTINGS[args.setting]}, width {SMOKE_WIDTH}: checks the script, means nothing")
        + f"; {args.splits} scaffold_balanced splits (split seed = run seed)",
        f"- chemprop: {chemprop_version}",
        "- mean ± sample std (ddof=1) over the splits; RMSE and MAE in the target's units "
        "(lower is better), ROC-AUC and PR-AUC mean over targets (higher is better); blocks: "
        "message-passing blocks one molecule runs through (chemprop: its 3 message-passing "
        "steps); s per run: wall time, which other jobs on the same cores lengthen (a "
        "comparison of compute is `bench_model.py`'s)",
        *notes,
        "",
    ]  # fmt: skip
    for name in DATASETS:
        if name in LONG_ON_CPU:
            why = (
                f"a GPU (`bash tools/gpu_checks.sh --accuracy`: `--datasets {name} --device "
                f"cuda`), or many hours on this CPU (`--datasets {name}` continues it)"
            )
        else:
            why = f"`--datasets {name}` continues it"
        why_missing = dict.fromkeys(MODELS, why)
        if name in LONG_ON_CPU:  # chemprop trains on the CPU in every case
            why_missing[CHEMPROP] = (
                f"`--datasets {name} --models chemprop_d_mpnn --chemprop PATH` continues it, "
                "on the CPU"
            )
        if not args.chemprop:
            why_missing[CHEMPROP] = "no chemprop environment given (`--chemprop PATH`)"
        count = int((runs.dataset == name).sum()) if len(runs) else 0
        lines += [f"## {NAMES[name]} ({count} run{'' if count == 1 else 's'})", ""]
        lines += [*dataset_table(runs, name, args.splits, why_missing), ""]
    lines += [
        "## Paired by split",
        "",
        "Test metric of the mixture relative to the other model on the same split, in % "
        "(negative = the mixture is better: lower RMSE, higher ROC-AUC).",
        "",
        *comparisons(runs, list(DATASETS)),
        "",
        *targets(runs, args.splits),
        "",
        *ensemble_uncertainty(runs),
        "## Runs",
        "",
        *(markdown_rows(runs[RUN_COLUMNS]) if len(runs) else ["none yet"]),
    ]
    return "\n".join(lines) + "\n"


def chemprop_line(executable: str | None, runs: pd.DataFrame) -> str:
    """The report's chemprop version: the one installed at ``executable`` when given (it
    trains the missing runs), else the versions chemprop's finished runs recorded."""
    if executable:
        return _chemprop_version(executable)
    frame = runs.reindex(columns=["model", "chemprop_version"])  # absent columns: NaN
    versions = frame.chemprop_version[frame.model == CHEMPROP]
    recorded, unrecorded = sorted(versions.dropna().unique()), int(versions.isna().sum())
    if not recorded and not unrecorded:
        return "not run (no `--chemprop PATH`)"
    parts = [f"{', '.join(recorded)}, as its runs record"] if recorded else []
    if unrecorded:
        parts.append(f"{unrecorded} of its runs do not record the version")
    return "; ".join(parts) + " (none trained now: no `--chemprop PATH`)"


@functools.cache  # one interpreter start per process, not one per chemprop run
def _chemprop_version(executable: str) -> str:
    python = Path(executable).with_name("python")
    done = subprocess.run(
        [str(python), "-c", "import chemprop; print(chemprop.__version__)"],
        capture_output=True, text=True,
    )  # fmt: skip
    return done.stdout.strip() or f"unknown ({executable})"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--setting", choices=SETTINGS, default="full")
    parser.add_argument("--datasets", default=",".join(DATASETS))
    parser.add_argument("--splits", type=int, default=3)
    parser.add_argument("--jobs", type=int, default=2, help="trainings at once, 1 thread each")
    parser.add_argument(
        "--chemprop", default=None, metavar="PATH",
        help="the chemprop executable of a separate environment (chemprop 2.x)",
    )  # fmt: skip
    parser.add_argument(
        "--report-only", action="store_true", help="write the report from the finished runs"
    )
    parser.add_argument(
        "--work", type=Path, default=None,
        help="one JSON per finished run (default: benchmarks/results/runs/accuracy_<setting>)",
    )  # fmt: skip
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument(
        "--compile", action="store_true",
        help="train the remaining runs with the experts' message passing compiled (the same "
        "model to rounding, faster on long runs; the runs say so, and the report counts them)",
    )  # fmt: skip
    parser.add_argument(
        "--device", choices=("cpu", "cuda"), default="cpu",
        help="where our models train (chemprop stays on the CPU); cuda: run many --jobs at "
        "once on one GPU, as tools/gpu_checks.sh --accuracy does; the runs record the GPU",
    )  # fmt: skip
    parser.add_argument(
        "--models", default=None, metavar="SLUGS",
        help="train only these models (comma-separated, as in the run files' names, e.g. "
        "chemprop_d_mpnn); the report still shows every finished run",
    )  # fmt: skip
    args = parser.parse_args(argv)
    datasets = args.datasets.split(",")
    try:
        chosen = models_named(args.models) if args.models else None
    except ValueError as err:
        parser.error(str(err))
    unknown = sorted(set(datasets) - set(DATASETS))
    if unknown:
        parser.error(f"--datasets: {unknown} not among {list(DATASETS)}")
    if args.device == "cuda" and not args.report_only:
        import torch

        if not torch.cuda.is_available():
            parser.error("--device cuda: torch sees no CUDA device")
    if args.chemprop and not shutil.which(args.chemprop):
        parser.error(f"--chemprop: {args.chemprop} is not an executable")
    out = args.out or ROOT / f"benchmarks/results/accuracy_{args.setting}.md"
    args.work = args.work or RUNS / f"accuracy_{args.setting}"
    failures: list[str] = []
    if not args.report_only:
        for name in datasets:  # here, so that the workers read a warm cache
            featurized(name, limit=SETTINGS[args.setting]["limit"])
            if name in ABLATION_DATASETS:
                featurized(name, False, CONFORMERS, SETTINGS[args.setting]["limit"])
        failures = run_pending(all_runs(args, datasets, chosen), args.jobs, lambda row: (
            f"{row['dataset']} split {row['split']} {row['model']}: test {row['metric']} "
            f"{row['test']:.3f} ({row['seconds']:.0f} s)"))  # fmt: skip
    finished = results(all_runs(args, list(DATASETS)))
    table = pd.DataFrame(finished)  # the other task's metric, and what a run lacks: NaN
    table = table.reindex(columns=list(dict.fromkeys([*RUN_COLUMNS, *table.columns])))
    command = command_line(__file__, argv)
    write_report(out, render(table, args, command, origin_notes(finished)))
    if len(table):
        runs_csv(table).to_csv(out.with_suffix(".csv"), index=False)
    return exit_status(failures)


def runs_csv(runs: pd.DataFrame) -> pd.DataFrame:
    """The runs as the visual layer reads them (``mimoe_viz.ablation_figure``): one row per
    (dataset, model, split) with ``variant``, ``seed`` and ``test_<metric>`` columns."""
    frame = runs.rename(columns={"model": "variant", "split": "seed"})
    for metric in ("rmse", "roc_auc"):
        frame[f"test_{metric}"] = frame.test.where(frame.metric == metric)
    keep = ["dataset", "variant", "seed", "test_rmse", "test_mae", "test_roc_auc",
            "test_pr_auc", "blocks", "best_epoch", "epochs_run", "seconds"]  # fmt: skip
    return frame[keep]


if __name__ == "__main__":
    sys.exit(main())
