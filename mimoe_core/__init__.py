"""mimoe_core: data, conformers, topology, models, training and inference for MI-MoE.

The everyday functions are at the top level, so a notebook needs one import::

    import mimoe_core as mc

    table = mc.load_dataset("freesolv")
    data = mc.featurize(table)
    split = mc.make_split("scaffold_balanced", data.smiles)
    result = mc.train(data, split, out_dir="runs/freesolv")
    prediction = mc.predict("runs/freesolv", ["CCO", "c1ccccc1O"])
    run = mc.load_run("runs/freesolv")

They are imported on first use (PEP 562), so ``import mimoe_core`` stays light and does not
load torch: the visual layer reads result objects through this package without it.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

#: Top-level name -> the module that owns it.
_EVERYDAY = {
    "load_dataset": "mimoe_core.data",
    "read_csv": "mimoe_core.data",
    "read_sdf": "mimoe_core.data",
    "make_split": "mimoe_core.data",
    "featurize": "mimoe_core.featurization",
    "featurize_dataset": "mimoe_core.featurization",
    "train": "mimoe_core.training",
    "TrainSettings": "mimoe_core.training",
    "predict": "mimoe_core.inference",
    "embed": "mimoe_core.inference",
    "TrainedModel": "mimoe_core.trained",
    "load_run": "mimoe_core.run_folder",
    "PredictionResult": "mimoe_core.results",
}

__all__ = ["__version__", *_EVERYDAY]


def __getattr__(name: str) -> Any:
    if name in _EVERYDAY:
        value = getattr(importlib.import_module(_EVERYDAY[name]), name)
        globals()[name] = value  # later lookups skip this function
        return value
    raise AttributeError(f"module 'mimoe_core' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
