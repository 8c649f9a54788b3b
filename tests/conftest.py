"""Shared fixtures: seeding, a per-test cache folder, and small input-file writers."""

from __future__ import annotations

import csv
import random
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pytest
import torch


@pytest.fixture(autouse=True)
def _seed_everything() -> None:
    """Seed random, numpy and torch before every test (e3nn habit)."""
    random.seed(0)
    np.random.seed(0)  # noqa: NPY002 - seeds the legacy global state that libraries use
    torch.manual_seed(0)


@pytest.fixture(autouse=True)
def cache_dir(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point the feature cache at a fresh folder per test, so nothing touches ~/.cache."""
    folder = tmp_path_factory.mktemp("mimoe_cache")
    monkeypatch.setenv("MIMOE_CACHE_DIR", str(folder))
    return folder


@pytest.fixture
def write_csv(tmp_path: Path) -> Callable[..., Path]:
    """Factory: ``write_csv(rows, header=("smiles", "y"), name="data.csv") -> path``.

    Rows are sequences of cells written with the csv module (so quoting is right).
    """

    def _write(
        rows: Sequence[Sequence[object]],
        header: Sequence[str] = ("smiles", "y"),
        name: str = "data.csv",
    ) -> Path:
        path = tmp_path / name
        with path.open("w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(header)
            writer.writerows(rows)
        return path

    return _write


@pytest.fixture
def assert_accounted() -> Callable[..., None]:
    """Check the row accounting of a featurized dataset: rows in = rows kept + rows reported.

    Every source row 0..n_rows-1 appears exactly once, either as a kept molecule or as a skip
    record; returns nothing and raises AssertionError otherwise.
    """

    def _check(dataset, n_rows: int | None = None) -> None:
        table = dataset.table
        if n_rows is not None:
            assert table.n_rows == n_rows
        assert table.n_rows == len(dataset) + len(dataset.skipped)
        kept_rows = [int(d.row) for d in dataset.data_list]
        skipped_rows = [s.row for s in dataset.skipped]
        assert sorted(kept_rows + skipped_rows) == list(range(table.n_rows))
        assert all(s.reason for s in dataset.skipped)

    return _check


@pytest.fixture
def quick_featurize() -> Callable[..., object]:
    """``featurize`` with one process and no progress bar (the fast path for small tests)."""
    from mimoe_core.featurization import featurize

    def _run(table, **kwargs):
        kwargs.setdefault("n_jobs", 1)
        kwargs.setdefault("progress", False)
        return featurize(table, **kwargs)

    return _run


def _featurized_freesolv(tmp_path_factory, limit: int):
    """The first ``limit`` FreeSolv molecules, featurized into a fresh cache, and a random split."""
    from mimoe_core.data import make_split
    from mimoe_core.featurization import featurize_dataset

    cache = tmp_path_factory.mktemp("cache")
    ds = featurize_dataset("freesolv", limit=limit, progress=False, n_jobs=1, cache_dir=cache)
    return ds, make_split("random", ds.smiles)


@pytest.fixture(scope="module")
def freesolv40(tmp_path_factory):
    """``(dataset, split)``: 40 FreeSolv molecules, enough for a two-epoch run."""
    return _featurized_freesolv(tmp_path_factory, 40)


@pytest.fixture(scope="module")
def freesolv120(tmp_path_factory):
    """``(dataset, split)``: 120 FreeSolv molecules, enough for calibrated uncertainties."""
    return _featurized_freesolv(tmp_path_factory, 120)
