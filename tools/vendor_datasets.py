"""Rebuild the bundled datasets in mimoe_core/data/bundled/ from ../shared/data.

Each bundled file is a gzip CSV with an ``id`` column (where the source has one), a ``smiles``
column and the target columns, nothing else. Run from the repository root:

    python tools/vendor_datasets.py [--shared ../shared/data]
"""

from __future__ import annotations

import argparse
import gzip
from pathlib import Path

import pandas as pd

# name -> (source file, {source column: bundled column}); order of the dict is the column order.
SOURCES: dict[str, tuple[str, dict[str, str]]] = {
    "freesolv": ("SAMPL.csv", {"iupac": "id", "smiles": "smiles", "expt": "expt"}),
    "esol": (
        "delaney-processed.csv",
        {
            "Compound ID": "id",
            "smiles": "smiles",
            "measured log solubility in mols per litre": "logS",
        },
    ),
    "lipo": ("Lipophilicity.csv.gz", {"CMPD_CHEMBLID": "id", "smiles": "smiles", "exp": "exp"}),
    "bace": ("bace.csv.gz", {"CID": "id", "mol": "smiles", "Class": "Class", "pIC50": "pIC50"}),
    "tox21": (
        "tox21.csv.gz",
        {"mol_id": "id", "smiles": "smiles"}
        | {
            t: t
            for t in (
                "NR-AR NR-AR-LBD NR-AhR NR-Aromatase NR-ER NR-ER-LBD NR-PPAR-gamma "
                "SR-ARE SR-ATAD5 SR-HSE SR-MMP SR-p53"
            ).split()
        },
    ),
    "clintox": (
        "clintox.csv",
        {"smiles": "smiles", "FDA_APPROVED": "FDA_APPROVED", "CT_TOX": "CT_TOX"},
    ),
    "polymer_tg": ("polymer/tg_raw.csv.gz", {"SMILES": "smiles", "tg": "tg"}),
    "polymer_density": ("polymer/density_raw.csv.gz", {"SMILES": "smiles", "density": "density"}),
    "polymer_mt": ("polymer/mt_raw.csv.gz", {"SMILES": "smiles", "mt": "mt"}),
    "polymer_o2": ("polymer/o2_raw.csv.gz", {"SMILES": "smiles", "o2": "o2"}),
}


def vendor(shared: Path, out: Path) -> None:
    """Write one compressed CSV per dataset, keeping rows and values exactly as in the source."""
    out.mkdir(parents=True, exist_ok=True)
    for name, (source, columns) in SOURCES.items():
        # Everything as text: no float round trip, empty cells stay empty (missing labels).
        frame = pd.read_csv(shared / source, dtype=str, keep_default_na=False)
        frame = frame[list(columns)].rename(columns=columns)
        frame["smiles"] = frame["smiles"].str.strip()
        target = out / f"{name}.csv.gz"
        # mtime=0 keeps the gzip bytes reproducible.
        with gzip.GzipFile(target, "wb", mtime=0) as handle:
            handle.write(frame.to_csv(index=False).encode())
        print(f"{name:16s} {len(frame):6d} rows  {target.stat().st_size / 1024:7.1f} KiB")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", type=Path, default=Path("../shared/data"))
    parser.add_argument("--out", type=Path, default=Path("mimoe_core/data/bundled"))
    args = parser.parse_args()
    vendor(args.shared, args.out)
