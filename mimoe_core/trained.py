"""A trained model as one object, its checkpoint format, and the batched forward pass.

:class:`TrainedModel` is what a training run leaves behind: the model (its target scaling
inside, as buffers; see :mod:`mimoe_core.scaling`), the task and target names, and the
featurization settings that prediction must replay. It loads a checkpoint or a run folder
(:meth:`TrainedModel.load`), predicts molecules (:meth:`~TrainedModel.predict`), explains
featurized ones (:meth:`~TrainedModel.explain`) and writes itself back
(:meth:`~TrainedModel.save`).

This module imports neither :mod:`mimoe_core.training` nor :mod:`mimoe_core.inference`; both
build on it (the trainer writes checkpoints and evaluates with :func:`run_model`, inference
loads them), so neither needs the other.

A checkpoint is a plain dict of tensors, numbers, strings and lists, written with
``torch.save`` and read with ``torch.load(..., weights_only=True)``: loading never unpickles
arbitrary objects, so a checkpoint from an untrusted source cannot run code.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch_geometric.data import Batch, Data

import mimoe_core
from mimoe_core import keys, run_folder
from mimoe_core.conformers import ConformerSettings
from mimoe_core.data.table import MoleculeTable, SkipRecord
from mimoe_core.models import MIMoE, create_model
from mimoe_core.results import PredictionResult
from mimoe_core.scaling import ScaledMIMoE, TargetScaler
from mimoe_core.topology import DESCRIPTOR_NAMES

CHECKPOINT_FORMAT = "mimoe-checkpoint/1"
#: What a checkpoint written before ``featurization`` was recorded was trained on: the trainer
#: and the CLI only ever featurized normalized trajectories of descriptor version 1.
LEGACY_FEATURIZATION = {"normalize_descriptors": True, "descriptor_version": 1}
_REQUIRED = ("format", "model_config", "state_dict", "task", "targets", "scaler", "radii")
#: State-dict keys of the in-model target scaling; checkpoints from before it lack them.
_SCALING_KEYS = ("output_transform.mean", "output_transform.std")


# --- the batched forward pass ----------------------------------------------------------------


def resolve_device(device: str = "auto") -> torch.device:
    """``"auto"`` -> CUDA when available, else CPU; ``"cuda"`` without a GPU is an error."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError("device 'cuda' requested but torch sees no CUDA device")
    if device != "cpu" and not device.startswith("cuda"):
        raise ValueError(f"device must be auto, cpu or cuda, got {device!r}")
    return torch.device(device)


def prepare_batch(
    data_list: Sequence[Data], device: torch.device | str, dtype: torch.dtype
) -> Batch:
    """Molecules -> one PyG ``Batch`` on ``device``, coordinates in the model's ``dtype``.

    The one place batches are made, for training steps and for evaluation alike.
    """
    batch = Batch.from_data_list(list(data_list)).to(device)
    batch[keys.POS] = batch[keys.POS].to(dtype)
    return batch


@torch.no_grad()
def run_model(
    model: ScaledMIMoE | MIMoE,
    data_list: Sequence[Data],
    task: str,
    batch_size: int = 64,
    device: torch.device | str = "cpu",
) -> dict[str, np.ndarray]:
    """Predictions and routing of ``model`` (put in eval mode) for featurized molecules.

    Args:
        model: a :class:`~mimoe_core.scaling.ScaledMIMoE` (its eval outputs are in the
            original units), or a bare :class:`MIMoE` (its outputs taken as they are).
        data_list: featurized molecules.
        task: ``"regression"`` or ``"classification"`` (outputs are logits; probabilities
            are returned).
        batch_size: molecules per forward pass.
        device: where ``model`` is and the forward passes run.

    Returns:
        ``prediction`` [M, num_targets] (original units; probabilities for classification),
        ``alpha`` [M, K], ``expert_predictions`` [M, K, num_targets] (original units for
        regression, logits for classification; NaN where an expert did not run).
    """
    model.eval()
    device = torch.device(device)
    dtype = next(model.parameters()).dtype
    preds, alphas, experts = [], [], []
    for start in range(0, len(data_list), batch_size):
        batch = prepare_batch(data_list[start : start + batch_size], device, dtype)
        out = model.forward_batch(batch)
        y, per_expert = out.y.float(), out.expert_predictions.float()
        if task != "regression":
            y = torch.sigmoid(y)
        per_expert = per_expert.masked_fill(~out.selected.unsqueeze(-1), float("nan"))
        preds.append(y.cpu())
        alphas.append(out.alpha.float().cpu())
        experts.append(per_expert.cpu())
    num_t, num_k = model.out_channels, model.num_experts
    if not preds:
        return {
            "prediction": np.zeros((0, num_t)),
            "alpha": np.zeros((0, num_k)),
            "expert_predictions": np.zeros((0, num_k, num_t)),
        }
    return {
        "prediction": torch.cat(preds).double().numpy(),
        "alpha": torch.cat(alphas).double().numpy(),
        "expert_predictions": torch.cat(experts).double().numpy(),
    }


