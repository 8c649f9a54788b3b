"""Run a trained MI-MoE on molecules and explain each prediction by its routing."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from mimoe_core.data.table import MoleculeTable
from mimoe_core.inference._run import resolve_device
from mimoe_core.inference.explain import explain_data
from mimoe_core.results import PredictionResult
from mimoe_core.training.checkpoint import Checkpoint, load_checkpoint


def table_from_smiles(smiles: Sequence[str], name: str = "input") -> MoleculeTable:
    """An unlabeled table (for prediction) from a list of SMILES; rows are list positions."""
    n = len(smiles)
    return MoleculeTable(
        name=name,
        task="regression",
        target_names=[],
        inputs=[str(s) for s in smiles],
        targets=np.zeros((n, 0)),
        rows=np.arange(n),
        ids=[str(i) for i in range(n)],
        n_rows=n,
    )


def _as_table(inputs, smiles_col: str) -> MoleculeTable:
    from mimoe_core.data import read_csv, read_sdf

    if isinstance(inputs, MoleculeTable):
        return inputs
    if isinstance(inputs, str) and not Path(inputs).suffix:
        return table_from_smiles([inputs])
    if isinstance(inputs, str | Path):
        path = Path(inputs)
        suffixes = "".join(path.suffixes).lower()
        if suffixes.endswith(".sdf"):
            return read_sdf(path, [])
        if suffixes.endswith((".csv", ".csv.gz")):
            return read_csv(path, smiles_col, [])
        raise ValueError(f"inputs must be SMILES, a .csv(.gz) or an .sdf file, got {path.name}")
    return table_from_smiles(list(inputs))


def predict(
    model: Checkpoint | str | Path,
    inputs: str | Path | Sequence[str] | MoleculeTable,
    smiles_col: str = "smiles",
    batch_size: int = 64,
    device: str = "auto",
    progress: bool = False,
    n_jobs: int | None = None,
) -> PredictionResult:
    """Predict molecules with a trained model and explain each prediction by its routing.

    Every input row gets one entry, in input order: status ``"ok"`` with its prediction,
    routing weights alpha, each selected expert's prediction and the descriptor trajectory
    the gate read, or ``"skipped"`` with the reason (invalid SMILES, failed embedding...).
    Inputs are featurized exactly as in training: the checkpoint's conformer settings,
    filtration grid and descriptor settings (normalized or raw trajectories) are replayed, and
    a checkpoint from another descriptor version is an error.

    Args:
        model: a :class:`Checkpoint`, a checkpoint file, or a run folder with ``model.pt``.
        inputs: one SMILES, a list of SMILES, a ``.csv``/``.csv.gz`` (``smiles_col``) or an
            ``.sdf`` file (its 3D coordinates are used), or a :class:`MoleculeTable`.
        smiles_col: the CSV column of SMILES, default ``"smiles"``.
        batch_size: molecules per forward pass, default 64.
        device: ``"auto"`` (default), ``"cpu"`` or ``"cuda"``.
        progress: tqdm bars while featurizing, default False.
        n_jobs: conformer worker processes (default: all cores).

    Returns:
        A :class:`~mimoe_core.results.PredictionResult`.
    """
    from mimoe_core.featurize import DESCRIPTOR_VERSION, featurize

    ckpt = model if isinstance(model, Checkpoint) else load_checkpoint(model)
    version = ckpt.featurization["descriptor_version"]
    if version != DESCRIPTOR_VERSION:
        raise ValueError(
            f"the model was trained on descriptor version {version}; this mimoe computes "
            f"version {DESCRIPTOR_VERSION}, so the gate would read different inputs. Retrain, "
            "or predict with the mimoe version that trained it."
        )
    table = _as_table(inputs, smiles_col)
    ds = featurize(
        table,
        settings=ckpt.conformer_settings,
        radii=ckpt.radii,
        normalize_descriptors=ckpt.featurization["normalize_descriptors"],
        progress=progress,
        n_jobs=n_jobs,
        drop_duplicates=False,
    )
    dev = resolve_device(device)
    return explain_data(
        ckpt.model.to(dev),
        ds.data_list,
        ckpt.scaler,
        ckpt.task,
        ckpt.targets,
        ckpt.radii,
        batch_size=batch_size,
        device=dev,
        num_rows=table.n_rows,
        skipped=ds.skipped,
    )
