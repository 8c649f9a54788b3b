"""Transfer learning: ``init_from`` copies a trained run's weights, ``freeze`` holds parts."""

from __future__ import annotations

import json

import pytest
import torch
from tiny_training import TINY, quick

from mimoe_core.cli import main
from mimoe_core.data import make_split
from mimoe_core.training import train
from mimoe_core.training.trainer import TrainingRun


@pytest.fixture(scope="module")
def source(freesolv40, tmp_path_factory):
    """A trained FreeSolv run to start from, and its data and split."""
    root = tmp_path_factory.mktemp("transfer")
    ds, split = freesolv40
    train(ds, split, TINY, quick(epochs=2), out_dir=root / "source")
    return ds, split, root / "source"


def _weights(model, prefix):
    return {k: v.clone() for k, v in model.state_dict().items() if k.startswith(prefix)}


def _source_state(path):
    from mimoe_core.trained import TrainedModel

    return TrainedModel.load(path).model.state_dict()


def test_a_run_started_from_another_holds_its_weights_before_training(source):
    ds, split, path = source
    run = TrainingRun(ds, split, settings=quick(init_from=str(path)))
    theirs = _source_state(path)
    ours = run.model.state_dict()
    copied = [k for k in ours if not k.startswith("output_transform.")]
    assert copied and all(torch.equal(ours[k], theirs[k]) for k in copied)
    assert run.not_copied == [k for k in ours if k.startswith("output_transform.")]
    assert run.model.config["backbone"] == "schnet"  # the source's config, reused


@pytest.mark.parametrize("part, frozen, moving", [("experts", "experts.", "gate."),
                                                 ("gate", "gate.", "experts.")])  # fmt: skip
def test_freeze_holds_one_part_fixed_while_the_other_learns(source, part, frozen, moving):
    ds, split, path = source
    theirs = _source_state(path)
    result = train(ds, split, settings=quick(epochs=2, lr=1e-2, init_from=str(path), freeze=part))
    after = result.model.state_dict()
    assert all(torch.equal(after[k], theirs[k]) for k in after if k.startswith(frozen))
    assert any(not torch.equal(after[k], theirs[k]) for k in after if k.startswith(moving))
    assert result.metrics["settings"]["freeze"] == part
    assert result.metrics["settings"]["init_from"] == str(path)


def test_another_number_of_targets_gets_a_fresh_head_and_keeps_the_rest(source, tmp_path):
    from mimoe_core.data import read_csv
    from mimoe_core.featurization import featurize

    ds, _, path = source
    frame = ds.table
    csv = tmp_path / "two.csv"
    csv.write_text("smiles,a,b\n" + "".join(f"{s},{i},{-i}\n" for i, s in enumerate(frame.smiles)))
    two = featurize(read_csv(csv, target_cols=["a", "b"]), progress=False, n_jobs=1,
                    cache_dir=tmp_path / "c")  # fmt: skip
    run = TrainingRun(two, make_split("random", two.smiles), settings=quick(init_from=str(path)))
    assert run.not_copied == ["head.weight", "head.bias", "output_transform.mean",
                              "output_transform.std"]  # fmt: skip
    theirs = _source_state(path)
    ours = run.model.state_dict()
    assert all(torch.equal(ours[k], theirs[k]) for k in ours if k.startswith("experts."))


def test_an_architecture_mismatch_is_a_clear_error(source):
    ds, split, path = source
    with pytest.raises(ValueError, match=r"architecture differs \(backbone: 'schnet' there"):
        TrainingRun(ds, split, {**TINY, "backbone": "painn"}, quick(init_from=str(path)))
    with pytest.raises(ValueError, match="cutoffs"):
        TrainingRun(ds, split, {**TINY, "cutoffs": [2.0, 3.0]}, quick(init_from=str(path)))
    with pytest.raises(ValueError, match="atom_attributes: False there, True here"):
        TrainingRun(ds, split, {**TINY, "atom_attributes": True}, quick(init_from=str(path)))


def test_another_filtration_grid_is_a_clear_error(source, tmp_path):
    from mimoe_core.data import load_dataset
    from mimoe_core.featurization import featurize

    _, _, path = source
    coarse = featurize(load_dataset("freesolv", limit=12), radii=[1.0, 2.0, 3.0], progress=False,
                       n_jobs=1, cache_dir=tmp_path / "c")  # fmt: skip
    with pytest.raises(ValueError, match="filtration grid"):
        TrainingRun(coarse, make_split("random", coarse.smiles), None, quick(init_from=str(path)))


def test_freeze_without_a_source_and_unknown_parts_are_errors():
    with pytest.raises(ValueError, match="needs init_from"):
        quick(freeze="experts")
    with pytest.raises(ValueError, match="freeze must be one of"):
        quick(init_from="x", freeze="head")


def test_the_cli_fine_tunes_a_run_and_reports_a_mismatch_with_exit_2(source, tmp_path, capsys):
    ds, _, path = source
    csv = tmp_path / "new.csv"
    csv.write_text("smiles,y\n" + "".join(f"{s},{i % 3}\n" for i, s in enumerate(ds.smiles[:24])))
    common = ["train", "--data", str(csv), "--target-cols", "y", "--epochs", "1",
              "--batch-size", "8", "--quiet", "--jobs", "1", "--device", "cpu",
              "--split", "random", "--init-from", str(path)]  # fmt: skip
    assert main([*common, "--freeze", "experts", "--out", str(tmp_path / "ft")]) == 0
    metrics = json.loads((tmp_path / "ft" / "metrics.json").read_text())
    assert metrics["settings"]["freeze"] == "experts"
    assert metrics["model"]["backbone"] == "schnet"
    capsys.readouterr()
    assert main([*common, "--backbone", "painn", "--out", str(tmp_path / "bad")]) == 2
    err = capsys.readouterr().err
    assert "architecture differs" in err and "Traceback" not in err
    assert main([*common[:-1], str(tmp_path / "nowhere"), "--out", str(tmp_path / "x")]) == 2
    assert "no trained model" in capsys.readouterr().err
