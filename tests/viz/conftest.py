"""Synthetic result objects for the visual layer: shaped like real runs, built in ms."""

from __future__ import annotations

import numpy as np
import pytest

from mimoe_core.results import PredictionResult
from mimoe_core.topology import DEFAULT_RADII, DESCRIPTOR_NAMES, descriptor_trajectories

CUTOFFS = [2.0, 2.5, 3.0, 3.5, 4.0]


def benzene() -> tuple[np.ndarray, np.ndarray]:
    ang = np.arange(6) * np.pi / 3
    ring = np.stack([np.cos(ang), np.sin(ang), np.zeros(6)], axis=1)
    return np.array([6] * 6 + [1] * 6), np.vstack([1.39 * ring, 2.48 * ring])


def water() -> tuple[np.ndarray, np.ndarray]:
    angle = np.deg2rad(104.5)
    pos = np.array([[0.0, 0, 0], [0.96, 0, 0], [0.96 * np.cos(angle), 0.96 * np.sin(angle), 0]])
    return np.array([8, 1, 1]), pos


def chain(n: int) -> tuple[np.ndarray, np.ndarray]:
    """A zig-zag carbon chain of n atoms (1.54 Å bonds), no hydrogens."""
    pos = np.zeros((n, 3))
    pos[:, 0] = np.arange(n) * 1.26
    pos[1::2, 1] = 0.89
    return np.full(n, 6), pos


def _smiles(z: np.ndarray) -> str:
    """Benzene, water or a carbon chain, recognized by composition."""
    counts = np.bincount(np.asarray(z), minlength=9)
    if counts[6] == 6 and counts[1] == 6:
        return "c1ccccc1"
    if counts[8] == 1 and counts[1] == 2:
        return "O"
    return "C" * len(z)


def row_fields(smiles: list[str], skipped: tuple[int, ...] = ()) -> dict:
    """The per-row fields of a synthetic result: ids ``mol0``.., rows 0.., status and reason.

    Rows listed in ``skipped`` are marked skipped for an invalid SMILES; the caller blanks
    their arrays.
    """
    num = len(smiles)
    status, reason = ["ok"] * num, [""] * num
    for m in skipped:
        status[m], reason[m] = "skipped", "invalid SMILES"
    return {"ids": [f"mol{m}" for m in range(num)], "smiles": list(smiles),
            "rows": list(range(num)), "status": status, "reason": reason}  # fmt: skip


def make_result(
    structures: list[tuple[np.ndarray, np.ndarray]],
    task: str = "regression",
    top_k: int = 2,
    skipped: tuple[int, ...] = (),
    seed: int = 0,
) -> PredictionResult:
    """A PredictionResult over the given structures with random Top-k routing.

    Entries listed in ``skipped`` are skipped rows (no structure, NaN outputs).
    """
    rng = np.random.default_rng(seed)
    num, k = len(structures), len(CUTOFFS)
    radii = np.asarray(DEFAULT_RADII)
    alpha = np.zeros((num, k))
    for m in range(num):
        chosen = rng.choice(k, size=top_k, replace=False)
        w = rng.random(top_k) + 0.1
        alpha[m, chosen] = w / w.sum()
    experts = np.where(alpha[..., None] > 0, rng.normal(-3.0, 2.0, (num, k, 1)), np.nan)
    prediction = np.nansum(alpha[..., None] * np.nan_to_num(experts), axis=1)
    if task == "classification":
        prediction = 1.0 / (1.0 + np.exp(-prediction))
    labels = (
        prediction + rng.normal(0, 0.5, prediction.shape)
        if task == "regression"
        else (rng.random(prediction.shape) < prediction).astype(float)
    )
    topo = descriptor_trajectories([p for _, p in structures], radii, dtype=np.float64)
    zs = [np.asarray(z) for z, _ in structures]
    ps = [np.asarray(p, dtype=float) for _, p in structures]
    for m in skipped:
        alpha[m] = experts[m] = prediction[m] = labels[m] = topo[m] = np.nan
        zs[m], ps[m] = np.zeros(0, dtype=int), np.zeros((0, 3))
    return PredictionResult(
        task=task,
        targets=["y"],
        **row_fields([_smiles(z) for z, _ in structures], skipped),
        prediction=prediction,
        alpha=alpha,
        expert_predictions=experts,
        topo=topo,
        radii=[float(r) for r in radii],
        cutoffs=list(CUTOFFS),
        descriptor_names=list(DESCRIPTOR_NAMES),
        baseline=[-3.0] if task == "regression" else [0.0],
        labels=labels,
        atomic_numbers=zs,
        positions=ps,
    )


