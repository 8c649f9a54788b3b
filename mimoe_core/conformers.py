"""3D conformers: SMILES -> RDKit molecule with hydrogens -> ETKDGv3 -> MMFF94 (UFF fallback).

This module needs RDKit and numpy only (no torch), so worker processes start light.

Choices, also in the README:
    * Embedding: ETKDGv3 with a fixed seed; if it fails, ETKDGv3 from random coordinates.
    * Optimization: MMFF94 when MMFF has parameters for every atom, else UFF, else the
      embedded geometry as is (recorded as force field ``"none"``).
    * ``num_conformers > 1`` embeds several conformers and keeps the lowest-energy one.
    * Salts and mixtures: the largest fragment (most heavy atoms) by default, or all.
    * Polymer repeat units: each ``*`` connection point is capped with a methyl group (default)
      or a hydrogen; ``*`` outside a polymer dataset is rejected.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Literal

import numpy as np

from mimoe_core.data.table import Structure3D

# Bump when a change here alters the coordinates produced: it invalidates cached conformers.
CONFORMER_VERSION = 2


class MoleculeRejected(ValueError):
    """A molecule that cannot become a 3D structure; the message says why."""


@dataclass(frozen=True)
class ConformerSettings:
    """Everything that changes the 3D structure made from an input (all part of the cache key).

    Attributes:
        hydrogens: Keep explicit hydrogens in the structure (they are always used to embed).
        fragments: ``"largest"`` keeps the fragment with most heavy atoms (salts, solvates);
            ``"all"`` embeds every fragment together.
        polymer_cap: How ``*`` connection points of polymer repeat units are capped:
            ``"methyl"`` (a CH3 end group, close to the chain's own environment) or
            ``"hydrogen"``. Applies only to datasets marked as polymers.
        num_conformers: Conformers embedded per molecule; the lowest-energy one is kept.
        seed: Random seed of the embedding.
        max_atoms: Molecules with more atoms than this (counted as kept, hydrogens included
            when kept) are rejected before embedding.
        max_iters: Force-field optimization iterations.
    """

    hydrogens: bool = True
    fragments: Literal["largest", "all"] = "largest"
    polymer_cap: Literal["methyl", "hydrogen"] = "methyl"
    num_conformers: int = 1
    seed: int = 0
    max_atoms: int = 250
    max_iters: int = 2000

    def __post_init__(self) -> None:
        if self.fragments not in ("largest", "all"):
            raise ValueError(f"fragments must be 'largest' or 'all', got {self.fragments!r}")
        if self.polymer_cap not in ("methyl", "hydrogen"):
            raise ValueError(
                f"polymer_cap must be 'methyl' or 'hydrogen', got {self.polymer_cap!r}"
            )
        if self.num_conformers < 1 or self.max_atoms < 2 or self.max_iters < 0:
            raise ValueError(f"invalid settings: {self}")

    def to_dict(self) -> dict:
        """Plain form for JSON and cache keys."""
        return asdict(self)


@dataclass(frozen=True)
class Conformer:
    """One molecule's 3D structure and how it was made.

    Attributes:
        z: Atomic numbers ``[N]`` int64.
        pos: Coordinates ``[N, 3]`` float32, in Å.
        smiles: Canonical SMILES of the embedded structure (after fragment choice and capping).
        embedding: ``"etkdg"``, ``"random_coords"`` (fallback) or ``"given"`` (3D input).
        force_field: ``"mmff94"``, ``"uff"``, ``"none"`` or ``"given"``.
        energy: Force-field energy (kcal/mol) of the kept conformer, NaN if not optimized.
        n_fragments: Fragments in the input (1 for a single molecule).
    """

    z: np.ndarray
    pos: np.ndarray
    smiles: str
    embedding: str
    force_field: str
    energy: float
    n_fragments: int

    @property
    def num_atoms(self) -> int:
        """Number of atoms."""
        return len(self.z)


def _quiet_rdkit():
    from rdkit import RDLogger

    class _Quiet:
        def __enter__(self):
            RDLogger.DisableLog("rdApp.*")

        def __exit__(self, *exc):
            RDLogger.EnableLog("rdApp.*")

    return _Quiet()


def parse_smiles(smiles: str):
    """Parse and sanitize a SMILES string.

    Raises:
        MoleculeRejected: Empty, unparsable, or rejected by RDKit's sanitization (the message
            carries RDKit's reason, e.g. a valence error).
    """
    from rdkit import Chem

    smiles = smiles.strip()
    if not smiles:
        raise MoleculeRejected("empty SMILES")
    with _quiet_rdkit():
        mol = Chem.MolFromSmiles(smiles)
        if mol is not None:
            return mol
        raw = Chem.MolFromSmiles(smiles, sanitize=False)
        if raw is None:
            raise MoleculeRejected(f"invalid SMILES {smiles!r}: RDKit cannot parse it")
        try:
            Chem.SanitizeMol(raw)
        except Exception as err:  # RDKit raises several exception types here
            raise MoleculeRejected(f"RDKit rejects {smiles!r}: {err}") from None
    raise MoleculeRejected(f"RDKit rejects {smiles!r}")


def canonical_smiles(smiles: str) -> str:
    """Canonical isomeric SMILES; raises :class:`MoleculeRejected` on bad input."""
    from rdkit import Chem

    return Chem.MolToSmiles(parse_smiles(smiles))


def _cap_polymer(mol, cap: str):
    from rdkit import Chem

    rw = Chem.RWMol(mol)
    for atom in rw.GetAtoms():
        if atom.GetAtomicNum() == 0:
            atom.SetAtomicNum(6 if cap == "methyl" else 1)
            atom.SetIsotope(0)
            atom.SetFormalCharge(0)
            atom.SetNoImplicit(False)
            atom.SetIsAromatic(False)
    capped = rw.GetMol()
    try:
        Chem.SanitizeMol(capped)
    except Exception as err:
        raise MoleculeRejected(f"capping '*' with {cap} gives an invalid molecule: {err}") from None
    # Round trip so hydrogen caps become implicit hydrogens on their neighbours.
    return Chem.MolFromSmiles(Chem.MolToSmiles(capped))


def prepare_molecule(smiles: str, settings: ConformerSettings, polymer: bool = False):
    """Parse, cap ``*``, choose fragments and check size: the molecule that will be embedded.

    Returns:
        ``(mol, n_fragments)`` with ``mol`` an RDKit molecule without explicit hydrogens.

    Raises:
        MoleculeRejected: With the reason (invalid SMILES, ``*`` outside a polymer dataset,
            a single atom or ion, more atoms than ``settings.max_atoms``).
    """
    from rdkit import Chem

    mol = parse_smiles(smiles)
    if any(atom.GetAtomicNum() == 0 for atom in mol.GetAtoms()):
        if not polymer:
            raise MoleculeRejected(
                "contains '*' (a dummy or attachment atom) outside a polymer dataset; "
                "read it with polymer=True to cap the connection points"
            )
        mol = _cap_polymer(mol, settings.polymer_cap)
    fragments = Chem.GetMolFrags(mol, asMols=True, sanitizeFrags=True)
    if len(fragments) > 1 and settings.fragments == "largest":
        mol = max(fragments, key=lambda f: (f.GetNumHeavyAtoms(), f.GetNumAtoms()))
    n_atoms = mol.GetNumHeavyAtoms() + (
        sum(a.GetTotalNumHs() for a in mol.GetAtoms()) if settings.hydrogens else 0
    )
    if n_atoms < 2:
        raise MoleculeRejected(
            f"a single atom or ion has no 3D structure to learn from: {Chem.MolToSmiles(mol)}"
        )
    if n_atoms > settings.max_atoms:
        raise MoleculeRejected(f"{n_atoms} atoms is more than max_atoms={settings.max_atoms}")
    return mol, len(fragments)


def _embed(mol, settings: ConformerSettings) -> tuple[list[int], str]:
    from rdkit.Chem import rdDistGeom

    for embedding, random_coords in (("etkdg", False), ("random_coords", True)):
        params = rdDistGeom.ETKDGv3()
        # RDKit treats randomSeed 0 specially (every conformer of EmbedMultipleConfs comes
        # out identical), so user seed s is RDKit seed s + 1.
        params.randomSeed = settings.seed + 1
        params.useRandomCoords = random_coords
        params.numThreads = 1
        params.timeout = 60  # seconds per attempt; a pathological input must not stall a run
        ids = list(rdDistGeom.EmbedMultipleConfs(mol, settings.num_conformers, params))
        # EmbedMultipleConfs can report ids yet keep no conformer (seen on ClinTox row 400).
        if ids and mol.GetNumConformers() == len(ids):
            return ids, embedding
        mol.RemoveAllConformers()
    raise MoleculeRejected("3D embedding failed (ETKDGv3, then from random coordinates)")


def _optimize(mol, settings: ConformerSettings) -> tuple[int, str, float]:
    """Optimize every conformer; return the id of the lowest-energy one and the force field."""
    from rdkit.Chem import rdForceFieldHelpers as ff

    candidates = (
        ("mmff94", ff.MMFFHasAllMoleculeParams, ff.MMFFOptimizeMoleculeConfs),
        ("uff", ff.UFFHasAllMoleculeParams, ff.UFFOptimizeMoleculeConfs),
    )
    for name, has_params, optimize in candidates:
        if not has_params(mol):
            continue
        try:
            results = optimize(mol, maxIters=settings.max_iters)
        except (ValueError, RuntimeError):  # RDKit force-field setup failures: next option
            continue
        energies = [energy for _, energy in results]
        best = int(np.argmin(energies))
        return mol.GetConformers()[best].GetId(), name, float(energies[best])
    return mol.GetConformers()[0].GetId(), "none", float("nan")


def embed_smiles(
    smiles: str, settings: ConformerSettings | None = None, polymer: bool = False
) -> Conformer:
    """Make a 3D conformer from SMILES (deterministic for a given seed).

    Args:
        smiles: Input SMILES.
        settings: :class:`ConformerSettings` (defaults when None).
        polymer: ``*`` atoms are polymer connection points, capped per the settings.

    Returns:
        The :class:`Conformer`.

    Raises:
        MoleculeRejected: The input cannot become a 3D structure; the message says why.

    Examples:
        >>> conf = embed_smiles("O")
        >>> conf.z.tolist(), conf.force_field
        ([8, 1, 1], 'mmff94')
    """
    from rdkit import Chem

    settings = settings or ConformerSettings()
    mol, n_fragments = prepare_molecule(smiles, settings, polymer)
    with _quiet_rdkit():
        mol = Chem.AddHs(mol)
        ids, embedding = _embed(mol, settings)
        conf_id, force_field, energy = _optimize(mol, settings)
    pos = mol.GetConformer(conf_id).GetPositions()
    if not np.isfinite(pos).all():
        raise MoleculeRejected("the optimized geometry has non-finite coordinates")
    z = np.array([a.GetAtomicNum() for a in mol.GetAtoms()], dtype=np.int64)
    if not settings.hydrogens:
        heavy = z > 1
        z, pos = z[heavy], pos[heavy]
    return Conformer(
        z=z,
        pos=pos.astype(np.float32),
        smiles=Chem.MolToSmiles(Chem.RemoveHs(mol)),
        embedding=embedding,
        force_field=force_field,
        energy=energy,
        n_fragments=n_fragments,
    )


def structure_conformer(
    structure: Structure3D, settings: ConformerSettings | None = None
) -> Conformer:
    """A :class:`Conformer` from given 3D coordinates (no re-embedding).

    Raises:
        MoleculeRejected: Non-finite or mis-shaped coordinates, a single atom, or too many atoms.
    """
    settings = settings or ConformerSettings()
    z = np.asarray(structure.z, dtype=np.int64).reshape(-1)
    pos = np.asarray(structure.pos, dtype=np.float64)
    if pos.shape != (len(z), 3):
        raise MoleculeRejected(f"coordinates have shape {pos.shape}, expected ({len(z)}, 3)")
    if not np.isfinite(pos).all():
        raise MoleculeRejected("coordinates contain NaN or infinity")
    if (z < 1).any() or (z > 118).any():
        raise MoleculeRejected("atomic numbers must lie in 1..118")
    if not settings.hydrogens:
        z, pos = z[z > 1], pos[z > 1]
    if len(z) < 2:
        raise MoleculeRejected("a single atom has no 3D structure to learn from")
    if len(z) > settings.max_atoms:
        raise MoleculeRejected(f"{len(z)} atoms is more than max_atoms={settings.max_atoms}")
    return Conformer(
        z=z,
        pos=pos.astype(np.float32),
        smiles=structure.smiles,
        embedding="given",
        force_field="given",
        energy=float("nan"),
        n_fragments=1,
    )
