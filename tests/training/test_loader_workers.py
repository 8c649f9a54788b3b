"""Training batches assembled ahead by loader worker processes: the batches made in line,
the same run, the global random state untouched, errors that reach the trainer, the CLI."""

from __future__ import annotations

import json
import multiprocessing
from collections.abc import Sequence

import numpy as np
import pandas as pd
import pytest
import torch
from batch_equality import same_batch
from tiny_training import TINY, quick
from torch_geometric.data import Data

from mimoe_core import keys
from mimoe_core.cli import main
from mimoe_core.conformer_views import conformer_view
from mimoe_core.conformers import ConformerSettings
from mimoe_core.data import load_dataset
from mimoe_core.data.splits import make_split
from mimoe_core.featurization import featurize
from mimoe_core.forward import assemble_batch
from mimoe_core.shards import ShardedDataset, write_shards
from mimoe_core.training import TrainSettings, train
from mimoe_core.training.batches import TrainingBatches

CPU = torch.device("cpu")
#: Gate dropout and noise draw from the global random state during training: a loader that
#: drew from it too would change the run.
NOISY = {**TINY, "gate": {**TINY["gate"], "dropout": 0.2, "noisy": True}}


def _molecules(n: int, conformers: int = 3) -> list[Data]:
    """Molecules of 2..6 atoms holding ``conformers`` conformers each, every value distinct."""
    gen = torch.Generator().manual_seed(0)
    out = []
    for i in range(n):
        atoms = 2 + i % 5
        out.append(
            Data(
                z=torch.randint(1, 10, (atoms,), generator=gen),
                pos=torch.randn(atoms, 3, generator=gen),
                y=torch.tensor([[float(i)]]),
                y_mask=torch.ones(1, 1, dtype=torch.bool),
                topo=torch.randn(1, 4, 5, generator=gen),
                conf_pos=torch.randn(atoms, conformers, 3, generator=gen),
                conf_topo=torch.randn(1, conformers, 4, 5, generator=gen),
            )
        )
    return out


def _same_batches(a, b) -> None:
    assert len(a) == len(b)
    for first, second in zip(a, b, strict=True):
        same_batch(first, second)


def test_workers_assemble_the_batches_made_in_line():
    molecules = _molecules(23)
    steps = [[4, 0, 17], [22, 1], [5, 6, 7, 8, 9], [3]]
    shown = np.arange(23) % 3  # every conformer shown by some molecule
    inline = list(TrainingBatches(molecules, CPU, torch.float64).epoch(steps, shown))
    # gathered from the packed molecules: the batches PyG assembles from the conformer views
    _same_batches(
        [
            assemble_batch([conformer_view(molecules[i], shown[i]) for i in s], torch.float64)
            for s in steps
        ],  # fmt: skip
        inline,
    )
    workers = TrainingBatches(molecules, CPU, torch.float64, workers=2)
    ahead = list(workers.epoch(iter(steps), shown))
    _same_batches(inline, ahead)
    # the next epoch, other steps and conformers, from the same workers
    again = list(workers.epoch([[1, 2], [0]], (shown + 1) % 3))
    _same_batches(
        list(TrainingBatches(molecules, CPU, torch.float64).epoch([[1, 2], [0]], (shown + 1) % 3)),
        again,
    )
    workers.close()
    assert [b.num_graphs for b in ahead] == [3, 2, 5, 1]
    assert ahead[0][keys.POS].dtype == torch.float64
    # conformer 2 of molecule 17 is the third molecule of the first batch
    first = ahead[0]
    third = first[keys.POS][first.batch == 2]
    assert torch.equal(third, molecules[17]["conf_pos"][:, 2].double())
    assert keys.CONF_POS not in first  # views, not the ensembles


def _children() -> set[int]:
    return {p.pid for p in multiprocessing.active_children()}


def test_workers_start_once_and_stop_when_closed():
    molecules, before = _molecules(12), _children()
    batches = TrainingBatches(molecules, CPU, torch.float32, workers=2)
    seen = []
    for _ in range(3):
        list(batches.epoch([[0, 1], [2, 3], [4]], np.zeros(12, int)))
        seen.append(_children() - before)
    assert len(seen[0]) == 2 and seen[0] == seen[1] == seen[2]  # the same two, every epoch
    batches.close()
    assert not _children() - before


