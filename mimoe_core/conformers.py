"""3D conformers: SMILES -> RDKit molecule with hydrogens -> ETKDGv3 -> MMFF94 (UFF fallback).

This module needs RDKit and numpy only (no torch), so worker processes start light.

Choices, also in the README:
    * Embedding: ETKDGv3 with a fixed seed; if it fails, ETKDGv3 from random coordinates.
    * Optimization: MMFF94 when MMFF has parameters for every atom, else UFF, else the
      embedded geometry as is (recorded as force field ``"none"``).
    * ``num_conformers > 1`` embeds several conformers and keeps the lowest-energy one among
      those whose force-field set-up succeeded; whether its optimization converged is recorded.
    * ``keep_conformers = M > 1`` (a conformer ensemble) embeds at least M and keeps the M of
      lowest energy, ranked (``Conformer.ensemble``); when fewer are usable, the ranked ones
      are repeated in order to fill M, and ``Conformer.distinct`` says how many there are.
    * An embedding attempt that runs past ``EMBED_TIMEOUT_S`` raises :class:`EmbeddingTimeout`,
      a rejection for this run only (featurization does not cache it).
    * Atoms are counted on the molecule that is embedded, explicit hydrogens (``[H][H]``,
      ``[2H]O[2H]``) included; elements at or past ``mimoe_core.constants.MAX_Z`` are rejected.
    * Salts and mixtures: the largest fragment (most heavy atoms) by default, or all.
    * Polymer repeat units: each ``*`` connection point is capped with a methyl group (default)
      or a hydrogen; ``*`` outside a polymer dataset is rejected.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from typing import Literal

import numpy as np

from mimoe_core.constants import MAX_Z
from mimoe_core.data.table import Structure3D

# Bump when a change here alters the coordinates produced: it invalidates cached conformers.
# 3: explicit hydrogens counted, failed force-field set-ups excluded, convergence recorded.
CONFORMER_VERSION = 3

#: Seconds one embedding attempt may take (RDKit's ``timeout``), so a pathological input
#: cannot stall a run.
EMBED_TIMEOUT_S = 60

_clock = time.monotonic  # a module attribute so tests can make time pass


class MoleculeRejected(ValueError):
    """A molecule that cannot become a 3D structure; the message says why."""


class EmbeddingTimeout(MoleculeRejected):
    """Embedding ran out of time: cached apart from other failures.

    A timeout may say more about the machine (slow, busy) than about the molecule, so the
    cache marks it and ``retry_timeouts=True`` (``--retry-timeouts``) computes it again.
    """


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
        keep_conformers: M, conformers kept per molecule, ranked by energy (an ensemble;
            at least M are embedded). 1 (default) keeps one, as before.
        seed: Random seed of the embedding.
        max_atoms: Molecules with more atoms than this (counted on the structure that is
            embedded, hydrogens included when kept) are rejected before embedding.
        max_iters: Force-field optimization iterations.
    """

    hydrogens: bool = True
    fragments: Literal["largest", "all"] = "largest"
    polymer_cap: Literal["methyl", "hydrogen"] = "methyl"
    num_conformers: int = 1
    keep_conformers: int = 1
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
        if self.keep_conformers < 1:
            raise ValueError(
                f"keep_conformers (conformers per molecule) must be >= 1, got "
                f"{self.keep_conformers}"
            )
        if self.num_conformers < 1 or self.max_atoms < 2 or self.max_iters < 0:
            raise ValueError(f"invalid settings: {self}")

    @property
    def embedded(self) -> int:
        """How many conformers are embedded per molecule."""
        return max(self.num_conformers, self.keep_conformers)

    def to_dict(self) -> dict:
        """Plain form for JSON and cache keys.

        ``keep_conformers`` is left out at 1, so single-conformer settings keep the cache
        keys (and the checkpoints) they had before ensembles existed.
        """
        plain = asdict(self)
        if plain["keep_conformers"] == 1:
            del plain["keep_conformers"]
        return plain


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
        converged: Whether the force-field optimization of the kept conformer converged
            within ``max_iters``; None when nothing was optimized (force field ``"none"`` or
            ``"given"``) or when unknown (conformers cached before this was recorded).
        ensemble: With ``keep_conformers = M > 1``, the M kept conformers' coordinates
            ``[M, N, 3]`` float32, lowest energy first (``ensemble[0]`` is ``pos``); None for
            one conformer.
        ensemble_energies: Their energies ``[M]`` (kcal/mol; NaN without a force field).
        distinct: How many of the M are distinct conformers (fewer when fewer were usable
            and the ranked ones were repeated); 1 without an ensemble.
    """

    z: np.ndarray
    pos: np.ndarray
    smiles: str
    embedding: str
    force_field: str
    energy: float
    n_fragments: int
    converged: bool | None = None
    ensemble: np.ndarray | None = None
    ensemble_energies: np.ndarray | None = None
    distinct: int = 1

    @property
    def num_conformers(self) -> int:
        """Conformers held: M of an ensemble, else 1."""
        return 1 if self.ensemble is None else len(self.ensemble)

    @property
    def num_atoms(self) -> int:
        """Number of atoms."""
        return len(self.z)


@contextlib.contextmanager
def _quiet_rdkit() -> Iterator[None]:
    """RDKit's log off inside (the reasons reach the user as MoleculeRejected messages)."""
    from rdkit import RDLogger

    RDLogger.DisableLog("rdApp.*")
    try:
        yield
    finally:
        RDLogger.EnableLog("rdApp.*")


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
    result = Chem.MolFromSmiles(Chem.MolToSmiles(capped))
    if result is None:
        raise MoleculeRejected(f"capping '*' with {cap} gives a molecule RDKit cannot re-read")
    return result


