"""What a run writes, and the check a resumed run makes against what it wrote.

:func:`write_run_files` hands a featurized dataset's facts to
:func:`mimoe_core.run_folder.write_run`; :func:`check_same_inputs` refuses to resume from a
``last.pt`` trained on data featurized differently.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from mimoe_core import run_folder
from mimoe_core.data.splits import Split
from mimoe_core.data.table import skipped_frame
from mimoe_core.featurization import FeaturizedDataset
from mimoe_core.results import PredictionResult
from mimoe_core.shards import ShardedDataset
from mimoe_core.trained import LEGACY_FEATURIZATION

__all__ = ["check_same_inputs", "write_run_files"]


def write_run_files(
    out: Path,
    dataset: FeaturizedDataset | ShardedDataset,
    split: Split,
    metrics: dict,
    history: pd.DataFrame,
    test: PredictionResult,
) -> None:
    """:func:`mimoe_core.run_folder.write_run` with what a featurized dataset knows."""
    run_folder.write_run(
        out,
        metrics=metrics,
        history=history,
        split=split,
        split_rows=[int(r) for r in dataset.rows],
        skipped=skipped_frame(dataset.skipped),
        test=test,
    )


def check_same_inputs(payload: dict, common: dict, path: Path) -> None:
    """Resuming on data featurized differently from the interrupted run is an error."""
    now = {
        "task": common["task"],
        "targets": common["targets"],
        "radii": [float(r) for r in common["radii"]],
        "conformer_settings": common["conformer_settings"].to_dict(),
        "featurization": common["featurization"],
    }
    before = {k: payload.get(k) for k in now}
    before["featurization"] = {**LEGACY_FEATURIZATION, **(payload.get("featurization") or {})}
    before["conformer_settings"] = {
        **now["conformer_settings"],
        **(payload.get("conformer_settings") or {}),
    }
    differ = [k for k in now if before[k] != now[k]]
    if differ:
        detail = "; ".join(f"{k}: {before[k]} then, {now[k]} now" for k in differ)
        raise ValueError(f"cannot resume {path}: the data is featurized differently ({detail})")