def test_the_loader_leaves_the_global_random_state_alone():
    molecules = _molecules(12)
    torch.manual_seed(5)
    before = torch.get_rng_state()
    batches = TrainingBatches(molecules, CPU, torch.float32, workers=2)
    for _ in range(2):
        list(batches.epoch([[0, 1], [2, 3]], np.zeros(12, int)))
    batches.close()
    assert torch.equal(torch.get_rng_state(), before)


def test_a_list_is_packed_once_and_its_steps_travel_as_plain_lists(monkeypatch):
    from mimoe_core.packed_molecules import PackedMolecules
    from mimoe_core.training import batches as batches_module

    made, gathered = [], []
    real_init, real_batch = PackedMolecules.__init__, PackedMolecules.batch

    def init(self, molecules):
        made.append(len(molecules))
        real_init(self, molecules)

    def batch(self, positions, conformers=None, dtype=None):
        gathered.append((type(positions), type(conformers)))
        return real_batch(self, positions, conformers, dtype)

    monkeypatch.setattr(PackedMolecules, "__init__", init)
    monkeypatch.setattr(PackedMolecules, "batch", batch)
    molecules = _molecules(9)
    batches = TrainingBatches(molecules, CPU, torch.float32)
    for _ in range(2):
        assert len(list(batches.epoch([[0, 1], [8]], np.zeros(9, int)))) == 2
    assert made == [9] and gathered == [(list, list)] * 4
    batches.close()  # drops the packed copy; a later epoch packs again
    assert len(list(batches.epoch([[2]], np.zeros(9, int)))) == 1
    assert made == [9, 9]
    keys = batches_module._Keys()
    keys.steps, keys.conformers = [np.array([3, 1])], np.array([0, 2, 0, 1])
    assert list(keys) == [([3, 1], [1, 2])]


def test_molecules_that_cannot_be_packed_are_assembled_one_by_one_with_a_warning():
    molecules = _molecules(6)
    for i, molecule in enumerate(molecules):
        molecule.weight = 0.5 * i  # a float attribute: PyG batches it, packing does not
    batches = TrainingBatches(molecules, CPU, torch.float64)
    with pytest.warns(UserWarning, match="cannot be packed .*'weight'.*one molecule at a time"):
        made = list(batches.epoch([[5, 0]], np.zeros(6, int)))
    views = [conformer_view(molecules[i], 0) for i in (5, 0)]
    _same_batches([assemble_batch(views, torch.float64)], made)


class _Broken(Sequence):
    """Molecules read lazily, whose position 7 cannot be read (a damaged shard, say)."""

    def __init__(self, molecules):
        self.molecules = molecules

    def __len__(self):
        return len(self.molecules)

    def __getitem__(self, i):
        if i == 7:
            raise ValueError("molecule 7 cannot be read")
        return self.molecules[i]


def test_a_worker_error_reaches_the_trainer_as_itself():
    molecules = _Broken(_molecules(10))
    batches = TrainingBatches(molecules, CPU, torch.float32, workers=2)
    with pytest.raises(ValueError, match="molecule 7 cannot be read"):
        list(batches.epoch([[0, 1], [6, 7]], np.zeros(10, int)))
    batches.close()


def test_a_negative_number_of_workers_is_an_error():
    with pytest.raises(ValueError, match="loader_workers must be >= 0, got -1"):
        TrainSettings(loader_workers=-1)


def _history(result) -> pd.DataFrame:
    return result.history.drop(columns="seconds")


@pytest.fixture(scope="module")
def three_conformers(tmp_path_factory):
    """``(dataset, split)``: 24 FreeSolv molecules holding 3 conformers each."""
    settings = ConformerSettings(keep_conformers=3)
    cache = tmp_path_factory.mktemp("cache")
    ds = featurize(load_dataset("freesolv", limit=24), settings, cache_dir=cache, n_jobs=1,
                   progress=False)  # fmt: skip
    return ds, make_split("random", ds.smiles, seed=0)


