"""``import mimoe_core as mc`` and ``mimoe --version``."""

from __future__ import annotations

import subprocess
import sys

import pytest

import mimoe_core as mc
from mimoe_core.cli import main

EVERYDAY = ["load_dataset", "read_csv", "read_sdf", "featurize", "make_split", "train",
            "predict", "load_run"]  # fmt: skip


def test_the_everyday_functions_are_at_the_top_level_and_are_the_owners_objects():
    from mimoe_core import data, featurization, inference, run_folder, training

    owners = {"load_dataset": data, "read_csv": data, "read_sdf": data, "make_split": data,
              "featurize": featurization, "train": training, "predict": inference,
              "load_run": run_folder}  # fmt: skip
    for name in EVERYDAY:
        assert getattr(mc, name) is getattr(owners[name], name), name
        assert name in mc.__all__ and name in dir(mc)


def test_importing_mimoe_core_loads_no_torch_until_a_torch_function_is_used():
    code = (
        "import sys, mimoe_core as mc\n"
        "assert 'torch' not in sys.modules\n"
        "mc.load_dataset; mc.load_run\n"
        "assert 'torch' not in sys.modules, 'data and run-folder readers need no torch'\n"
        "mc.train\n"
        "assert 'torch' in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


def test_an_unknown_top_level_name_is_an_attribute_error():
    with pytest.raises(AttributeError, match="has no attribute 'trian'"):
        mc.trian  # noqa: B018


def test_the_top_level_api_runs_end_to_end(tmp_path):
    table = mc.load_dataset("freesolv", limit=24)
    data = mc.featurize(table, progress=False, n_jobs=1, cache_dir=tmp_path / "cache")
    split = mc.make_split("random", data.smiles)
    settings = mc.TrainSettings(epochs=1, batch_size=8, progress=False, device="cpu")
    tiny = {"expert": {"hidden_channels": 8, "num_layers": 1}, "gate": {"hidden_channels": 8}}
    mc.train(data, split, tiny, settings, out_dir=tmp_path / "run")
    run = mc.load_run(tmp_path / "run")
    result = mc.predict(tmp_path / "run", ["CCO", "not a smiles"], n_jobs=1)
    assert run.metrics["n_test"] == len(split.test)
    assert result.status == ["ok", "skipped"]


def test_version_flag_prints_the_package_version(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out.strip() == f"mimoe {mc.__version__}"
