"""Plain result objects shared by inference and the visual layer (numpy and pandas only).

They hold arrays, never models, and save to CSV/JSON/NPZ, so ``mimoe_viz`` reads them
without importing torch or training code.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd


class _Entries:
    """What results with one entry per input row share: length, K, which rows are ok."""

    ids: list[str]
    smiles: list[str]
    rows: list[int]
    status: list[str]
    reason: list[str]
    alpha: np.ndarray

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def num_experts(self) -> int:
        """K, the number of experts."""
        return self.alpha.shape[1]

    @property
    def ok(self) -> np.ndarray:
        """[M] bool, True for entries that were not skipped."""
        return np.array([s == "ok" for s in self.status], dtype=bool)

    def _row_frame(self) -> pd.DataFrame:
        """The columns every per-row table starts with: row, id, smiles, status, reason."""
        names = ("rows", "ids", "smiles", "status", "reason")
        columns = ("row", "id", "smiles", "status", "reason")
        return pd.DataFrame({c: getattr(self, n) for c, n in zip(columns, names, strict=True)})


@dataclass
class PredictionResult(_Entries):
    """Predictions with their routing explanations, one entry per input row, input order.

    Attributes:
        task: ``"regression"`` or ``"classification"``.
        targets: target names (num_targets).
        ids, smiles, rows: identifier, SMILES and 0-based source row of each entry.
        status: ``"ok"`` or ``"skipped"``; ``reason`` says why a row was skipped.
        prediction: [M, num_targets] in the original units (probabilities for
            classification); NaN for skipped rows.
        alpha: [M, K] routing weights (NaN for skipped rows).
        expert_predictions: [M, K, num_targets] each selected expert's own prediction in
            the output units before mixing (regression: original units; classification:
            logits); NaN where the expert did not run.
        topo: [M, T, D] descriptor trajectories the gate read (NaN for skipped rows).
        radii: the filtration grid [T] in Å; ``cutoffs``: the K expert cutoffs in Å.
        descriptor_names: the D descriptor names.
        baseline: [num_targets] the output when every expert predicts the training mean:
            the training mean in original units for regression, logit 0 for classification.
            Expert contributions are measured from it (see :meth:`contributions_from_baseline`).
        labels: [M, num_targets] known labels (NaN where unknown), or None.
        atomic_numbers: per entry the atomic numbers [n] of the structure the model saw
            (empty for skipped rows); empty list when structures were not kept.
        positions: per entry the coordinates [n, 3] in Å (empty for skipped rows).
        std: [M, num_targets] the prediction's uncertainty (calibrated when the model is;
            for classification the spread of the probability), or None.
        lower, upper: [M, num_targets] the interval at ``coverage`` (regression), or None.
        coverage: the nominal coverage of ``lower``/``upper``, or None.
        uncertainty: where ``std`` comes from: ``"ensemble"``, ``"mve"``, ``"experts"``,
            ``"conformers"`` (the sample std of the prediction over a molecule's conformer
            ensemble), or ``""`` without one.
    """

    task: str
    targets: list[str]
    ids: list[str]
    smiles: list[str]
    rows: list[int]
    status: list[str]
    reason: list[str]
    prediction: np.ndarray
    alpha: np.ndarray
    expert_predictions: np.ndarray
    topo: np.ndarray
    radii: list[float]
    cutoffs: list[float]
    descriptor_names: list[str] = field(default_factory=list)
    baseline: list[float] = field(default_factory=list)
    labels: np.ndarray | None = None
    atomic_numbers: list[np.ndarray] = field(default_factory=list)
    positions: list[np.ndarray] = field(default_factory=list)
    std: np.ndarray | None = None
    lower: np.ndarray | None = None
    upper: np.ndarray | None = None
    coverage: float | None = None
    uncertainty: str = ""

    @property
    def num_atoms(self) -> np.ndarray:
        """[M] atoms per entry (with hydrogens; 0 for skipped rows or without structures)."""
        if not self.atomic_numbers:
            return np.zeros(len(self), dtype=int)
        return np.array([len(z) for z in self.atomic_numbers], dtype=int)

    def structure(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """``(atomic_numbers [n], positions [n, 3])`` of entry ``index``.

        Raises:
            ValueError: if the result kept no structures or the entry was skipped.
        """
        if not self.positions:
            raise ValueError("this result kept no 3D structures")
        if self.status[index] != "ok":
            raise ValueError(f"entry {index} was skipped: {self.reason[index]}")
        return self.atomic_numbers[index], self.positions[index]

    def contributions_from_baseline(self) -> np.ndarray:
        """[M, K, num_targets] alpha_e (expert_e - baseline): they sum to prediction - baseline.

        For regression in original units; for classification in logits. Because alpha sums
        to 1, ``baseline + sum over K`` is the prediction (the logit for classification).
        """
        base = np.asarray(self.baseline if self.baseline else [0.0] * len(self.targets))
        shifted = self.expert_predictions - base[None, None, :]
        contrib = self.alpha[..., None] * shifted
        return np.where(np.isnan(shifted) & (self.alpha[..., None] == 0), 0, contrib)

    def contributions(self) -> np.ndarray:
        """[M, K, num_targets] alpha_e times expert e's prediction (0 where it did not run).

        For regression they sum over K to ``prediction``; for classification to the logit.
        """
        contrib = self.alpha[..., None] * self.expert_predictions
        return np.where(
            np.isnan(self.expert_predictions) & (self.alpha[..., None] == 0), 0, contrib
        )

    def to_frame(self, with_labels: bool = False) -> pd.DataFrame:
        """One row per input: row, id, smiles, status, reason, the targets, alpha_1..K.

        With an uncertainty, each target also gets ``<target>_std`` and, with an interval,
        ``<target>_lower`` and ``<target>_upper``.

        Args:
            with_labels: False (default): one column per target holds the prediction.
                True: the target's column holds the known label and ``<target>_pred`` the
                prediction (the layout of a run's ``test_predictions.csv``).

        Raises:
            ValueError: if ``with_labels`` is True and the result has no labels.
        """
        if with_labels and self.labels is None:
            raise ValueError("this result has no labels (predict with labels)")
        frame = self._row_frame()
        for t, name in enumerate(self.targets):
            if with_labels:
                frame[name] = self.labels[:, t]
                frame[f"{name}_pred"] = self.prediction[:, t]
            else:
                frame[name] = self.prediction[:, t]
            for suffix in ("std", "lower", "upper"):
                values = getattr(self, suffix)
                if values is not None:
                    frame[f"{name}_{suffix}"] = values[:, t]
        for e in range(self.alpha.shape[1]):
            frame[f"alpha_{e + 1}"] = self.alpha[:, e]
        return frame

    def save(self, folder: str | Path) -> None:
        """Write ``predictions.csv``, ``explanations.npz`` and ``result.json`` to ``folder``."""
        out = Path(folder)
        out.mkdir(parents=True, exist_ok=True)
        self.to_frame().to_csv(out / "predictions.csv", index=False)
        arrays = {
            "prediction": self.prediction,
            "alpha": self.alpha,
            "expert_predictions": self.expert_predictions,
            "topo": self.topo,
        }
        for name in ("labels", "std", "lower", "upper"):
            if getattr(self, name) is not None:
                arrays[name] = getattr(self, name)
        if self.positions:
            # Ragged structures as one flat block plus atom counts.
            arrays["atom_counts"] = self.num_atoms
            arrays["atomic_numbers"] = np.concatenate(
                [np.asarray(z, dtype=np.int64).reshape(-1) for z in self.atomic_numbers]
            )
            arrays["positions"] = np.concatenate(
                [np.asarray(p, dtype=np.float64).reshape(-1, 3) for p in self.positions]
            )
        np.savez_compressed(out / "explanations.npz", **arrays)
        meta = {k: getattr(self, k) for k in _META_REQUIRED + _META_OPTIONAL + _META_SCALARS}
        (out / "result.json").write_text(json.dumps(meta, indent=1))

    @classmethod
    def load(cls, folder: str | Path) -> PredictionResult:
        """Read what :meth:`save` wrote (plain JSON and a NumPy archive, no pickle).

        Raises:
            FileNotFoundError: if ``folder`` does not exist.
            ValueError: if the folder is incomplete or damaged (``result.json`` or
                ``explanations.npz`` missing, truncated or inconsistent); the message names
                the folder and the file.
        """
        folder = Path(folder)
        if not folder.is_dir():
            raise FileNotFoundError(f"no explanations folder at {folder}")
        meta = _read_meta(folder)
        arrays = _read_arrays(folder)
        _check_lengths(folder, meta, arrays)
        counts = arrays.pop("atom_counts", None)
        flat_z, flat_pos = arrays.pop("atomic_numbers", None), arrays.pop("positions", None)
        if counts is not None:
            bounds = np.cumsum(counts)[:-1]
            arrays["atomic_numbers"] = np.split(flat_z, bounds)
            arrays["positions"] = np.split(flat_pos, bounds)
        return cls(**meta, **arrays)


_META_REQUIRED = (
    "task",
    "targets",
    "ids",
    "smiles",
    "rows",
    "status",
    "reason",
    "radii",
    "cutoffs",
)
_META_OPTIONAL = ("descriptor_names", "baseline")
_META_SCALARS = ("coverage", "uncertainty")
_ARRAYS_REQUIRED = ("prediction", "alpha", "expert_predictions", "topo")
_ARRAYS_OPTIONAL = (
    "labels",
    "atom_counts",
    "atomic_numbers",
    "positions",
    "std",
    "lower",
    "upper",
)


def _damaged(folder: Path, what: str) -> ValueError:
    listing = ", ".join(sorted(p.name for p in folder.iterdir())) or "nothing"
    return ValueError(
        f"{folder} is not a complete explanations folder (written by PredictionResult.save "
        f"or mimoe predict --explanations): {what}; it holds: {listing}"
    )


def _read_meta(folder: Path) -> dict:
    file = folder / "result.json"
    if not file.is_file():
        raise _damaged(folder, "result.json is missing")
    try:
        meta = json.loads(file.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise _damaged(folder, f"result.json is unreadable or truncated ({err})") from None
    if not isinstance(meta, dict):
        raise _damaged(folder, "result.json is not a JSON object")
    missing = [k for k in _META_REQUIRED if k not in meta]
    unknown = [k for k in meta if k not in _META_REQUIRED + _META_OPTIONAL + _META_SCALARS]
    if missing or unknown:
        raise _damaged(folder, f"result.json lacks {missing} / has unknown keys {unknown}")
    for key in _META_REQUIRED[1:] + _META_OPTIONAL:
        if key in meta and not isinstance(meta[key], list):
            raise _damaged(folder, f"result.json: {key} is not a list")
    return meta


def _read_arrays(folder: Path) -> dict[str, np.ndarray]:
    import zipfile
    import zlib

    file = folder / "explanations.npz"
    if not file.is_file():
        raise _damaged(folder, "explanations.npz is missing")
    try:
        with np.load(file, allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise _damaged(folder, f"explanations.npz is unreadable or truncated ({first})") from None
    missing = [k for k in _ARRAYS_REQUIRED if k not in arrays]
    unknown = [k for k in arrays if k not in _ARRAYS_REQUIRED + _ARRAYS_OPTIONAL]
    if missing or unknown:
        raise _damaged(folder, f"explanations.npz lacks {missing} / has unknown {unknown}")
    return arrays


def _check_lengths(folder: Path, meta: dict, arrays: dict[str, np.ndarray]) -> None:
    """Every per-entry list and array has one entry per row; structures add up."""
    m = len(meta["ids"])
    for key in ("smiles", "rows", "status", "reason"):
        if len(meta[key]) != m:
            raise _damaged(folder, f"result.json has {len(meta[key])} {key} for {m} ids")
    for key in (
        "prediction",
        "alpha",
        "expert_predictions",
        "topo",
        "labels",
        "atom_counts",
        "std",
        "lower",
        "upper",
    ):
        if key in arrays and (arrays[key].ndim == 0 or len(arrays[key]) != m):
            raise _damaged(folder, f"explanations.npz: {key} does not have {m} rows")
    counts = arrays.get("atom_counts")
    structures = [k for k in ("atom_counts", "atomic_numbers", "positions") if k in arrays]
    if structures and len(structures) != 3:
        raise _damaged(folder, f"explanations.npz has only {structures} of the structures")
    if counts is not None:
        total = int(counts.sum()) if (counts >= 0).all() else -1
        z, pos = arrays["atomic_numbers"], arrays["positions"]
        if total != len(z) or pos.ndim != 2 or pos.shape != (total, 3):
            raise _damaged(folder, "explanations.npz: atom counts do not match the structures")


# --------------------------------------------------------------------------- embeddings

#: The ``format`` entry of an embeddings ``.npz``'s metadata.
EMBEDDING_FORMAT = "mimoe-embeddings/1"


@dataclass
class EmbeddingResult(_Entries):
    """Per-molecule embeddings of a trained model, one entry per input row, input order.

    What the model's shared linear head reads (chemprop's ``fingerprint``, Uni-Mol tools'
    ``get_repr``): ``head(mixture)``, unscaled, is the model's prediction.

    Attributes:
        ids, smiles, rows: identifier, SMILES and 0-based source row of each entry.
        status: ``"ok"`` or ``"skipped"``; ``reason`` says why a row was skipped.
        mixture: [M, H] the alpha-weighted expert embedding ``sum_e alpha_e h_e`` (NaN for
            skipped rows).
        experts: [M, K, H] each expert's readout embedding ``h_e``; NaN where the expert
            was not selected for the molecule, and for skipped rows.
        alpha: [M, K] routing weights (NaN for skipped rows).
        gate_input: [M, T, D] the descriptor trajectories the gate read (NaN for skipped
            rows).
        cutoffs: the K expert cutoffs in Å; ``radii``: the filtration grid [T] in Å.
        descriptor_names: the D descriptor names.
    """

    ids: list[str]
    smiles: list[str]
    rows: list[int]
    status: list[str]
    reason: list[str]
    mixture: np.ndarray
    experts: np.ndarray
    alpha: np.ndarray
    gate_input: np.ndarray
    cutoffs: list[float]
    radii: list[float]
    descriptor_names: list[str] = field(default_factory=list)

    @property
    def hidden_channels(self) -> int:
        """H, the width of the embeddings."""
        return self.mixture.shape[1]

    def to_frame(self) -> pd.DataFrame:
        """One row per input: row, id, smiles, status, reason, alpha_1..K, mix_1..H."""
        frame = self._row_frame()
        columns = {f"alpha_{e + 1}": self.alpha[:, e] for e in range(self.alpha.shape[1])}
        columns |= {f"mix_{h + 1}": self.mixture[:, h] for h in range(self.mixture.shape[1])}
        return pd.concat([frame, pd.DataFrame(columns, index=frame.index)], axis=1)

    def save(self, path: str | Path) -> None:
        """Write ``path``: ``.npz`` (every array + metadata) or ``.csv`` (:meth:`to_frame`).

        The ``.npz`` holds ``mixture``, ``experts``, ``alpha``, ``gate_input`` and
        ``metadata``, a JSON string (ids, smiles, rows, status, reason, cutoffs, radii,
        descriptor_names, format); :meth:`load` reads it back without pickle. The ``.csv``
        holds no per-expert embeddings and gate inputs, and is not read back.

        Raises:
            ValueError: for another suffix.
        """
        path = Path(path)
        suffix = path.suffix.lower()
        if suffix not in (".npz", ".csv"):
            raise ValueError(f"embeddings are saved as .npz or .csv, got {path.name!r}")
        path.parent.mkdir(parents=True, exist_ok=True)
        if suffix == ".csv":
            self.to_frame().to_csv(path, index=False)
            return
        meta = {"format": EMBEDDING_FORMAT, **{k: getattr(self, k) for k in _EMB_META}}
        arrays = {k: np.asarray(getattr(self, k), dtype=np.float64) for k in _EMB_ARRAYS}
        with path.open("wb") as handle:  # a handle: numpy adds no second suffix
            np.savez_compressed(handle, metadata=np.array(json.dumps(meta)), **arrays)

    @classmethod
    def load(cls, path: str | Path) -> EmbeddingResult:
        """Read an ``.npz`` written by :meth:`save` (``allow_pickle=False``).

        Raises:
            FileNotFoundError: no such file.
            ValueError: another suffix (a ``.csv`` is not read back), or a file that is not
                a complete embeddings archive; the message names the file.
        """
        import zipfile
        import zlib

        path = Path(path)
        if path.suffix.lower() != ".npz":
            raise ValueError(
                f"embeddings are read from the .npz that EmbeddingResult.save writes, got "
                f"{path.name!r} (a .csv holds only the mixture and is not read back)"
            )
        if not path.is_file():
            raise FileNotFoundError(f"no embeddings file at {path}")
        try:
            with np.load(path, allow_pickle=False) as npz:
                arrays = {k: npz[k] for k in npz.files}
        except (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error) as err:
            first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise _bad_embeddings(path, f"unreadable or truncated ({first})") from None
        missing = [k for k in (*_EMB_ARRAYS, "metadata") if k not in arrays]
        if missing:
            raise _bad_embeddings(path, f"it lacks {missing}")
        try:
            meta = json.loads(str(arrays.pop("metadata")))
        except json.JSONDecodeError as err:
            raise _bad_embeddings(path, f"its metadata is not JSON ({err})") from None
        if not isinstance(meta, dict) or meta.pop("format", None) != EMBEDDING_FORMAT:
            raise _bad_embeddings(path, f"its metadata is not {EMBEDDING_FORMAT!r}")
        if sorted(meta) != sorted(_EMB_META):
            raise _bad_embeddings(path, f"its metadata has keys {sorted(meta)}")
        m = len(meta["ids"])
        lengths = [len(meta[k]) for k in ("smiles", "rows", "status", "reason")]
        lengths += [len(arrays[k]) if arrays[k].ndim else -1 for k in _EMB_ARRAYS]
        if any(n != m for n in lengths):
            raise _bad_embeddings(path, f"its lists and arrays do not all have {m} entries")
        return cls(**meta, **{k: arrays[k] for k in _EMB_ARRAYS})


_EMB_META = (
    "ids",
    "smiles",
    "rows",
    "status",
    "reason",
    "cutoffs",
    "radii",
    "descriptor_names",
)
_EMB_ARRAYS = ("mixture", "experts", "alpha", "gate_input")


def _bad_embeddings(path: Path, what: str) -> ValueError:
    return ValueError(f"{path} is not an embeddings file written by EmbeddingResult.save: {what}")
