"""Several models x several seeds on the same splits: ablations and baseline tables.

``run_experiments`` trains every variant (a model config) for every seed on the same split of
one featurized dataset and writes ``runs.csv`` (one row per training) and ``table.md``
(mean ± std per variant). ``ablation_variants`` gives the paper's four model variants.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

# summarize, markdown_table and _mean_std live in mimoe_core.analysis.tables (torch-free);
# they stay importable from here.
from mimoe_core.analysis.tables import _mean_std, markdown_table, summarize  # noqa: F401
from mimoe_core.data.splits import make_split
from mimoe_core.featurization import FeaturizedDataset
from mimoe_core.models import load_config
from mimoe_core.training.trainer import TrainSettings, train


def ablation_variants(base: Mapping[str, Any] | str | None = None) -> dict[str, dict]:
    """The four model variants of one base config: ``plain``, ``one_expert``, ``dense``, ``sparse``.

    ``plain`` is the full-depth backbone at one cutoff (the paper's baseline); ``one_expert``
    is a single shallow expert at ``one_expert``'s cutoff; ``dense`` mixes all K experts;
    ``sparse`` routes each molecule to its Top-k.
    """
    config = load_config(base)
    variants = ("plain", "one_expert", "dense", "sparse")
    return {name: {**copy.deepcopy(config), "variant": name} for name in variants}


def run_experiments(
    dataset: FeaturizedDataset,
    variants: Mapping[str, Mapping[str, Any]],
    seeds: Sequence[int] = (0, 1, 2),
    split_method: str = "scaffold",
    settings: TrainSettings | None = None,
    out_dir: str | Path | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Train every variant with every seed; the split depends only on the seed.

    Args:
        dataset: a featurized dataset.
        variants: name -> model config (see :func:`mimoe_core.models.create_model`).
        seeds: training seeds (also the split seed for ``random`` / ``scaffold_balanced``).
        split_method: ``scaffold`` (default), ``scaffold_balanced`` or ``random``.
        settings: training settings; ``seed`` is replaced per run.
        out_dir: if given, each run goes to ``out_dir/<variant>/seed<k>`` and the tables to
            ``out_dir/runs.csv`` and ``out_dir/table.md``.

    Returns:
        ``(runs, summary)``: one row per (variant, seed) with val/test metrics, seconds and
        (with ``out_dir``) the ``run_dir`` it was written to, and one row per variant with
        mean and std of each test metric.
    """
    settings = settings or TrainSettings()
    out = Path(out_dir) if out_dir is not None else None
    rows = []
    for seed in seeds:
        split = make_split(split_method, dataset.smiles, seed=seed)
        for name, config in variants.items():
            run_dir = out / _slug(name) / f"seed{seed}" if out is not None else None
            start = time.perf_counter()
            run_settings = dataclasses.replace(settings, seed=seed)
            result = train(dataset, split, config, run_settings, out_dir=run_dir)
            row = {
                "variant": name,
                "seed": seed,
                "seconds": time.perf_counter() - start,
                "best_epoch": result.metrics["best_epoch"],
                **({"run_dir": str(run_dir)} if run_dir is not None else {}),
            }
            for part in ("val", "test"):
                for key, value in result.metrics[part].items():
                    if isinstance(value, float):
                        row[f"{part}_{key}"] = value
            rows.append(row)
    runs = pd.DataFrame(rows)
    summary = summarize(runs)
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        runs.to_csv(out / "runs.csv", index=False)
        (out / "table.md").write_text(markdown_table(summary, dataset.table.name))
        (out / "variants.json").write_text(json.dumps(variants, indent=1, default=str))
    return runs, summary


def _slug(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in name).strip("_")
