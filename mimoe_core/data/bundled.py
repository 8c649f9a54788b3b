"""The datasets that ship inside the package, by name (sources and licenses: SOURCES.md)."""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from mimoe_core.data.readers import read_csv
from mimoe_core.data.table import MoleculeTable, Task

_TOX21_TASKS = (
    "NR-AR NR-AR-LBD NR-AhR NR-Aromatase NR-ER NR-ER-LBD NR-PPAR-gamma "
    "SR-ARE SR-ATAD5 SR-HSE SR-MMP SR-p53"
).split()


@dataclass(frozen=True)
class DatasetInfo:
    """What a bundled dataset holds.

    Attributes:
        name: The name ``load_dataset`` takes.
        file: The gzip CSV in ``mimoe_core/data/bundled/``.
        task: ``"regression"`` or ``"classification"``.
        targets: Label columns.
        description: Property and unit.
        polymer: ``*`` atoms are polymer connection points.
        has_ids: The file has an ``id`` column.
        unit: Unit of the regression targets, shown beside metrics and on axes ("" for
            classification and unitless targets).
    """

    name: str
    file: str
    task: Task
    targets: tuple[str, ...]
    description: str
    polymer: bool = False
    has_ids: bool = True
    unit: str = ""


BUNDLED: dict[str, DatasetInfo] = {
    info.name: info
    for info in (
        DatasetInfo(
            "freesolv",
            "freesolv",
            "regression",
            ("expt",),
            "FreeSolv hydration free energy (kcal/mol)",
            unit="kcal/mol",
        ),
        DatasetInfo(
            "esol",
            "esol",
            "regression",
            ("logS",),
            "ESOL aqueous solubility, log10(mol/L)",
            unit="log mol/L",
        ),
        DatasetInfo(
            "lipo",
            "lipo",
            "regression",
            ("exp",),
            "Lipophilicity, octanol/water logD at pH 7.4",
            unit="log units",
        ),
        DatasetInfo(
            "bace",
            "bace",
            "classification",
            ("Class",),
            "BACE-1 inhibition, binary (IC50 <= 100 nM)",
        ),
        DatasetInfo(
            "bace_pic50",
            "bace",
            "regression",
            ("pIC50",),
            "BACE-1 inhibition, pIC50",
            unit="log units",
        ),
        DatasetInfo(
            "tox21",
            "tox21",
            "classification",
            tuple(_TOX21_TASKS),
            "Tox21, 12 binary toxicity assays with missing labels",
        ),
        DatasetInfo(
            "clintox",
            "clintox",
            "classification",
            ("FDA_APPROVED", "CT_TOX"),
            "ClinTox: FDA approval and clinical-trial toxicity, binary",
            has_ids=False,
        ),
        DatasetInfo(
            "polymer_tg",
            "polymer_tg",
            "regression",
            ("tg",),
            "Polymer glass transition temperature (°C)",
            polymer=True,
            unit="°C",
            has_ids=False,
        ),
        DatasetInfo(
            "polymer_density",
            "polymer_density",
            "regression",
            ("density",),
            "Polymer density (g/cm³)",
            polymer=True,
            unit="g/cm³",
            has_ids=False,
        ),
        DatasetInfo(
            "polymer_mt",
            "polymer_mt",
            "regression",
            ("mt",),
            "Polymer melting temperature (°C)",
            polymer=True,
            unit="°C",
            has_ids=False,
        ),
        DatasetInfo(
            "polymer_o2",
            "polymer_o2",
            "regression",
            ("o2",),
            "Polymer O2 permeability (Barrer)",
            polymer=True,
            unit="Barrer",
            has_ids=False,
        ),
    )
}


def bundled_path(name: str) -> Path:
    """Path of a bundled dataset's compressed CSV."""
    info = dataset_info(name)
    return Path(str(resources.files("mimoe_core.data") / "bundled" / f"{info.file}.csv.gz"))


def dataset_info(name: str) -> DatasetInfo:
    """The :class:`DatasetInfo` of a bundled dataset.

    Raises:
        ValueError: Unknown name; the message lists the bundled datasets.
    """
    key = name.strip().lower()
    if key not in BUNDLED:
        raise ValueError(
            f"unknown dataset {name!r}; bundled datasets: {', '.join(BUNDLED)}"
            "; downloadable: hiv, bbbp, sider, muv; and 'qm9' with the optional qm9pack package"
        )
    return BUNDLED[key]


def load_dataset(name: str, limit: int | None = None) -> MoleculeTable:
    """Load a bundled dataset by name, or QM9 when qm9pack is installed.

    Args:
        name: One of ``BUNDLED`` (``freesolv``, ``esol``, ``lipo``, ``bace``, ``bace_pic50``,
            ``tox21``, ``clintox``, ``polymer_tg``, ``polymer_density``, ``polymer_mt``,
            ``polymer_o2``), ``qm9`` (needs qm9pack), or a downloadable MoleculeNet set
            (``hiv``, ``bbbp``, ``sider``, ``muv``; fetched once, see
            :mod:`mimoe_core.data.download`).
        limit: Keep only the first ``limit`` molecules (quick runs; QM9's size limit).

    Returns:
        The dataset as a :class:`MoleculeTable`; rows with unusable labels are already in
        ``table.skipped`` (molecules that fail to parse or embed are reported later, by
        featurization).

    Examples:
        >>> table = load_dataset("freesolv")
        >>> len(table), table.task, table.target_names
        (642, 'regression', ['expt'])
    """
    key = name.strip().lower()
    if key == "qm9":
        from mimoe_core.data.qm9 import load_qm9

        return load_qm9(limit=limit)
    from mimoe_core.data.download import REMOTE, load_remote

    if key in REMOTE:
        return load_remote(key, limit=limit)
    info = dataset_info(name)
    table = read_csv(
        bundled_path(name),
        smiles_col="smiles",
        target_cols=list(info.targets),
        task=info.task,
        id_col="id" if info.has_ids else None,
        name=info.name,
        polymer=info.polymer,
    )
    table.source = f"bundled:{info.name}"
    table.unit = info.unit
    return table.head(limit) if limit is not None else table
