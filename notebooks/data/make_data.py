"""Regenerate the example files of tutorial 06 ("your own data") in this folder.

Run from the repository root (or anywhere; the files are written next to this script)::

    python notebooks/data/make_data.py

It writes two files, the same bytes on every run (fixed sample seed, fixed embedding seed,
same RDKit version):

``my_molecules.csv``
    Columns ``name, smiles, logS`` (log10 aqueous solubility in mol/L). 36 molecules drawn
    from the bundled ESOL data (``mimoe_core.data.load_dataset("esol")``, seeded sample)
    plus six rows a real file tends to hold, placed among them so their row numbers show up
    in the reports: an invalid SMILES, an empty SMILES, a salt with two fragments (kept: its
    largest fragment is used), a single ion, a missing label and a label that is not a
    number.

``my_poses.sdf``
    Ten other ESOL molecules with 3D coordinates (RDKit ETKDGv3, seed 42, then MMFF94,
    hydrogens explicit) and the SD properties ``name`` and ``logS``, as a docking or
    quantum-chemistry workflow would hand them over.

The ESOL data are CC0 (see ``mimoe_core/data/bundled/SOURCES.md``).
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

HERE = Path(__file__).resolve().parent
SAMPLE_SEED = 7
EMBED_SEED = 42
N_CSV, N_SDF = 36, 10

#: (position in the CSV's data rows, name, SMILES, logS): rows a real file tends to hold.
BAD_ROWS = [
    (4, "typo_in_smiles", "C1CC(C", "-1.50"),
    (10, "empty_smiles", "", "-2.00"),
    (16, "sodium_acetate", "CC(=O)[O-].[Na+]", "1.18"),
    (22, "sodium_ion", "[Na+]", "0.50"),
    (28, "no_label_yet", "CCCO", ""),
    (34, "label_as_text", "CCCCO", "very soluble"),
]


def esol_rows() -> list[tuple[str, str, float]]:
    """``N_CSV + N_SDF`` (name, SMILES, logS) rows of ESOL, a seeded sample in file order."""
    from mimoe_core.data import load_dataset

    table = load_dataset("esol").sample(N_CSV + N_SDF, seed=SAMPLE_SEED)
    return [
        (name.strip(), smiles, float(value))
        for name, smiles, value in zip(table.ids, table.inputs, table.targets[:, 0], strict=True)
    ]


def write_csv(rows: list[tuple[str, str, float]], path: Path) -> None:
    """The good rows with the bad ones inserted at their positions."""
    lines = [[name, smiles, f"{value:.2f}"] for name, smiles, value in rows]
    for position, name, smiles, label in BAD_ROWS:
        lines.insert(position, [name, smiles, label])
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(["name", "smiles", "logS"])
        writer.writerows(lines)


def write_sdf(rows: list[tuple[str, str, float]], path: Path) -> None:
    """One 3D record per row: ETKDGv3 (seeded) + MMFF94, with name and logS properties."""
    from rdkit import Chem
    from rdkit.Chem import AllChem

    writer = Chem.SDWriter(str(path))
    try:
        for name, smiles, value in rows:
            mol = Chem.AddHs(Chem.MolFromSmiles(smiles))
            params = AllChem.ETKDGv3()
            params.randomSeed = EMBED_SEED
            if AllChem.EmbedMolecule(mol, params) != 0:
                raise RuntimeError(f"could not embed {name} ({smiles})")
            AllChem.MMFFOptimizeMolecule(mol, maxIters=2000)
            mol.SetProp("_Name", name)
            mol.SetProp("name", name)
            mol.SetProp("logS", f"{value:.2f}")
            writer.write(mol)
    finally:
        writer.close()


def main(argv: list[str] | None = None) -> None:
    """Write ``my_molecules.csv`` and ``my_poses.sdf`` into ``--out`` (default: here)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=HERE, help="folder to write into")
    out = parser.parse_args(argv).out
    out.mkdir(parents=True, exist_ok=True)
    rows = esol_rows()
    write_csv(rows[:N_CSV], out / "my_molecules.csv")
    write_sdf(rows[N_CSV:], out / "my_poses.sdf")
    print(f"wrote {out / 'my_molecules.csv'} ({N_CSV + len(BAD_ROWS)} rows) and "
          f"{out / 'my_poses.sdf'} ({N_SDF} records)")  # fmt: skip


if __name__ == "__main__":
    main()
