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


@dataclass
class PredictionResult:
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

    def __len__(self) -> int:
        return len(self.ids)

    def contributions(self) -> np.ndarray:
        """[M, K, num_targets] alpha_e times expert e's prediction (0 where it did not run).

        For regression they sum over K to ``prediction``; for classification to the logit.
        """
        contrib = self.alpha[..., None] * self.expert_predictions
        return np.where(
            np.isnan(self.expert_predictions) & (self.alpha[..., None] == 0), 0, contrib
        )

    def to_frame(self) -> pd.DataFrame:
        """One row per input: id, smiles, status, reason, one column per target, alpha_1..K."""
        frame = pd.DataFrame(
            {"row": self.rows, "id": self.ids, "smiles": self.smiles, "status": self.status,
             "reason": self.reason}
        )  # fmt: skip
        for t, name in enumerate(self.targets):
            frame[name] = self.prediction[:, t]
        for e in range(self.alpha.shape[1]):
            frame[f"alpha_{e + 1}"] = self.alpha[:, e]
        return frame

    def save(self, folder: str | Path) -> None:
        """Write ``predictions.csv``, ``explanations.npz`` and ``result.json`` to ``folder``."""
        out = Path(folder)
        out.mkdir(parents=True, exist_ok=True)
        self.to_frame().to_csv(out / "predictions.csv", index=False)
        np.savez_compressed(
            out / "explanations.npz",
            prediction=self.prediction,
            alpha=self.alpha,
            expert_predictions=self.expert_predictions,
            topo=self.topo,
        )
        meta = {
            k: getattr(self, k)
            for k in ("task", "targets", "ids", "smiles", "rows", "status", "reason", "radii",
                      "cutoffs", "descriptor_names")
        }  # fmt: skip
        (out / "result.json").write_text(json.dumps(meta, indent=1))

    @classmethod
    def load(cls, folder: str | Path) -> PredictionResult:
        """Read what :meth:`save` wrote."""
        folder = Path(folder)
        meta = json.loads((folder / "result.json").read_text())
        with np.load(folder / "explanations.npz") as arrays:
            return cls(**meta, **{k: arrays[k] for k in arrays.files})