def _check_elements(z: np.ndarray) -> None:
    """Reject atomic numbers the models cannot embed (``1 <= z < MAX_Z``), naming the element."""
    bad = sorted({int(v) for v in np.asarray(z).reshape(-1) if not 1 <= v < MAX_Z})
    if not bad:
        return
    from rdkit import Chem

    table = Chem.GetPeriodicTable()
    names = ", ".join(
        f"{table.GetElementSymbol(v) if 0 <= v <= 118 else '?'} (atomic number {v})" for v in bad
    )
    raise MoleculeRejected(
        f"{names} outside the elements the model embeds: atomic numbers 1..{MAX_Z - 1} "
        f"(MAX_Z = {MAX_Z})"
    )


def prepare_molecule(smiles: str, settings: ConformerSettings, polymer: bool = False):
    """Parse, cap ``*``, choose fragments and check atoms: the molecule that will be embedded.

    Atoms are counted on that molecule with its hydrogens (implicit and explicit, such as
    ``[H][H]`` or ``[2H]O[2H]``) when ``settings.hydrogens`` is True, else its heavy atoms:
    exactly the atoms of the structure that featurization keeps.

    Returns:
        ``(mol, n_fragments)`` with ``mol`` an RDKit molecule; its canonical SMILES names the
        structure that is embedded (featurization finds duplicates on it).

    Raises:
        MoleculeRejected: With the reason (invalid SMILES, ``*`` outside a polymer dataset,
            an element the model cannot embed, a single atom or ion, more atoms than
            ``settings.max_atoms``).
    """
    from rdkit import Chem

    mol = parse_smiles(smiles)
    if any(atom.GetAtomicNum() == 0 for atom in mol.GetAtoms()):
        if not polymer:
            raise MoleculeRejected(
                "contains '*' (a dummy or attachment atom) outside a polymer dataset; "
                "read it with polymer=True to cap the connection points"
            )
        with _quiet_rdkit():  # the reason goes into the rejection, not onto stderr
            mol = _cap_polymer(mol, settings.polymer_cap)
    with _quiet_rdkit():
        fragments = Chem.GetMolFrags(mol, asMols=True, sanitizeFrags=True)
    if len(fragments) > 1 and settings.fragments == "largest":
        mol = max(fragments, key=lambda f: (f.GetNumHeavyAtoms(), f.GetNumAtoms()))
    _check_elements(np.array([a.GetAtomicNum() for a in mol.GetAtoms()]))
    with _quiet_rdkit():
        with_h = Chem.AddHs(mol)
    z = np.array([a.GetAtomicNum() for a in with_h.GetAtoms()])
    n_atoms = len(z) if settings.hydrogens else int((z > 1).sum())
    if n_atoms < 2:
        raise MoleculeRejected(
            f"a single atom or ion has no 3D structure to learn from: {Chem.MolToSmiles(mol)}"
        )
    if n_atoms > settings.max_atoms:
        raise MoleculeRejected(f"{n_atoms} atoms is more than max_atoms={settings.max_atoms}")
    return mol, len(fragments)


def _timed_out(params, elapsed: float) -> bool:
    """Whether an embedding attempt failed on the timeout (RDKit's count, else the clock)."""
    from rdkit.Chem import rdDistGeom

    if elapsed >= EMBED_TIMEOUT_S:
        return True
    cause = getattr(rdDistGeom.EmbedFailureCauses, "EXCEEDED_TIMEOUT", None)
    if cause is None or not params.trackFailures:
        return False
    counts = params.GetFailureCounts()
    return int(cause) < len(counts) and counts[int(cause)] > 0


def _embed(mol, settings: ConformerSettings) -> tuple[list[int], str]:
    from rdkit.Chem import rdDistGeom

    timed_out = False
    for embedding, random_coords in (("etkdg", False), ("random_coords", True)):
        params = rdDistGeom.ETKDGv3()
        # RDKit treats randomSeed 0 specially (every conformer of EmbedMultipleConfs comes
        # out identical), so user seed s is RDKit seed s + 1.
        params.randomSeed = settings.seed + 1
        params.useRandomCoords = random_coords
        params.numThreads = 1
        params.timeout = EMBED_TIMEOUT_S
        if hasattr(params, "trackFailures"):  # counts failure causes, the timeout among them
            params.trackFailures = True
        start = _clock()
        ids = list(rdDistGeom.EmbedMultipleConfs(mol, settings.embedded, params))
        # EmbedMultipleConfs can report ids yet keep no conformer (seen on ClinTox row 400).
        if ids and mol.GetNumConformers() == len(ids):
            return ids, embedding
        timed_out = timed_out or _timed_out(params, _clock() - start)
        mol.RemoveAllConformers()
    if timed_out:
        raise EmbeddingTimeout(
            f"3D embedding timed out (over {EMBED_TIMEOUT_S} s); the cache remembers it, and "
            "--retry-timeouts (retry_timeouts=True) tries it again"
        )
    raise MoleculeRejected("3D embedding failed (ETKDGv3, then from random coordinates)")


