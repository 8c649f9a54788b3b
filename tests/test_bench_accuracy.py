"""The full-size accuracy benchmark's bookkeeping: which runs, paired differences, verdicts.

The verdicts are what the README quotes, so they are checked on hand-made runs whose answer
is known; the slow test runs the script end to end in its smoke setting.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))
import _parallel_runs  # noqa: E402
import bench_accuracy as bench  # noqa: E402


def _runs(rows: list[tuple[str, str, int, float]]) -> pd.DataFrame:
    """Runs from (dataset, model, split, test) tuples, the other columns filled."""
    frame = pd.DataFrame(rows, columns=["dataset", "model", "split", "test"])
    frame["metric"] = [bench.metrics_of(name)[0] for name in frame.dataset]
    frame["val"], frame["test_mae"], frame["test_pr_auc"] = 1.0, 0.5, 0.5
    frame["blocks"], frame["best_epoch"], frame["epochs_run"], frame["seconds"] = 6, 10, 30, 60.0
    return frame[bench.RUN_COLUMNS]


def _args(tmp_path: Path, **overrides) -> argparse.Namespace:
    values = {"splits": 3, "setting": "full", "work": tmp_path, "chemprop": None, "jobs": 2,
              "report_only": False}  # fmt: skip
    return argparse.Namespace(**{**values, **overrides})


def test_ablations_only_on_freesolv_and_esol():
    assert set(bench.ABLATIONS) <= set(bench.models_for("esol", with_chemprop=False))
    assert not set(bench.ABLATIONS) & set(bench.models_for("bace", with_chemprop=True))
    assert bench.CHEMPROP not in bench.models_for("freesolv", with_chemprop=False)


def test_runs_are_ordered_split_by_split_and_chemprop_needs_an_executable(tmp_path):
    runs = bench.all_runs(_args(tmp_path, splits=2), ["bace"])
    names = [path.name for path, _, _ in runs]
    assert names[: len(runs) // 2] == [n for n in names if "_bace_0_" in n]
    assert not any("chemprop" in n for n in names)
    with_chemprop = bench.all_runs(_args(tmp_path, splits=2, chemprop="chemprop"), ["bace"])
    assert sum("chemprop" in path.name for path, _, _ in with_chemprop) == 2


def test_compile_reaches_every_training_run_and_not_chemprop(tmp_path):
    plain = bench.all_runs(_args(tmp_path, splits=1, chemprop="chemprop"), ["esol"])
    assert all(args[-2] is False for _, fn, args in plain if fn is not bench.chemprop_run)
    faster = bench.all_runs(_args(tmp_path, splits=1, chemprop="chemprop", compile=True), ["esol"])
    trained = [args for _, fn, args in faster if fn is not bench.chemprop_run]
    assert len(trained) == len(faster) - 1 and all(args[-2] is True for args in trained)


def test_the_device_reaches_every_training_run_and_not_chemprop(tmp_path):
    runs = bench.all_runs(_args(tmp_path, splits=1, chemprop="chemprop"), ["esol"])
    assert {args[-1] for _, fn, args in runs if fn is not bench.chemprop_run} == {"cpu"}
    on_gpu = bench.all_runs(_args(tmp_path, splits=1, chemprop="chemprop", device="cuda"), ["esol"])
    devices = [args[-1] for _, fn, args in on_gpu if fn is not bench.chemprop_run]
    assert len(devices) == len(on_gpu) - 1 and set(devices) == {"cuda"}
    chemprop = [args for _, fn, args in on_gpu if fn is bench.chemprop_run]
    assert chemprop == [("esol", 0, "full", "chemprop")]


def test_models_restricts_the_runs_trained_and_names_the_known_ones(tmp_path):
    only = bench.models_named("chemprop_d_mpnn, mi_moe_painn")
    assert only == ["chemprop D-MPNN", "MI-MoE(PaiNN)"]
    runs = bench.all_runs(_args(tmp_path, splits=2, chemprop="chemprop"), ["lipo"], only)
    slugs = ("chemprop_d_mpnn", "mi_moe_painn")
    expected = [f"full_lipo_{split}_{slug}" for split in (0, 1) for slug in slugs]
    assert sorted(path.stem for path, _, _ in runs) == expected
    for bad in ("mi_moe", ","):
        with pytest.raises(ValueError, match="not among .*'single_scale_schnet'"):
            bench.models_named(bad)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error of a machine without CUDA")
def test_device_cuda_without_a_gpu_is_a_clear_error(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_:
        bench.main(["--datasets", "freesolv", "--device", "cuda", "--work", str(tmp_path)])
    assert exit_.value.code == 2
    assert "--device cuda: torch sees no CUDA device" in capsys.readouterr().err
    assert not any(tmp_path.iterdir())  # nothing featurized or trained


def test_runs_on_a_gpu_are_counted_in_the_report():
    rows = [{"gpu": "NVIDIA H100 80GB HBM3"}, {}]
    (note,) = _parallel_runs.origin_notes(rows)
    assert note.startswith("- 1 of these runs trained on a GPU (`--device cuda`")
    assert _parallel_runs.gpu_field("cpu") == {}


def test_paired_difference_is_signed_so_that_negative_favours_the_mixture():
    runs = _runs([
        ("freesolv", "MI-MoE(SchNet)", 0, 1.8), ("freesolv", "single-scale SchNet", 0, 2.0),
        ("bace", "MI-MoE(SchNet)", 0, 0.88), ("bace", "single-scale SchNet", 0, 0.80),
        ("bace", "MI-MoE(SchNet)", 1, 0.70),  # no partner on split 1: left out
    ])  # fmt: skip
    assert bench.paired(runs, "freesolv", "MI-MoE(SchNet)", "single-scale SchNet").tolist() == (
        pytest.approx([-10.0])
    )
    bace = bench.paired(runs, "bace", "MI-MoE(SchNet)", "single-scale SchNet")
    assert bace.index.tolist() == [0] and bace.tolist() == pytest.approx([-10.0])


def test_targets_say_met_not_met_and_not_measured():
    rows = []
    for split in range(3):
        rows += [
            ("freesolv", "MI-MoE(SchNet)", split, 1.40),  # 30 % below 2.0: met
            ("freesolv", "single-scale SchNet", split, 2.00),
            ("freesolv", "MI-MoE(PaiNN)", split, 2.20),  # 10 % above 2.0: worse
            ("freesolv", "single-scale PaiNN", split, 2.00),
            ("esol", "MI-MoE(SchNet)", split, 0.98),  # 2 % below 1.0: not met
            ("esol", "single-scale SchNet", split, 1.00),
            ("freesolv", bench.CHEMPROP, split, 1.50),
            ("bace", "MI-MoE(SchNet)", split, 0.80),
            ("bace", bench.CHEMPROP, split, 0.85),  # chemprop ahead on BACE
        ]
    rows.append(("esol", "MI-MoE(PaiNN)", 0, 0.5))  # one split of three: not measured
    rows += [("esol", bench.ON_CONFORMERS, split, 0.79) for split in range(3)]  # a contender
    text = "\n".join(bench.targets(_runs(rows), splits=3))
    assert (
        "FreeSolv: MI-MoE(SchNet) at least 5 % lower mean RMSE than single-scale SchNet "
        "(matched blocks per molecule): 30.0 % lower -> met" in text
    )
    assert (
        "ESOL: MI-MoE(SchNet) at least 5 % lower mean RMSE than single-scale SchNet "
        "(matched blocks per molecule): 2.0 % lower -> NOT met" in text
    )
    assert (
        "FreeSolv: MI-MoE(PaiNN) at least 5 % lower mean RMSE than single-scale PaiNN "
        "(matched blocks per molecule): 10.0 % higher -> NOT met" in text
    )
    assert (
        "ESOL: MI-MoE(PaiNN) at least 5 % lower mean RMSE than single-scale PaiNN "
        "(matched blocks per molecule): not measured (runs missing)" in text
    )
    assert "ahead on 1 of 2 measured (FreeSolv) -> open" in text
    assert "moonshot, FreeSolv RMSE at most 1.5: best MI-MoE(SchNet) 1.400 -> met" in text
    assert f"moonshot, ESOL RMSE at most 0.8: best {bench.ON_CONFORMERS} 0.790 -> met" in text


def test_report_names_every_dataset_and_why_rows_are_missing(tmp_path):
    runs = _runs([("freesolv", "MI-MoE(SchNet)", s, 2.0) for s in range(3)])
    text = bench.render(runs, _args(tmp_path), "python benchmarks/bench_accuracy.py")
    for name in bench.NAMES.values():
        assert f"## {name} (" in text
    assert "| MI-MoE(SchNet) | 3 of 3 | 2.000 ± 0.000 |" in text
    assert "| single-scale SchNet | 0 of 3 | not run: `--datasets freesolv` continues it |" in text
    assert (
        "not run: a GPU (`bash tools/gpu_checks.sh --accuracy`: `--datasets tox21 --device "
        "cuda`), or many hours on this CPU (`--datasets tox21` continues it) |" in text
    )
    assert "| chemprop D-MPNN | 0 of 3 | not run: no chemprop environment given" in text


def test_the_header_says_how_many_trainings_ran_at_once_or_that_none_did(tmp_path):
    runs = _runs([("esol", "MI-MoE(SchNet)", s, 0.9) for s in range(3)])
    trained = bench.render(runs, _args(tmp_path, jobs=3), "python benchmarks/bench_accuracy.py")
    assert "; 3 trainings at once, 1 thread each\n" in trained
    rendered = bench.render(runs, _args(tmp_path, report_only=True), "... --report-only")
    assert "; this command trained nothing: it rendered the finished runs\n" in rendered
    assert "trainings at once" not in rendered


def test_without_an_executable_the_report_names_the_version_chemprops_runs_recorded():
    runs = _runs([("esol", bench.CHEMPROP, s, 0.8) for s in range(3)])
    assert bench.chemprop_line(None, runs.iloc[:0]) == "not run (no `--chemprop PATH`)"
    assert bench.chemprop_line(None, runs).startswith("3 of its runs do not record the version")
    runs["chemprop_version"] = ["2.3.1", "2.3.1", None]
    line = bench.chemprop_line(None, runs)
    assert line.startswith("2.3.1, as its runs record; 1 of its runs do not record the version")
    assert line.endswith("(none trained now: no `--chemprop PATH`)")
    runs["chemprop_version"] = ["2.3.1", "2.4.0", "2.3.1"]
    assert bench.chemprop_line(None, runs).startswith("2.3.1, 2.4.0, as its runs record (")


@pytest.mark.slow
def test_smoke_setting_runs_end_to_end(tmp_path):
    out = tmp_path / "report.md"
    argv = ["--setting", "smoke", "--datasets", "freesolv", "--splits", "2", "--jobs", "1",
            "--work", str(tmp_path / "work"), "--out", str(out)]  # fmt: skip
    assert bench.main(argv) == 0
    text = out.read_text()
    for model in bench.models_for("freesolv", with_chemprop=False):
        assert f"| {model} | 2 of 2 |" in text
    assert len(list((tmp_path / "work").glob("*.json"))) == 2 * len(
        bench.models_for("freesolv", with_chemprop=False)
    )
    assert "| FreeSolv | 2 | " in text.split("## The ensemble's std as an uncertainty")[1]
    assert bench.main([*argv, "--report-only"]) == 0  # from the finished runs, nothing trained
    # The ensemble's member 0 has the seed of the plain mixture's run: the same model.
    for split in (0, 1):
        runs = {p.stem: json.loads(p.read_text()) for p in (tmp_path / "work").glob(f"*_{split}_*")}
        ensemble = runs[f"smoke_freesolv_{split}_mi_moe_schnet_ensemble_of_3"]
        assert ensemble["member_tests"][0] == runs[f"smoke_freesolv_{split}_mi_moe_schnet"]["test"]
        # A prediction on 5 conformers runs the mixture's blocks 5 times.
        on_conformers = runs[f"smoke_freesolv_{split}_mi_moe_schnet_5_conformers"]
        assert (
            on_conformers["blocks"] == 5 * runs[f"smoke_freesolv_{split}_mi_moe_schnet"]["blocks"]
        )
    assert "| FreeSolv | MI-MoE(SchNet), 5 conformers | MI-MoE(SchNet) | " in text