# --- inputs ----------------------------------------------------------------------------------


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


def as_table(inputs, smiles_col: str = "smiles") -> MoleculeTable:
    """One SMILES, a list of them, a ``.csv(.gz)``/``.sdf`` file or a table -> a table."""
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


# --- the trained model -----------------------------------------------------------------------


@dataclass
class TrainedModel:
    """A trained MI-MoE and everything needed to use it; what a checkpoint holds.

    Attributes:
        model: the :class:`~mimoe_core.scaling.ScaledMIMoE` (target scaling inside, as
            buffers). A bare :class:`MIMoE` is wrapped with identity scaling.
        task: ``"regression"`` or ``"classification"``.
        targets: target names, one per model output.
        radii: the filtration grid [T] in Å the gate was trained on.
        conformer_settings: how training conformers were made (used again for prediction).
        featurization: the other settings the model's inputs depend on
            (``normalize_descriptors``, ``descriptor_version``), replayed by prediction.
        extra: the rest of the payload (epoch, metrics, optimizer state for resuming...).
    """

    model: ScaledMIMoE
    task: str
    targets: list[str]
    radii: list[float]
    conformer_settings: ConformerSettings = field(default_factory=ConformerSettings)
    featurization: dict[str, Any] = field(default_factory=lambda: dict(LEGACY_FEATURIZATION))
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if isinstance(self.model, MIMoE):
            self.model = ScaledMIMoE(self.model)
        if not isinstance(self.model, ScaledMIMoE):
            raise TypeError(f"model must be a ScaledMIMoE or MIMoE, got {type(self.model)}")
        if isinstance(self.radii, TargetScaler):  # the old Checkpoint(model, ..., scaler, ...)
            raise TypeError("the target scaling is part of the model now: pass "
                            "ScaledMIMoE(model, scaler), then radii")  # fmt: skip
        self.targets = list(self.targets)
        self.radii = [float(r) for r in self.radii]

    @property
    def scaler(self) -> TargetScaler:
        """The regression target scaling the model's buffers hold (a copy)."""
        return self.model.scaler

    @classmethod
    def load(cls, path: str | Path) -> TrainedModel:
        """Load a checkpoint file (or a run folder holding ``model.pt``) safely.

        Checkpoints written before the target scaling moved into the model have its buffers
        filled from their ``scaler`` entry.

        Raises:
            FileNotFoundError: no such file.
            ValueError: corrupt file, unknown format, or weights that do not fit the config.
        """
        payload = read_payload(path)
        model = ScaledMIMoE(create_model(payload["model_config"]),
                            TargetScaler(**payload["scaler"]))  # fmt: skip
        state = payload["state_dict"]
        expected = set(model.state_dict())
        missing = sorted(expected - set(state) - set(_SCALING_KEYS))
        unexpected = sorted(set(state) - expected)
        if missing or unexpected:
            raise ValueError(
                f"{path}: weights do not match the model config (missing {missing[:5]}, "
                f"unexpected {unexpected[:5]})"
            )
        model.load_state_dict(state)
        model.eval()
        own = _REQUIRED + ("conformer_settings", "featurization", "sha256")
        return cls(
            model=model,
            task=payload["task"],
            targets=list(payload["targets"]),
            radii=list(payload["radii"]),
            conformer_settings=ConformerSettings(**payload.get("conformer_settings", {})),
            featurization={**LEGACY_FEATURIZATION, **payload.get("featurization", {})},
            extra={k: v for k, v in payload.items() if k not in own},
        )

    def save(self, path: str | Path, **extra: Any) -> None:
        """Write a checkpoint that :meth:`load` reads back; ``extra`` is added to the payload.

        ``self.extra`` is written too (but for the mimoe ``version``, which is this one's),
        under ``extra``'s entries.
        """
        kept = {k: v for k, v in self.extra.items() if k != "version"}
        save_checkpoint(path, self.model, self.task, self.targets, self.radii,
                        self.conformer_settings, self.featurization,
                        **{**kept, **extra})  # fmt: skip

    def predict(
        self,
        inputs: str | Path | Sequence[str] | MoleculeTable,
        smiles_col: str = "smiles",
        batch_size: int = 64,
        device: str = "auto",
        progress: bool = False,
        n_jobs: int | None = None,
    ) -> PredictionResult:
        """Featurize molecules as in training, predict them and explain each by its routing.

        Every input row gets one entry, in input order: status ``"ok"`` with its prediction,
        routing weights alpha, each selected expert's prediction and the descriptor
        trajectory the gate read, or ``"skipped"`` with the reason (invalid SMILES, failed
        embedding...). The conformer settings, filtration grid and descriptor settings
        (normalized or raw trajectories) are replayed; a model trained on another descriptor
        version is an error.

        Args:
            inputs: one SMILES, a list of SMILES, a ``.csv``/``.csv.gz`` (``smiles_col``) or
                an ``.sdf`` file (its 3D coordinates are used), or a :class:`MoleculeTable`.
            smiles_col: the CSV column of SMILES, default ``"smiles"``.
            batch_size: molecules per forward pass, default 64.
            device: ``"auto"`` (default), ``"cpu"`` or ``"cuda"``; the model moves there.
            progress: tqdm bars while featurizing, default False.
            n_jobs: conformer worker processes (default: all cores).

        Returns:
            A :class:`~mimoe_core.results.PredictionResult`.
        """
        from mimoe_core.featurize import DESCRIPTOR_VERSION, featurize

        version = self.featurization["descriptor_version"]
        if version != DESCRIPTOR_VERSION:
            raise ValueError(
                f"the model was trained on descriptor version {version}; this mimoe computes "
                f"version {DESCRIPTOR_VERSION}, so the gate would read different inputs. "
                "Retrain, or predict with the mimoe version that trained it."
            )
        table = as_table(inputs, smiles_col)
        ds = featurize(
            table,
            settings=self.conformer_settings,
            radii=self.radii,
            normalize_descriptors=self.featurization["normalize_descriptors"],
            progress=progress,
            n_jobs=n_jobs,
            drop_duplicates=False,
        )
        return self.explain(ds.data_list, batch_size=batch_size, device=device,
                            num_rows=table.n_rows, skipped=ds.skipped)  # fmt: skip

    def explain(
        self,
        data_list: Sequence[Data],
        batch_size: int = 64,
        device: torch.device | str | None = None,
        num_rows: int | None = None,
        skipped: Sequence[SkipRecord] = (),
        with_labels: bool = False,
    ) -> PredictionResult:
        """Predictions, routing and structures of featurized molecules as a plain result.

        Args:
            data_list: featurized molecules (from :func:`mimoe_core.featurize.featurize`
                with this model's settings).
            batch_size: molecules per forward pass, default 64.
            device: where the forward passes run (the model moves there); default: where
                the model is.
            num_rows: if given, entry r is the source row r (``data.row``) and rows without
                a molecule are ``skipped`` with the reason from ``skipped``; if None, one
                entry per molecule in ``data_list`` order.
            skipped: skip records of the rows that did not become molecules.
            with_labels: keep the molecules' labels (``data.y``) in ``labels``.

        Returns:
            A :class:`PredictionResult` with structures (atomic numbers and coordinates).
        """
        if device is None:
            device = next(self.model.parameters()).device
        elif isinstance(device, str):
            device = resolve_device(device)
        self.model.to(device)
        out = run_model(self.model, data_list, self.task, batch_size, device)
        if num_rows is None:
            slots = list(range(len(data_list)))
            num = len(data_list)
        else:
            slots = [int(d[keys.ROW]) for d in data_list]
            num = num_rows
        num_k, num_t = self.model.num_experts, len(self.targets)
        prediction = np.full((num, num_t), np.nan)
        alpha = np.full((num, num_k), np.nan)
        experts = np.full((num, num_k, num_t), np.nan)
        labels = np.full((num, num_t), np.nan)
        topo = np.full((num, len(self.radii), len(DESCRIPTOR_NAMES)), np.nan)
        ids, smiles = [""] * num, [""] * num
        rows = list(range(num)) if num_rows is not None else [int(d[keys.ROW]) for d in data_list]
        status, reason = ["skipped"] * num, [""] * num
        atomic_numbers = [np.zeros(0, dtype=np.int64) for _ in range(num)]
        positions = [np.zeros((0, 3)) for _ in range(num)]
        for n, (slot, data) in enumerate(zip(slots, data_list, strict=True)):
            prediction[slot] = out["prediction"][n]
            alpha[slot] = out["alpha"][n]
            experts[slot] = out["expert_predictions"][n]
            labels[slot] = data[keys.Y][0].double().numpy()[:num_t] if with_labels else np.nan
            topo[slot] = data[keys.TOPO][0].numpy()
            ids[slot], smiles[slot], status[slot] = str(data[keys.MOL_ID]), data[keys.SMILES], "ok"
            atomic_numbers[slot] = data[keys.Z].numpy().astype(np.int64)
            positions[slot] = data[keys.POS].double().numpy()
        for skip in skipped:
            if num_rows is not None:
                ids[skip.row], smiles[skip.row] = skip.mol_id, skip.input
                reason[skip.row] = skip.reason
        baseline = list(self.scaler.mean) if self.task == "regression" else [0.0] * num_t
        return PredictionResult(
            task=self.task,
            targets=list(self.targets),
            ids=ids,
            smiles=smiles,
            rows=rows,
            status=status,
            reason=reason,
            prediction=prediction,
            alpha=alpha,
            expert_predictions=experts,
            topo=topo,
            radii=list(self.radii),
            cutoffs=[float(c) for c in self.model.cutoffs],
            descriptor_names=list(DESCRIPTOR_NAMES),
            baseline=[float(b) for b in baseline],
            labels=labels if with_labels else None,
            atomic_numbers=atomic_numbers,
            positions=positions,
        )


