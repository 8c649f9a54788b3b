"""Evaluation batches (``run_model``, ``run_embeddings``): gathered from molecules packed a
chunk at a time, or from shards, and the same outputs, to the bit, as batches assembled one
molecule at a time."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mimoe_core import forward
from mimoe_core.forward import AssembledOneByOne, batch_source, run_embeddings, run_model
from mimoe_core.models import create_model
from mimoe_core.packed_molecules import PackedMolecules

SMALL = {"expert": {"hidden_channels": 16, "num_layers": 2}, "variance_head": True}


def _one_by_one(monkeypatch: pytest.MonkeyPatch) -> None:
    """Evaluation batches assembled one molecule at a time, as before packing."""
    monkeypatch.setattr(
        forward, "batch_source", lambda molecules: (AssembledOneByOne(molecules), "off")
    )


def _same(got: dict[str, np.ndarray], want: dict[str, np.ndarray]) -> None:
    assert got.keys() == want.keys()
    for key, value in want.items():
        assert got[key].dtype == value.dtype and got[key].shape == value.shape, key
        np.testing.assert_array_equal(got[key], value, err_msg=key)  # NaN equal to NaN


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return create_model(SMALL).double().eval()


@pytest.mark.parametrize("task", ["regression", "classification"])
def test_run_model_packed_in_chunks_equals_one_by_one(freesolv40, model, monkeypatch, task):
    molecules = freesolv40[0].data_list
    # chunks of 14 molecules (2 batches of 7): 40 = 14 + 14 + 12, the last batch short
    monkeypatch.setattr(forward, "PACKED_CHUNK", 10)
    packed = run_model(model, molecules, task, batch_size=7)
    embedded = run_embeddings(model, molecules, batch_size=7)
    assert np.isnan(packed["expert_predictions"]).any()  # experts not run: NaN, compared too
    _one_by_one(monkeypatch)
    _same(packed, run_model(model, molecules, task, batch_size=7))
    _same(embedded, run_embeddings(model, molecules, batch_size=7))


def test_a_chunk_holds_whole_batches_so_the_batches_do_not_change(freesolv40, monkeypatch):
    molecules = freesolv40[0].data_list[:23]
    seen: list[int] = []
    real = forward.batch_source

    def counting(chunk):
        seen.append(len(chunk))
        return real(chunk)

    monkeypatch.setattr(forward, "batch_source", counting)
    monkeypatch.setattr(forward, "PACKED_CHUNK", 10)
    batches = list(forward._batches(molecules, 4, torch.device("cpu"), torch.float64))
    assert seen == [12, 11]  # 3 batches of 4 per chunk
    assert [b.num_graphs for b in batches] == [4, 4, 4, 4, 4, 3]
    assert [row for b in batches for row in b.row.tolist()] == [m.row for m in molecules]


def test_molecules_that_cannot_be_packed_are_evaluated_one_by_one(freesolv40, model):
    molecules = [m.clone() for m in freesolv40[0].data_list[:9]]
    for molecule in molecules:
        molecule.extra = 0.5  # a float attribute: not packable
    source, why_not = batch_source(molecules)
    assert isinstance(source, AssembledOneByOne) and "extra" in why_not
    plain = [m for m in freesolv40[0].data_list[:9]]
    want = run_model(model, plain, "regression", batch_size=4)
    _same(run_model(model, molecules, "regression", batch_size=4), want)


def test_molecules_that_gather_their_own_batches_are_asked_for_them(freesolv40, model):
    molecules = freesolv40[0].data_list
    packed = PackedMolecules(molecules)
    assert batch_source(packed)[0] is packed
    _same(
        run_model(model, packed, "regression", batch_size=8),
        run_model(model, molecules, "regression", batch_size=8),
    )
    assert run_model(model, [], "regression")["prediction"].shape == (0, 1)
