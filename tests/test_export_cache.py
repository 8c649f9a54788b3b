"""``tools/export_cache.py``: a cache holding only what featurizing the named datasets
reads, enough to featurize them again without computing anything."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from mimoe_core.cache import ArrayCache
from mimoe_core.featurization import CACHE_FILE, featurize_dataset

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))
import export_cache  # noqa: E402


def test_the_export_holds_the_named_datasets_entries_and_nothing_else(tmp_path, monkeypatch):
    source, out = tmp_path / "source", tmp_path / "out"
    monkeypatch.setenv("MIMOE_CACHE_DIR", str(source))
    featurize_dataset("esol", 3, progress=False, n_jobs=1)  # in the source, not exported
    # The first export computes freesolv's 4 molecules into the source; the second reads them.
    assert export_cache.export(["freesolv"], out, limit=4) == 8  # a conformer, a trajectory
    assert export_cache.export(["freesolv"], out, limit=4) == 8
    assert len(ArrayCache(source / CACHE_FILE, "features")) == 8 + 6
    exported = ArrayCache(out / CACHE_FILE, "features")
    assert len(exported) == 8

    before = featurize_dataset("freesolv", 4, progress=False, n_jobs=1)
    monkeypatch.setenv("MIMOE_CACHE_DIR", str(out))
    written = []
    monkeypatch.setattr(ArrayCache, "put_many", lambda self, items: written.extend(items))
    again = featurize_dataset("freesolv", 4, progress=False, n_jobs=1)
    assert written == []  # every entry came from the export
    for a, b in zip(before.data_list, again.data_list, strict=True):
        assert np.array_equal(a.pos.numpy(), b.pos.numpy())
        assert np.array_equal(a.topo.numpy(), b.topo.numpy())
