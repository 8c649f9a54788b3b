"""Options and input handling shared by the ``mimoe`` commands that read molecules.

The input options (``--dataset``, ``--data``, ...), the 3D conformer options, and the functions
that turn them into a :class:`~mimoe_core.data.table.MoleculeTable` or a featurized dataset.
Used by :mod:`mimoe_core.cli` (``featurize``) and :mod:`mimoe_core.cli_train` (``train``).
"""

from __future__ import annotations

import argparse
from pathlib import Path


def _csv_list(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def _add_input_options(parser: argparse.ArgumentParser, shards: bool = False) -> None:
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--dataset", help="a bundled dataset name (see `mimoe datasets`) or qm9")
    source.add_argument("--data", type=Path, help="your own .csv(.gz) or .sdf file")
    if shards:
        source.add_argument(
            "--shards",
            type=Path,
            metavar="DIR",
            help="molecules featurized by `mimoe featurize --shards DIR`, read lazily",
        )
    parser.add_argument("--smiles-col", default="smiles", help="CSV column with SMILES")
    parser.add_argument(
        "--target-cols",
        type=_csv_list,
        default=None,
        help="comma-separated label columns (CSV) or SD properties (SDF); with --dataset, "
        "the dataset's own targets",
    )
    parser.add_argument("--id-col", default=None, help="CSV column (SD property) naming rows")
    parser.add_argument("--task", choices=("regression", "classification"), default="regression")
    parser.add_argument(
        "--polymer", action="store_true", help="'*' atoms are polymer connection points (CSV)"
    )
    parser.add_argument("--limit", type=int, default=None, help="only the first N molecules")
    parser.add_argument(
        "--unit",
        default=None,
        help="unit of the targets for reports (e.g. kcal/mol); bundled datasets know theirs",
    )


def _add_conformer_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("3D conformers")
    group.add_argument("--no-hydrogens", action="store_true", help="drop hydrogens after embedding")
    group.add_argument(
        "--fragments",
        choices=("largest", "all"),
        default="largest",
        help="salts and mixtures: keep the largest fragment (default) or all",
    )
    group.add_argument("--polymer-cap", choices=("methyl", "hydrogen"), default="methyl")
    group.add_argument(
        "--num-conformers", type=int, default=1, help="embed N, keep the lowest-energy one"
    )
    group.add_argument(
        "--conformers",
        type=int,
        default=1,
        metavar="M",
        help="a conformer ensemble: keep the M lowest-energy conformers per molecule; training "
        "shows one per epoch (seeded), prediction averages over all M and reports their spread",
    )
    group.add_argument("--conformer-seed", type=int, default=0)
    group.add_argument("--max-atoms", type=int, default=250, help="reject larger molecules")
    group.add_argument("--jobs", type=int, default=None, help="worker processes (default: all)")
    group.add_argument("--cache-dir", type=Path, default=None, help="default $MIMOE_CACHE_DIR")
    group.add_argument("--no-cache", action="store_true", help="neither read nor write the cache")
    add_retry_timeouts_option(group)
    group.add_argument("--quiet", action="store_true", help="no progress bars")


def add_retry_timeouts_option(parser: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    """``--retry-timeouts``, for every command that featurizes molecules."""
    parser.add_argument(
        "--retry-timeouts",
        action="store_true",
        help="embed again the molecules whose embedding timed out on an earlier run (the "
        "cache remembers timeouts and skips them otherwise)",
    )


def options_shards_ignore(args: argparse.Namespace) -> list[str]:
    """The input and conformer options given in ``args`` that ``--shards`` makes moot.

    Shards hold molecules featurized once, with the settings of ``mimoe featurize``: an
    option that would change what is read or how it is embedded (``--limit``,
    ``--conformers``, ...) cannot apply to them.
    """
    defaults = argparse.ArgumentParser(add_help=False)
    _add_input_options(defaults)
    _add_conformer_options(defaults)
    given = []
    for action in defaults._actions:
        if action.dest in ("dataset", "data", "quiet") or not action.option_strings:
            continue
        if getattr(args, action.dest, action.default) != action.default:
            given.append(action.option_strings[0])
    return given


def load_table(args: argparse.Namespace):
    """The :class:`MoleculeTable` named by ``--dataset`` or ``--data`` and their options."""
    from mimoe_core.data import load_dataset, read_csv, read_sdf

    if args.dataset:
        table = load_dataset(args.dataset, limit=args.limit)
        if args.target_cols:
            raise ValueError("--target-cols goes with --data; a bundled dataset has its targets")
        return table
    suffixes = "".join(args.data.suffixes).lower()
    if suffixes.endswith(".sdf"):
        table = read_sdf(args.data, args.target_cols, task=args.task, id_prop=args.id_col)
    elif suffixes.endswith((".csv", ".csv.gz")):
        table = read_csv(
            args.data,
            args.smiles_col,
            args.target_cols,
            task=args.task,
            id_col=args.id_col,
            polymer=args.polymer,
        )
    else:
        raise ValueError(f"--data must be a .csv, .csv.gz or .sdf file, got {args.data.name}")
    if getattr(args, "unit", None):
        table.unit = args.unit
    return table.head(args.limit) if args.limit is not None else table


def _conformer_settings(args: argparse.Namespace):
    """The :class:`ConformerSettings` the conformer options name."""
    from mimoe_core.conformers import ConformerSettings

    return ConformerSettings(
        hydrogens=not args.no_hydrogens,
        fragments=args.fragments,
        polymer_cap=args.polymer_cap,
        num_conformers=args.num_conformers,
        keep_conformers=args.conformers,
        seed=args.conformer_seed,
        max_atoms=args.max_atoms,
    )


def _featurize_input(args: argparse.Namespace, radii=None, retry_timeouts: bool | None = None):
    """Featurize the table named by the input options with the conformer options.

    ``retry_timeouts`` overrides ``--retry-timeouts`` (a rank that only reads its node's
    cache does not retry what the node's first rank has just retried).
    """
    from mimoe_core.featurization import featurize
    from mimoe_core.topology import DEFAULT_RADII

    return featurize(
        load_table(args),
        _conformer_settings(args),
        radii=DEFAULT_RADII if radii is None else radii,
        cache_dir=args.cache_dir,
        use_cache=not args.no_cache,
        n_jobs=args.jobs,
        progress=not args.quiet,
        retry_timeouts=args.retry_timeouts if retry_timeouts is None else retry_timeouts,
        atom_attributes=getattr(args, "atom_attributes", False),
    )