# --- the checkpoint file ---------------------------------------------------------------------


def save_checkpoint(
    path: str | Path,
    model: ScaledMIMoE | MIMoE,
    task: str,
    targets: Sequence[str],
    radii: Sequence[float],
    conformer_settings: ConformerSettings,
    featurization: dict[str, Any] | None = None,
    **extra: Any,
) -> None:
    """Write a checkpoint; ``extra`` holds plain values (tensors, numbers, str, lists, dicts).

    The state dict holds the scaling buffers (``output_transform.*``); the ``scaler`` entry
    repeats them as plain lists for readers that predate them. The file is written to a
    temporary name and renamed, so an interruption never leaves a half-written checkpoint
    under ``path``.
    """
    if isinstance(model, MIMoE):
        model = ScaledMIMoE(model)
    payload = {
        "format": CHECKPOINT_FORMAT,
        "version": mimoe_core.__version__,
        "model_config": model.config,
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "task": task,
        "targets": list(targets),
        "scaler": model.scaler.to_dict(),
        "radii": [float(r) for r in radii],
        "conformer_settings": conformer_settings.to_dict(),
        "featurization": dict(featurization or LEGACY_FEATURIZATION),
        **extra,
    }
    payload["sha256"] = payload_digest(payload)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(payload, tmp)
    tmp.replace(path)


