"""Train/validation/test splits: Bemis-Murcko scaffold and seeded random.

Scaffold splits come largest-scaffold-first (deterministic) or seeded balanced. Indices refer to
positions in the list of molecules that is split.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

SPLIT_METHODS = ("scaffold", "scaffold_balanced", "random")


@dataclass(frozen=True)
class Split:
    """Index arrays (into the split list) of the three parts; disjoint and covering it.

    ``source`` says where a split read from a file came from (``method == "file"``; see
    :mod:`mimoe_core.data.split_files`), including how many rows it dropped; such a split
    need not cover every molecule.
    """

    train: np.ndarray
    val: np.ndarray
    test: np.ndarray
    method: str
    seed: int | None = None
    source: dict | None = None

    def sizes(self) -> tuple[int, int, int]:
        """``(n_train, n_val, n_test)``."""
        return len(self.train), len(self.val), len(self.test)

    def to_dict(self, rows: Sequence[int] | None = None) -> dict:
        """Plain form for ``splits.json``; ``rows`` maps positions to source-file rows."""
        out: dict = {"method": self.method, "seed": self.seed}
        if self.source is not None:
            out["source"] = self.source
        for part in ("train", "val", "test"):
            idx = getattr(self, part)
            out[part] = idx.tolist()
            if rows is not None:
                out[f"{part}_rows"] = np.asarray(rows)[idx].tolist()
        return out

    def save(self, path: str | Path, rows: Sequence[int] | None = None) -> None:
        """Write the split as JSON (positions, and source rows when given)."""
        Path(path).write_text(json.dumps(self.to_dict(rows), indent=1))

    @classmethod
    def load(cls, path: str | Path) -> Split:
        """Read a split written by :meth:`save`.

        Raises:
            FileNotFoundError: no such file.
            ValueError: the file is truncated, not JSON, or not a split (missing parts, indices
                that are not non-negative integers, parts that overlap); the message names it.
        """
        path = Path(path)
        try:
            text = path.read_text()
        except FileNotFoundError:
            raise FileNotFoundError(f"no split file at {path}") from None
        except (OSError, UnicodeDecodeError) as err:
            raise ValueError(f"{path} cannot be read as a split file ({err})") from None
        try:
            data = json.loads(text)
        except json.JSONDecodeError as err:
            raise ValueError(f"{path} is not valid JSON (truncated?): {err}") from None
        if not isinstance(data, dict):
            raise ValueError(f"{path} is not a split file: expected a JSON object")
        missing = [k for k in ("train", "val", "test", "method") if k not in data]
        if missing:
            raise ValueError(f"{path} is not a split file: it lacks {missing}")
        if not isinstance(data["method"], str) or not isinstance(data.get("seed"), int | None):
            raise ValueError(f"{path}: method must be a string and seed an integer or null")
        parts = []
        for part in ("train", "val", "test"):
            values = data[part]
            ok = isinstance(values, list) and all(
                isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in values
            )
            if not ok:
                raise ValueError(f"{path}: {part} must be a list of non-negative integers")
            parts.append(np.asarray(values, dtype=np.int64).reshape(-1))
        every = np.concatenate(parts)
        if len(np.unique(every)) != len(every):
            raise ValueError(f"{path}: train, val and test overlap or repeat an index")
        source = data.get("source")
        return cls(*parts, method=data["method"], seed=data.get("seed"), source=source)


def _check_fractions(fractions: Sequence[float]) -> tuple[float, float, float]:
    if len(fractions) != 3 or any(f < 0 for f in fractions) or abs(sum(fractions) - 1) > 1e-6:
        raise ValueError(f"fractions must be three non-negative numbers summing to 1: {fractions}")
    return fractions[0], fractions[1], fractions[2]


def murcko_scaffold(smiles: str) -> str:
    """Bemis-Murcko scaffold SMILES (no chirality); ``""`` for acyclic or unparsable input."""
    from rdkit import Chem, RDLogger
    from rdkit.Chem.Scaffolds import MurckoScaffold

    RDLogger.DisableLog("rdApp.*")
    try:
        mol = Chem.MolFromSmiles(smiles)
        if mol is None:
            return ""
        return MurckoScaffold.MurckoScaffoldSmiles(mol=mol, includeChirality=False)
    finally:
        RDLogger.EnableLog("rdApp.*")


def random_split(n: int, fractions: Sequence[float] = (0.8, 0.1, 0.1), seed: int = 0) -> Split:
    """Seeded random split of ``n`` items."""
    f_train, f_val, _ = _check_fractions(fractions)
    order = np.random.default_rng(seed).permutation(n)
    n_train, n_val = int(round(f_train * n)), int(round(f_val * n))
    return Split(
        np.sort(order[:n_train]),
        np.sort(order[n_train : n_train + n_val]),
        np.sort(order[n_train + n_val :]),
        method="random",
        seed=seed,
    )


def scaffold_split(
    smiles: Sequence[str],
    fractions: Sequence[float] = (0.8, 0.1, 0.1),
    balanced: bool = False,
    seed: int = 0,
) -> Split:
    """Split molecules so that no Bemis-Murcko scaffold is shared between parts.

    Default (``balanced=False``): deterministic, the usual MoleculeNet/DeepChem order. Scaffold
    sets are sorted by size, largest first (ties by first occurrence), and each goes to train
    while train stays within its share, else to validation, else to test. The seed is unused.

    ``balanced=True`` (chemprop's "scaffold_balanced"): sets larger than half the test share go
    first, in a seeded random order; the remaining small sets follow in a seeded random order.
    Different seeds give different splits, which multi-seed runs need.

    Args:
        smiles: One SMILES per molecule (acyclic molecules share the empty scaffold).
        fractions: Train, validation and test shares.
        balanced: Use the seeded balanced variant.
        seed: Seed of the balanced variant.
    """
    f_train, f_val, f_test = _check_fractions(fractions)
    n = len(smiles)
    groups: dict[str, list[int]] = defaultdict(list)
    for i, smi in enumerate(smiles):
        groups[murcko_scaffold(smi)].append(i)
    sets = list(groups.values())
    if balanced:
        rng = np.random.default_rng(seed)
        big = [s for s in sets if len(s) > f_test * n / 2]
        small = [s for s in sets if len(s) <= f_test * n / 2]
        sets = [big[i] for i in rng.permutation(len(big))] + [
            small[i] for i in rng.permutation(len(small))
        ]
    else:
        sets.sort(key=lambda s: (-len(s), s[0]))
    train_cap, val_cap = f_train * n, (f_train + f_val) * n
    train: list[int] = []
    val: list[int] = []
    test: list[int] = []
    for group in sets:
        if len(train) + len(group) <= train_cap:
            train += group
        elif len(train) + len(val) + len(group) <= val_cap:
            val += group
        else:
            test += group
    return Split(
        np.sort(np.asarray(train, dtype=np.int64)),
        np.sort(np.asarray(val, dtype=np.int64)),
        np.sort(np.asarray(test, dtype=np.int64)),
        method="scaffold_balanced" if balanced else "scaffold",
        seed=seed if balanced else None,
    )


def make_split(
    method: str,
    smiles: Sequence[str],
    fractions: Sequence[float] = (0.8, 0.1, 0.1),
    seed: int = 0,
) -> Split:
    """Dispatch by name: ``"scaffold"``, ``"scaffold_balanced"`` or ``"random"``."""
    if method == "scaffold":
        return scaffold_split(smiles, fractions)
    if method == "scaffold_balanced":
        return scaffold_split(smiles, fractions, balanced=True, seed=seed)
    if method == "random":
        return random_split(len(smiles), fractions, seed)
    raise ValueError(f"unknown split method {method!r}; choose one of {SPLIT_METHODS}")
