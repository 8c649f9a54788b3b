"""A trained model as one object, and its checkpoint format.

:class:`TrainedModel` is what a training run leaves behind: the model (its target scaling
inside, as buffers; see :mod:`mimoe_core.scaling`), the task and target names, and the
featurization settings that prediction must replay. It loads a checkpoint or a run folder
(:meth:`TrainedModel.load`), predicts molecules (:meth:`~TrainedModel.predict`), explains
featurized ones (:meth:`~TrainedModel.explain`), gives their per-molecule embeddings
(:meth:`~TrainedModel.embed`, :meth:`~TrainedModel.embed_data`) and writes itself back
(:meth:`~TrainedModel.save`).

This module imports neither :mod:`mimoe_core.training` nor :mod:`mimoe_core.inference`; both
build on it (the trainer writes checkpoints, inference loads them; both run models with
:mod:`mimoe_core.forward`), so neither needs the other.

A checkpoint is a plain dict of tensors, numbers, strings and lists, written with
``torch.save`` and read with ``torch.load(..., weights_only=True)``: loading never unpickles
arbitrary objects, so a checkpoint from an untrusted source cannot run code.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, TypedDict

import numpy as np
import torch
from torch_geometric.data import Data
from typing_extensions import Unpack

import mimoe_core
from mimoe_core import keys, run_folder
from mimoe_core.calibration import Calibration, with_uncertainty
from mimoe_core.conformers import ConformerSettings
from mimoe_core.data.table import MoleculeTable, SkipRecord
from mimoe_core.forward import resolve_device, run_embeddings, run_model
from mimoe_core.models import MIMoE, create_model
from mimoe_core.results import EmbeddingResult, PredictionResult
from mimoe_core.scaling import ScaledMIMoE, TargetScaler
from mimoe_core.topology import DESCRIPTOR_NAMES

CHECKPOINT_FORMAT = "mimoe-checkpoint/1"
#: What a checkpoint written before ``featurization`` was recorded was trained on: the trainer
#: and the CLI only ever featurized normalized trajectories of descriptor version 1 (and,
#: before ``atom_attributes`` existed, no atom attributes). Recorded entries override these.
LEGACY_FEATURIZATION = {
    "normalize_descriptors": True,
    "descriptor_version": 1,
    "atom_attributes": False,
}
_REQUIRED = ("format", "model_config", "state_dict", "task", "targets", "scaler", "radii")
#: State-dict keys of the in-model target scaling; checkpoints from before it lack them.
_SCALING_KEYS = ("output_transform.mean", "output_transform.std")


@dataclass
class _Entries:
    """Where featurized molecules and skipped rows go in a result, one entry per slot."""

    slots: list[int]
    rows: list[int]
    ids: list[str]
    smiles: list[str]
    status: list[str]
    reason: list[str]
    topo: np.ndarray

    def row_fields(self) -> dict[str, list]:
        """The per-row fields every result object takes: ids, smiles, rows, status, reason."""
        names = ("ids", "smiles", "rows", "status", "reason")
        return {name: getattr(self, name) for name in names}


def _entries(
    data_list: Sequence[Data], num_rows: int | None, skipped: Sequence[SkipRecord], num_radii: int
) -> _Entries:
    """The entry layout of :meth:`TrainedModel.explain` and :meth:`TrainedModel.embed_data`.

    With ``num_rows``, entry r is source row r (``data.row``) and skipped rows carry their
    skip record; without, one entry per molecule in ``data_list`` order.
    """
    if num_rows is None:
        slots = list(range(len(data_list)))
        num = len(data_list)
    else:
        slots = [int(d[keys.ROW]) for d in data_list]
        num = num_rows
    rows = list(range(num)) if num_rows is not None else [int(d[keys.ROW]) for d in data_list]
    ids, smiles = [""] * num, [""] * num
    status, reason = ["skipped"] * num, [""] * num
    topo = np.full((num, num_radii, len(DESCRIPTOR_NAMES)), np.nan)
    for slot, data in zip(slots, data_list, strict=True):
        topo[slot] = data[keys.TOPO][0].numpy()
        ids[slot], smiles[slot], status[slot] = str(data[keys.MOL_ID]), data[keys.SMILES], "ok"
    for skip in skipped:
        if num_rows is not None:
            ids[skip.row], smiles[skip.row] = skip.mol_id, skip.input
            reason[skip.row] = skip.reason
    return _Entries(slots, rows, ids, smiles, status, reason, topo)


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


class PredictOptions(TypedDict, total=False):
    """The keyword options of :meth:`TrainedModel.predict`, for functions that pass them on."""

    smiles_col: str
    batch_size: int
    device: str
    progress: bool
    n_jobs: int | None
    retry_timeouts: bool


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
            raise TypeError(
                "the target scaling is part of the model now: pass "
                "ScaledMIMoE(model, scaler), then radii"
            )
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
        model = ScaledMIMoE(
            create_model(payload["model_config"]), TargetScaler(**payload["scaler"])
        )
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
        save_checkpoint(
            path,
            self.model,
            self.task,
            self.targets,
            self.radii,
            self.conformer_settings,
            self.featurization,
            **{**kept, **extra},
        )

    def predict(
        self,
        inputs: str | Path | Sequence[str] | MoleculeTable,
        smiles_col: str = "smiles",
        batch_size: int = 64,
        device: str = "auto",
        progress: bool = False,
        n_jobs: int | None = None,
        coverage: float = 0.9,
        retry_timeouts: bool = False,
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
            coverage: the interval's coverage when the model has a :attr:`calibration`,
                default 0.9.
            retry_timeouts: embed again molecules whose embedding timed out on an earlier
                run (remembered by the cache), default False.

        Returns:
            A :class:`~mimoe_core.results.PredictionResult`.
        """
        data_list, placed = self.prepare(
            inputs,
            smiles_col=smiles_col,
            batch_size=batch_size,
            device=device,
            progress=progress,
            n_jobs=n_jobs,
            retry_timeouts=retry_timeouts,
        )
        return self.explain(data_list, **placed, coverage=coverage)

    @property
    def calibration(self) -> Calibration | None:
        """The uncertainty calibration fitted at training (``uncertainty="experts"``), if any."""
        data = self.extra.get("calibration")
        return Calibration.from_dict(data) if data else None

    def embed(
        self,
        inputs: str | Path | Sequence[str] | MoleculeTable,
        **options: Unpack[PredictOptions],
    ) -> EmbeddingResult:
        """Per-molecule embeddings: the mixture the linear head reads and each expert's.

        Molecules are featurized exactly as :meth:`predict` featurizes them (same settings,
        same checks, same options), and every input row gets one entry in input order: ``ok``
        with its embeddings, or ``skipped`` with the reason and NaN arrays. The head applied
        to ``mixture`` (then unscaled) is :meth:`predict`'s prediction.

        Args:
            inputs: as for :meth:`predict`.
            **options: :meth:`predict`'s options (:class:`PredictOptions`: ``smiles_col``,
                ``batch_size``, ``device``, ``progress``, ``n_jobs``, ``retry_timeouts``).

        Returns:
            A :class:`~mimoe_core.results.EmbeddingResult`.
        """
        data_list, placed = self.prepare(inputs, **options)
        return self.embed_data(data_list, **placed)

    def prepare(
        self, inputs: str | Path | Sequence[str] | MoleculeTable, **options: Unpack[PredictOptions]
    ) -> tuple[list[Data], dict[str, Any]]:
        """Featurize ``inputs`` as in training, for :meth:`explain` or :meth:`embed_data`.

        Returns:
            The featurized molecules, and the keyword arguments that run and place them
            (``batch_size``, ``device``, ``num_rows``, ``skipped``): one entry per input row.
        """
        table, ds = self._featurize(
            inputs,
            options.get("smiles_col", "smiles"),
            options.get("progress", False),
            options.get("n_jobs"),
            options.get("retry_timeouts", False),
        )
        placed = {
            "batch_size": options.get("batch_size", 64),
            "device": options.get("device", "auto"),
            "num_rows": table.n_rows,
            "skipped": ds.skipped,
        }
        return ds.data_list, placed

    def _featurize(
        self,
        inputs: str | Path | Sequence[str] | MoleculeTable,
        smiles_col: str,
        progress: bool,
        n_jobs: int | None,
        retry_timeouts: bool = False,
    ) -> tuple[MoleculeTable, Any]:
        """The input table and its featurized dataset, with this model's settings replayed."""
        from mimoe_core.featurization import DESCRIPTOR_VERSION, featurize

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
            retry_timeouts=retry_timeouts,
            atom_attributes=self.featurization.get("atom_attributes", False),
        )
        return table, ds

    def embed_data(self, data_list: Sequence[Data], **placement: Any) -> EmbeddingResult:
        """Embeddings of featurized molecules as a plain result (:meth:`explain`'s layout).

        ``data_list`` are molecules from :func:`mimoe_core.featurization.featurize` with this
        model's settings, and ``placement`` the keyword arguments of :meth:`explain` that run
        and place them (``batch_size`` 64, ``device``, ``num_rows`` and ``skipped`` for one
        entry per source row), as :meth:`prepare` returns them.

        Returns:
            An :class:`EmbeddingResult`: ``mixture`` [M, H], ``experts`` [M, K, H] (NaN where
            an expert was not selected), ``alpha`` [M, K], ``gate_input`` [M, T, D]; NaN
            rows for skipped entries.
        """
        unknown = set(placement) - {"batch_size", "device", "num_rows", "skipped"}
        if unknown:
            raise TypeError(f"embed_data() got unexpected keyword arguments {sorted(unknown)}")
        device = self._move_to(placement.get("device"))
        out = run_embeddings(self.model, data_list, placement.get("batch_size", 64), device)
        entries = _entries(
            data_list, placement.get("num_rows"), placement.get("skipped", ()), len(self.radii)
        )
        num = len(entries.ids)
        num_k, hidden = self.model.num_experts, self.model.head.in_features
        mixture = np.full((num, hidden), np.nan)
        experts = np.full((num, num_k, hidden), np.nan)
        alpha = np.full((num, num_k), np.nan)
        for n, slot in enumerate(entries.slots):
            mixture[slot] = out["mixture"][n]
            experts[slot] = out["experts"][n]
            alpha[slot] = out["alpha"][n]
        return EmbeddingResult(
            **entries.row_fields(),
            mixture=mixture,
            experts=experts,
            alpha=alpha,
            gate_input=entries.topo,
            cutoffs=[float(c) for c in self.model.cutoffs],
            radii=list(self.radii),
            descriptor_names=list(DESCRIPTOR_NAMES),
        )

    def _move_to(self, device: torch.device | str | None) -> torch.device:
        """Resolve ``device`` (None: where the model is) and move the model there."""
        if device is None:
            device = next(self.model.parameters()).device
        elif isinstance(device, str):
            device = resolve_device(device)
        self.model.to(device)
        return device

    def explain(
        self,
        data_list: Sequence[Data],
        batch_size: int = 64,
        device: torch.device | str | None = None,
        num_rows: int | None = None,
        skipped: Sequence[SkipRecord] = (),
        with_labels: bool = False,
        coverage: float = 0.9,
    ) -> PredictionResult:
        """Predictions, routing and structures of featurized molecules as a plain result.

        Args:
            data_list: featurized molecules (from :func:`mimoe_core.featurization.featurize`
                with this model's settings).
            batch_size: molecules per forward pass, default 64.
            device: where the forward passes run (the model moves there); default: where
                the model is.
            num_rows: if given, entry r is the source row r (``data.row``) and rows without
                a molecule are ``skipped`` with the reason from ``skipped``; if None, one
                entry per molecule in ``data_list`` order.
            skipped: skip records of the rows that did not become molecules.
            with_labels: keep the molecules' labels (``data.y``) in ``labels``.
            coverage: the interval's coverage when the model has a :attr:`calibration`,
                default 0.9.

        Returns:
            A :class:`PredictionResult` with structures (atomic numbers and coordinates),
            and with ``std`` (and for regression ``lower``/``upper``) when the model has a
            :attr:`calibration`.
        """
        device = self._move_to(device)
        out = run_model(self.model, data_list, self.task, batch_size, device)
        entries = _entries(data_list, num_rows, skipped, len(self.radii))
        num = len(entries.ids)
        num_k, num_t = self.model.num_experts, len(self.targets)
        prediction = np.full((num, num_t), np.nan)
        alpha = np.full((num, num_k), np.nan)
        experts = np.full((num, num_k, num_t), np.nan)
        labels = np.full((num, num_t), np.nan)
        atomic_numbers = [np.zeros(0, dtype=np.int64) for _ in range(num)]
        positions = [np.zeros((0, 3)) for _ in range(num)]
        for n, (slot, data) in enumerate(zip(entries.slots, data_list, strict=True)):
            prediction[slot] = out["prediction"][n]
            alpha[slot] = out["alpha"][n]
            experts[slot] = out["expert_predictions"][n]
            labels[slot] = data[keys.Y][0].double().numpy()[:num_t] if with_labels else np.nan
            atomic_numbers[slot] = data[keys.Z].numpy().astype(np.int64)
            positions[slot] = data[keys.POS].double().numpy()
        baseline = list(self.scaler.mean) if self.task == "regression" else [0.0] * num_t
        result = PredictionResult(
            task=self.task,
            targets=list(self.targets),
            **entries.row_fields(),
            prediction=prediction,
            alpha=alpha,
            expert_predictions=experts,
            topo=entries.topo,
            radii=list(self.radii),
            cutoffs=[float(c) for c in self.model.cutoffs],
            descriptor_names=list(DESCRIPTOR_NAMES),
            baseline=[float(b) for b in baseline],
            labels=labels if with_labels else None,
            atomic_numbers=atomic_numbers,
            positions=positions,
        )
        # The variance head's own estimate, else the spread over a conformer ensemble;
        # both before any calibration.
        for key, estimator in (("std", "mve"), ("conformer_std", "conformers")):
            if key in out:
                std = np.full((num, num_t), np.nan)
                for n, slot in enumerate(entries.slots):
                    std[slot] = out[key][n]
                result = replace(result, std=std, uncertainty=estimator)
                break
        return with_uncertainty(result, self.calibration, coverage)


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
        raise ValueError(
            f"{path} is not a readable mimoe checkpoint (its contents do not match "
            "its checksum: the file is damaged)"
        )
    return payload


def load_checkpoint(path: str | Path) -> TrainedModel:
    """:meth:`TrainedModel.load`: a checkpoint file or a run folder holding ``model.pt``."""
    return TrainedModel.load(path)