def payload_digest(payload: dict[str, Any]) -> str:
    """SHA-256 of everything in a checkpoint but its own digest: tensor bytes and plain values.

    torch's zip reader does not check its CRCs, so bytes overwritten inside the weights would
    load silently; the digest makes such damage an error.
    """
    digest = hashlib.sha256()

    def walk(value: Any, where: str) -> None:
        if isinstance(value, torch.Tensor):
            t = value.detach().cpu().contiguous().reshape(-1)
            digest.update(f"{where}:{t.dtype}:{tuple(value.shape)}:".encode())
            digest.update(t.view(torch.uint8).numpy().tobytes())
        elif isinstance(value, dict):
            for key in sorted(value, key=str):
                walk(value[key], f"{where}/{key}")
        elif isinstance(value, list | tuple):
            for i, item in enumerate(value):
                walk(item, f"{where}[{i}]")
        else:
            digest.update(f"{where}={json.dumps(value, default=str)};".encode())

    walk({k: v for k, v in payload.items() if k != "sha256"}, "")
    return digest.hexdigest()


def read_payload(path: str | Path) -> dict[str, Any]:
    """The checkpoint's dict, loaded with ``weights_only=True`` and checked.

    Raises:
        FileNotFoundError: no such file.
        ValueError: the file is corrupt, not a checkpoint, or from an unknown format.
    """
    path = Path(path)
    if path.is_dir():
        path = path / run_folder.MODEL
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - torch.load on damaged bytes raises anything
        # (IndexError, KeyError, UnicodeDecodeError...): every failure here means a bad file.
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ValueError(f"{path} is not a readable mimoe checkpoint ({first})") from None
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        found = payload.get("format") if isinstance(payload, dict) else type(payload).__name__
        raise ValueError(f"{path}: expected format {CHECKPOINT_FORMAT!r}, found {found!r}")
    missing = [k for k in _REQUIRED if k not in payload]
    if missing:
        raise ValueError(f"{path}: checkpoint lacks {missing}")
    # Checkpoints written before the digest existed have none; they load as before.
    if "sha256" in payload and payload["sha256"] != payload_digest(payload):
        raise ValueError(f"{path} is not a readable mimoe checkpoint (its contents do not match "
                         "its checksum: the file is damaged)")  # fmt: skip
    return payload


def load_checkpoint(path: str | Path) -> TrainedModel:
    """:meth:`TrainedModel.load`: a checkpoint file or a run folder holding ``model.pt``."""
    return TrainedModel.load(path)