@pytest.fixture
def result() -> PredictionResult:
    """Twelve molecules (benzene, water, chains of 3-12 atoms), one skipped row."""
    structures = [benzene(), water()] + [chain(n) for n in range(3, 13)]
    return make_result(structures, skipped=(5,))


@pytest.fixture
def classification_result() -> PredictionResult:
    structures = [benzene(), water()] + [chain(n) for n in range(3, 23)]
    return make_result(structures, task="classification", seed=1)


TINY_MODEL = {"expert": {"hidden_channels": 8, "num_layers": 1, "num_filters": 8, "num_rbf": 10},
              "gate": {"name": "mlp", "hidden_channels": 8}}  # fmt: skip


def train_tiny_run(out_dir, cache_dir, task: str = "regression"):
    """A real run folder from 2 epochs on 40 molecules (a few seconds on the CPU)."""
    from mimoe_core.data import make_split
    from mimoe_core.featurization import featurize_dataset
    from mimoe_core.training import TrainSettings, train

    name = "freesolv" if task == "regression" else "bace"
    ds = featurize_dataset(name, limit=40, progress=False, n_jobs=1, cache_dir=cache_dir)
    split = make_split("random", ds.smiles)
    settings = TrainSettings(epochs=2, batch_size=16, progress=False, device="cpu")
    train(ds, split, TINY_MODEL, settings, out_dir=out_dir)
    return out_dir


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory):
    """A trained regression run folder (FreeSolv, 40 molecules), shared by the viz tests."""
    root = tmp_path_factory.mktemp("tiny_run")
    return train_tiny_run(root / "run", root / "cache")


def with_uncertainty(result: PredictionResult, coverage: float = 0.9, seed: int = 0):
    """``result`` with a per-molecule std and a central interval at ``coverage``."""
    rng = np.random.default_rng(seed)
    std = np.abs(rng.normal(0.5, 0.2, result.prediction.shape)) + 0.05
    std[~result.ok] = np.nan
    half = 1.645 * std
    result.std, result.coverage, result.uncertainty = std, coverage, "experts"
    result.lower, result.upper = result.prediction - half, result.prediction + half
    return result


UNCERTAINTY_BLOCK = {
    "estimator": "experts",
    "calibration": "conformal",
    "coverage": 0.9,
    "val": {"nll": 1.1, "spearman": 0.31, "miscalibration_area": 0.05, "ence": 0.2,
            "coverage": 0.88, "width": 1.7},
    "test": {"nll": 1.2, "spearman": 0.27, "miscalibration_area": 0.07, "ence": 0.25,
             "coverage": 0.86, "width": 1.8},
}  # fmt: skip


@pytest.fixture
def uncertain_run(tiny_run, tmp_path):
    """A copy of ``tiny_run`` whose test set has std/lower/upper and whose metrics.json
    has a unit and an "uncertainty" block."""
    import json
    import shutil

    run = tmp_path / "uncertain_run"
    shutil.copytree(tiny_run, run, ignore=shutil.ignore_patterns("figures", "report.html"))
    test = with_uncertainty(PredictionResult.load(run / "test_explained"))
    shutil.rmtree(run / "test_explained")
    test.save(run / "test_explained")
    metrics = json.loads((run / "metrics.json").read_text())
    metrics["unit"] = "kcal/mol"
    metrics["uncertainty"] = UNCERTAINTY_BLOCK
    (run / "metrics.json").write_text(json.dumps(metrics))
    return run
