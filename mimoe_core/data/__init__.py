"""Datasets: bundled benchmarks, CSV/SDF readers, QM9, and splits."""

from mimoe_core.data.bundled import BUNDLED, DatasetInfo, dataset_info, load_dataset
from mimoe_core.data.qm9 import load_qm9
from mimoe_core.data.readers import read_csv, read_sdf
from mimoe_core.data.splits import Split, make_split, random_split, scaffold_split
from mimoe_core.data.table import MoleculeTable, SkipRecord, Structure3D

__all__ = [
    "BUNDLED",
    "DatasetInfo",
    "MoleculeTable",
    "SkipRecord",
    "Split",
    "Structure3D",
    "dataset_info",
    "load_dataset",
    "load_qm9",
    "make_split",
    "random_split",
    "read_csv",
    "read_sdf",
    "scaffold_split",
]