def test_training_with_workers_is_the_run_in_line(three_conformers):
    """Gate dropout and noise on, each molecule showing one of 3 conformers per epoch: the
    same batches and the same random draws, so the same run, to the bit (the CPU run is
    deterministic); and no worker is left when it ends."""
    ds, split = three_conformers
    before = _children()
    inline = train(ds, split, NOISY, quick(epochs=2))
    ahead = train(ds, split, NOISY, quick(epochs=2, loader_workers=2))
    pd.testing.assert_frame_equal(_history(ahead), _history(inline), check_exact=True)
    for name, weight in inline.model.state_dict().items():
        assert torch.equal(ahead.model.state_dict()[name], weight), name
    assert ahead.metrics["settings"]["loader_workers"] == 2
    assert inline.metrics["settings"]["loader_workers"] == 0
    assert not _children() - before


def test_no_worker_is_left_when_a_step_raises(freesolv40, monkeypatch):
    ds, split = freesolv40
    before, steps = _children(), [0]

    def failing(*args):
        steps[0] += 1
        if steps[0] == 3:
            raise RuntimeError("injected in step 3")
        return trainer_gradient_norm(*args)

    from mimoe_core.training import trainer

    trainer_gradient_norm = trainer.gradient_norm
    monkeypatch.setattr(trainer, "gradient_norm", failing)
    with pytest.raises(RuntimeError, match="injected in step 3") as raised:
        train(ds, split, TINY, quick(epochs=2, loader_workers=2))
    assert raised.value is not None  # the error, and its frames, still held here
    assert not _children() - before


def test_workers_read_shards_as_the_run_in_line_does(tmp_path):
    shards = write_shards(
        load_dataset("freesolv", limit=40), tmp_path / "shards", shard_size=12,
        n_jobs=1, progress=False,
    )  # fmt: skip
    assert isinstance(shards, ShardedDataset) and len(shards) > 30
    split = make_split("random", shards.smiles, seed=0)
    inline = train(shards, split, TINY, quick(epochs=2))
    ahead = train(
        ShardedDataset(tmp_path / "shards"), split, TINY, quick(epochs=2, loader_workers=2)
    )
    pd.testing.assert_frame_equal(_history(ahead), _history(inline), check_exact=True)


def test_the_cli_passes_the_workers_on_and_refuses_a_negative_number(tmp_path, capsys):
    args = ["train", "--dataset", "freesolv", "--limit", "40", "--hidden", "8", "--epochs", "1",
            "--batch-size", "16", "--quiet", "--jobs", "1", "--device", "cpu", "--split",
            "random"]  # fmt: skip
    assert main([*args, "--loader-workers", "2", "--out", str(tmp_path / "run")]) == 0
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["settings"]["loader_workers"] == 2
    capsys.readouterr()
    # refused before featurizing (which may take hours): nothing cached, nothing written
    bad, cache = tmp_path / "bad", tmp_path / "empty_cache"
    assert main([*args, "--cache-dir", str(cache), "--loader-workers", "-1",
                 "--out", str(bad)]) != 0  # fmt: skip
    assert "--loader-workers must be >= 0, got -1" in capsys.readouterr().err
    assert not bad.exists() and not (cache.exists() and any(cache.iterdir()))


def test_a_run_from_packed_batches_is_the_run_from_batches_made_one_by_one(
    three_conformers, tmp_path, monkeypatch
):
    from mimoe_core import forward
    from mimoe_core.shards import ShardSequence

    ds, split = three_conformers
    packed = train(ds, split, NOISY, quick(epochs=2))
    shards = write_shards(
        load_dataset("freesolv", limit=40), tmp_path / "shards", shard_size=12,
        n_jobs=1, progress=False,
    )  # fmt: skip
    shard_split = make_split("random", shards.smiles, seed=0)
    gathered = train(shards, shard_split, TINY, quick(epochs=2))

    def unpackable(molecules):
        raise ValueError("not packed in this test")

    # nothing packed, for the training batches and the evaluations alike
    monkeypatch.setattr(forward, "PackedMolecules", unpackable)
    monkeypatch.delattr(ShardSequence, "batch")
    with pytest.warns(UserWarning, match="not packed in this test"):
        one_by_one = train(ds, split, NOISY, quick(epochs=2))
    pd.testing.assert_frame_equal(_history(one_by_one), _history(packed), check_exact=True)
    from_shards = train(ShardedDataset(tmp_path / "shards"), shard_split, TINY, quick(epochs=2))
    pd.testing.assert_frame_equal(_history(from_shards), _history(gathered), check_exact=True)
