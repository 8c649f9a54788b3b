"""Chemical atom attributes (atom features beyond the atomic number) from an RDKit molecule.

An option (``featurize(..., atom_attributes=True)``, ``--atom-attributes``): each expert embeds
them with a linear map and adds it to its atomic-number embedding (chemprop's D-MPNN reads
similar ones). Per atom, 0/1 values in the order of :data:`ATOM_ATTRIBUTE_NAMES`:

- hybridization: sp, sp2, sp3, sp3d, sp3d2, other (s for hydrogen, unspecified);
- aromatic; in a ring;
- formal charge -2..+2 (a larger charge counts as the nearest end);
- attached hydrogens 0..4 (4 or more as 4), implicit and explicit together;
- CIP label R, S, none (from the SMILES, or from the 3D coordinates of an SDF record):
  chemprop's clockwise/counter-clockwise tag depends on the order of the neighbours, which
  a permutation-invariant network should not see.

The atoms are those of the molecule as given: :func:`atom_attributes` of the molecule that is
embedded (hydrogens added) follows the conformer's atom order.
"""

from __future__ import annotations

import numpy as np

__all__ = ["ATOM_ATTRIBUTE_NAMES", "NUM_ATOM_ATTRIBUTES", "atom_attributes"]

_HYBRIDIZATIONS = ("SP", "SP2", "SP3", "SP3D", "SP3D2")
_CHARGES = (-2, -1, 0, 1, 2)
_HYDROGENS = (0, 1, 2, 3, 4)
_CIP = ("R", "S")

#: The feature names, in column order.
ATOM_ATTRIBUTE_NAMES: tuple[str, ...] = (
    *(f"hybridization_{h.lower()}" for h in _HYBRIDIZATIONS),
    "hybridization_other",
    "aromatic",
    "in_ring",
    *(f"formal_charge_{c:+d}" if c else "formal_charge_0" for c in _CHARGES),
    *(f"hydrogens_{n}" if n < 4 else "hydrogens_4+" for n in _HYDROGENS),
    "cip_r",
    "cip_s",
    "cip_none",
)
NUM_ATOM_ATTRIBUTES = len(ATOM_ATTRIBUTE_NAMES)


def atom_attributes(mol, from_3d: bool = False) -> np.ndarray:
    """``[num_atoms, NUM_ATOM_ATTRIBUTES]`` uint8 features of ``mol``'s atoms, in atom order.

    Args:
        mol: a sanitized RDKit molecule (with or without explicit hydrogens).
        from_3d: take the stereo centres from the molecule's 3D conformer (an SDF record)
            instead of its stereo tags (a SMILES); default False.

    Example:
        >>> from rdkit import Chem
        >>> feats = atom_attributes(Chem.MolFromSmiles("c1ccccc1O"))
        >>> int(feats[0, ATOM_ATTRIBUTE_NAMES.index("aromatic")]), int(feats[6].sum())
        (1, 4)
    """
    from rdkit import Chem

    mol = Chem.Mol(mol)  # the stereo perception below writes properties onto the molecule
    if from_3d and mol.GetNumConformers():
        Chem.AssignStereochemistryFrom3D(mol)
    else:
        Chem.AssignStereochemistry(mol, cleanIt=True, force=True)
    out = np.zeros((mol.GetNumAtoms(), NUM_ATOM_ATTRIBUTES), dtype=np.uint8)
    offsets = np.cumsum([0, len(_HYBRIDIZATIONS) + 1, 1, 1, len(_CHARGES), len(_HYDROGENS)])
    for atom in mol.GetAtoms():
        row = out[atom.GetIdx()]
        name = str(atom.GetHybridization()).rsplit(".", 1)[-1]
        row[_HYBRIDIZATIONS.index(name) if name in _HYBRIDIZATIONS else len(_HYBRIDIZATIONS)] = 1
        row[offsets[1]] = atom.GetIsAromatic()
        row[offsets[2]] = atom.IsInRing()
        row[offsets[3] + int(np.clip(atom.GetFormalCharge(), -2, 2)) + 2] = 1
        row[offsets[4] + min(atom.GetTotalNumHs(includeNeighbors=True), 4)] = 1
        cip = atom.GetProp("_CIPCode") if atom.HasProp("_CIPCode") else ""
        row[offsets[5] + (_CIP.index(cip) if cip in _CIP else 2)] = 1
    return out
