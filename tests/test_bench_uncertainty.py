"""The uncertainty benchmark's model-free estimator: distance to the training set."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import bench_uncertainty as bench  # noqa: E402


def test_similarity_distance_is_one_minus_mean_tanimoto_of_the_nearest_training_molecules():
    from rdkit import Chem, DataStructs
    from rdkit.Chem import rdFingerprintGenerator

    reference = ["CCO", "CCCO", "CCCCO", "c1ccccc1", "c1ccccc1O", "CC(=O)O", "CCN", "CCCl"]
    queries = ["CCO", "c1ccccc1C", "ClC(Cl)(Cl)Cl"]
    found = bench._similarity_distance(queries, bench._fingerprints(reference))
    assert found.shape == (3, 1)
    generator = rdFingerprintGenerator.GetMorganGenerator(radius=2, fpSize=2048)
    fps = {s: generator.GetFingerprint(Chem.MolFromSmiles(s)) for s in reference + queries}
    for row, query in enumerate(queries):
        pairs = sorted(DataStructs.TanimotoSimilarity(fps[query], fps[r]) for r in reference)
        assert found[row, 0] == np.float64(1.0 - np.mean(pairs[-bench.NEIGHBOURS :]))
    # A molecule in the training set is nearer than one that shares nothing with it.
    assert found[0, 0] < found[2, 0]


def test_identical_training_molecules_are_at_distance_zero():
    assert (
        bench._similarity_distance(["c1ccncc1"], bench._fingerprints(["c1ccncc1"] * 5))[0, 0] == 0.0
    )


def test_full_size_report_renders_from_its_committed_runs(tmp_path):
    results = Path(bench.__file__).parent / "results"
    out = tmp_path / "uncertainty_full.md"
    argv = ["--epochs", "100", "--hidden", "128", "--ema", "0.999", "--report-only"]
    assert bench.main([*argv, "--out", str(out)]) == 0

    def tables(text: str) -> str:  # the header above names the date and the machine
        return text[text.index("\n| dataset |") :]

    assert tables(out.read_text()) == tables((results / "uncertainty_full.md").read_text())
    assert ", this command trained nothing: it rendered the finished runs, " in out.read_text()