def _optimize(mol, settings: ConformerSettings) -> tuple[list[int], str, list[float], bool | None]:
    """Optimize every conformer; rank those whose force-field set-up worked by energy.

    Returns:
        ``(conformer ids, force field, energies, converged)``: the usable conformers, lowest
        energy first (ties in embedding order), and whether the lowest one converged.
    """
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
        # Per conformer RDKit returns (0 converged | 1 more iterations needed | -1 set-up
        # failed, energy); a failed set-up reports energy -1, which must not win the argmin.
        usable = [
            (float(energy), n, flag == 0)
            for n, (flag, energy) in enumerate(results)
            if flag != -1 and np.isfinite(energy)
        ]
        if not usable:
            continue
        ranked = sorted(usable, key=lambda u: (u[0], u[1]))
        conformers = mol.GetConformers()
        ids = [conformers[n].GetId() for _, n, _ in ranked]
        return ids, name, [e for e, _, _ in ranked], ranked[0][2]
    ids = [c.GetId() for c in mol.GetConformers()]
    return ids, "none", [float("nan")] * len(ids), None


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
        _, embedding = _embed(mol, settings)
        conf_ids, force_field, energies, converged = _optimize(mol, settings)
    positions = [mol.GetConformer(c).GetPositions() for c in conf_ids]
    keep = settings.keep_conformers
    # One conformer: the lowest-energy one, as always; an ensemble skips non-finite ones.
    finite = [n for n, pos in enumerate(positions[: None if keep > 1 else 1])
              if np.isfinite(pos).all()]  # fmt: skip
    if not finite:
        raise MoleculeRejected("the optimized geometry has non-finite coordinates")
    z = np.array([a.GetAtomicNum() for a in mol.GetAtoms()], dtype=np.int64)
    heavy = z > 1 if not settings.hydrogens else np.ones(len(z), dtype=bool)
    z = z[heavy]
    pos = positions[finite[0]][heavy]
    ensemble = ensemble_energies = None
    if keep > 1:
        # Ranked; when fewer than M are usable, they repeat in order to fill M.
        chosen = [finite[n % len(finite)] for n in range(keep)]
        ensemble = np.stack([positions[n][heavy] for n in chosen]).astype(np.float32)
        ensemble_energies = np.array([energies[n] for n in chosen], dtype=np.float64)
    return Conformer(
        z=z,
        pos=pos.astype(np.float32),
        smiles=Chem.MolToSmiles(Chem.RemoveHs(mol)),
        embedding=embedding,
        force_field=force_field,
        energy=energies[finite[0]],
        n_fragments=n_fragments,
        converged=converged if finite[0] == 0 else None,
        ensemble=ensemble,
        ensemble_energies=ensemble_energies,
        distinct=min(len(finite), keep),
    )


def structure_conformer(
    structure: Structure3D, settings: ConformerSettings | None = None
) -> Conformer:
    """A :class:`Conformer` from given 3D coordinates (no re-embedding).

    With ``keep_conformers = M > 1`` its ensemble holds the given geometry M times.

    Raises:
        MoleculeRejected: Non-finite or mis-shaped coordinates, an element the model cannot
            embed (atomic numbers outside ``1..MAX_Z - 1``), a single atom, or too many atoms.
    """
    settings = settings or ConformerSettings()
    z = np.asarray(structure.z, dtype=np.int64).reshape(-1)
    pos = np.asarray(structure.pos, dtype=np.float64)
    if pos.shape != (len(z), 3):
        raise MoleculeRejected(f"coordinates have shape {pos.shape}, expected ({len(z)}, 3)")
    if not np.isfinite(pos).all():
        raise MoleculeRejected("coordinates contain NaN or infinity")
    _check_elements(z)
    if not settings.hydrogens:
        z, pos = z[z > 1], pos[z > 1]
    if len(z) < 2:
        raise MoleculeRejected("a single atom has no 3D structure to learn from")
    if len(z) > settings.max_atoms:
        raise MoleculeRejected(f"{len(z)} atoms is more than max_atoms={settings.max_atoms}")
    keep = settings.keep_conformers
    return Conformer(
        z=z,
        pos=pos.astype(np.float32),
        smiles=structure.smiles,
        embedding="given",
        force_field="given",
        energy=float("nan"),
        n_fragments=1,
        # A given geometry is one conformer: an ensemble holds it M times (distinct = 1).
        ensemble=np.repeat(pos[None].astype(np.float32), keep, 0) if keep > 1 else None,
        ensemble_energies=np.full(keep, np.nan) if keep > 1 else None,
    )
