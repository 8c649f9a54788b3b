"""The ``mimoe`` command line (also ``python -m mimoe_core``).

Commands: ``datasets`` (list the bundled datasets), ``featurize`` (conformers and descriptor
trajectories into the cache, with a report of every skipped row), ``train`` (train MI-MoE and
write a run folder) and ``predict`` (predictions with routing weights for a file).

The options shared by the commands that read molecules are in :mod:`mimoe_core._cli_inputs`,
the ``train`` command in :mod:`mimoe_core.cli_train`.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from mimoe_core import __version__, keys, run_folder
from mimoe_core._cli_inputs import (
    _add_conformer_options,
    _add_input_options,
    _conformer_settings,
    _featurize_input,
    add_retry_timeouts_option,
    load_table,
)
from mimoe_core.cli_train import add_train_parser, cmd_train, model_config_from_args
from mimoe_core.data.splits import SPLIT_METHODS

__all__ = [
    "build_parser",
    "cmd_datasets",
    "cmd_embed",
    "cmd_featurize",
    "cmd_predict",
    "cmd_report",
    "cmd_train",
    "load_table",
    "main",
    "model_config_from_args",
]


def cmd_datasets(args: argparse.Namespace) -> int:
    """Print the bundled datasets."""
    from mimoe_core.data import BUNDLED

    for info in BUNDLED.values():
        targets = ",".join(info.targets)
        print(f"{info.name:16s} {info.task:14s} {targets[:40]:40s} {info.description}")
    print("qm9              regression     (choose)                                 needs qm9pack")
    return 0


def _featurize_to_shards(args: argparse.Namespace) -> int:
    """``featurize --shards DIR``: stream the dataset into shard files, then report."""
    from mimoe_core.data import make_split
    from mimoe_core.shards import write_shards

    dataset = write_shards(
        load_table(args),
        args.shards,
        shard_size=args.shard_size,
        settings=_conformer_settings(args),
        cache_dir=args.cache_dir,
        use_cache=not args.no_cache,
        n_jobs=args.jobs,
        progress=not args.quiet,
        retry_timeouts=args.retry_timeouts,
    )
    dataset.write_report(args.out)
    if len(dataset) >= 3:
        split = make_split(args.split, dataset.smiles, seed=args.seed)
        split.save(args.out / "splits.json", rows=[int(r) for r in dataset.rows])
    print(dataset.summary_line())
    print(f"wrote {dataset.n_shards} shard(s) in {args.shards}; the report in {args.out}")
    return 0


@contextlib.contextmanager
def _out_folder(out: Path) -> Iterator[None]:
    """Create the report folder before the work, or say in one line why it cannot be used.

    If the work then fails, a folder created here and still empty is removed, so that a
    failed command leaves nothing behind.
    """
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out} is a file, not a folder")
    created = [folder for folder in [out, *out.parents] if not folder.exists()]
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise ValueError(f"cannot create --out {out}: {err.strerror or err}") from None
    try:
        if not os.access(out, os.W_OK | os.X_OK):
            raise ValueError(f"cannot write into --out {out}: permission denied")
        yield
    except BaseException:
        for folder in created:  # innermost first
            if not folder.is_dir() or any(folder.iterdir()):
                break
            folder.rmdir()
        raise


def cmd_featurize(args: argparse.Namespace) -> int:
    """Featurize a dataset and write its report."""
    with _out_folder(args.out):
        return _featurize(args)


def _featurize(args: argparse.Namespace) -> int:
    from mimoe_core.data import make_split

    out: Path = args.out
    if args.shards:
        return _featurize_to_shards(args)
    dataset = _featurize_input(args)
    dataset.write_report(out)
    pd.DataFrame(
        {
            "row": [d[keys.ROW] for d in dataset.data_list],
            "mol_id": [d[keys.MOL_ID] for d in dataset.data_list],
            "smiles": dataset.smiles,
            "num_atoms": [d.num_nodes for d in dataset.data_list],
            **{
                k: [c[k] for c in dataset.conformers]
                for k in ("embedding", "force_field", "converged")
            },
            "energy_kcal_mol": [c["energy"] for c in dataset.conformers],
        }
    ).to_csv(out / "molecules.csv", index=False)
    from mimoe_core.topology import DESCRIPTOR_NAMES

    np.savez_compressed(
        out / "descriptors.npz",
        trajectories=dataset.descriptors,
        radii=dataset.radii,
        names=np.array(DESCRIPTOR_NAMES),
        rows=np.array([d[keys.ROW] for d in dataset.data_list]),
    )
    written = ["summary.json", "molecules.csv", "descriptors.npz", "skipped.csv"]
    if len(dataset) >= 3:
        split = make_split(args.split, dataset.smiles, seed=args.seed)
        split.save(out / "splits.json", rows=[d[keys.ROW] for d in dataset.data_list])
        written.append("splits.json")
    else:
        print(f"no split written: {len(dataset)} molecule(s) kept, a split needs at least 3")
    print(dataset.summary_line())
    print(f"wrote {', '.join(written)} in {out}")
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    """Predict a file with a trained model; one output row per input row."""
    from mimoe_core.inference import predict

    result = predict(
        args.model,
        args.data,
        interval=args.interval,
        smiles_col=args.smiles_col,
        batch_size=args.batch_size,
        device=args.device,
        progress=not args.quiet,
        retry_timeouts=args.retry_timeouts,
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    result.to_frame().to_csv(args.out, index=False)
    if args.explanations:
        result.save(args.explanations)
    ok = sum(s == "ok" for s in result.status)
    print(f"{len(result)} rows: {ok} predicted, {len(result) - ok} skipped -> {args.out}")
    return 0


def cmd_embed(args: argparse.Namespace) -> int:
    """Per-molecule embeddings of a trained model, to .npz or .csv."""
    from mimoe_core.inference import embed

    if args.out.suffix not in (".npz", ".csv"):
        raise ValueError(f"--out must end in .npz or .csv, got {args.out.name}")
    result = embed(
        args.model,
        args.data,
        smiles_col=args.smiles_col,
        batch_size=args.batch_size,
        device=args.device,
        progress=not args.quiet,
        retry_timeouts=args.retry_timeouts,
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    result.save(args.out)
    ok = sum(s == "ok" for s in result.status)
    print(
        f"{len(result)} rows: {ok} embedded ({result.hidden_channels} features, "
        f"{result.num_experts} experts), {len(result) - ok} skipped -> {args.out}"
    )
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    """Write the HTML report of a training run (needs the viz extra)."""
    try:
        from mimoe_viz.report import report
    except ImportError as err:
        msg = f'the report needs the viz extra: pip install "mimoe[viz]" ({err})'
        raise ImportError(msg) from err
    path = report(args.run, out=args.out, examples=args.examples)
    print(f"report -> {path} (figures as PNG in {args.run / run_folder.FIGURES})")
    return 0


def _add_trained_model_options(parser: argparse.ArgumentParser) -> None:
    """What ``predict`` and ``embed`` read: a trained model, molecules, how to run it."""
    parser.add_argument("--model", type=Path, required=True, help="run folder or model.pt")
    parser.add_argument("--data", type=Path, required=True, help=".csv(.gz) or .sdf")
    parser.add_argument("--smiles-col", default="smiles", help="CSV column with SMILES")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    add_retry_timeouts_option(parser)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``mimoe`` command."""
    parser = argparse.ArgumentParser(
        prog="mimoe",
        description="MI-MoE: topology-aware multiscale mixture of 3D-GNN experts.",
    )
    parser.add_argument("--version", action="version", version=f"mimoe {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    datasets = sub.add_parser("datasets", help="list the bundled datasets")
    datasets.set_defaults(func=cmd_datasets)

    feat = sub.add_parser(
        "featurize",
        help="3D conformers and descriptor trajectories into the cache; report skipped rows",
        description="Embed every molecule in 3D (ETKDGv3 + MMFF94), compute its descriptor "
        "trajectory, fill the cache, and write summary.json, molecules.csv, descriptors.npz, "
        "skipped.csv and splits.json into --out.",
    )
    _add_input_options(feat)
    _add_conformer_options(feat)
    feat.add_argument("--split", choices=SPLIT_METHODS, default="scaffold")
    feat.add_argument("--seed", type=int, default=0, help="seed of random/balanced splits")
    feat.add_argument("--out", type=Path, required=True, help="report folder")
    feat.add_argument(
        "--shards",
        type=Path,
        default=None,
        metavar="DIR",
        help="stream the molecules into shard files in DIR (for `train --shards`): one "
        "shard's molecules in memory at a time, and a rerun continues where a killed one "
        "stopped",
    )
    feat.add_argument(
        "--shard-size",
        type=int,
        default=4096,
        help="table entries per shard: rows read, those skipped later included (default 4096)",
    )
    feat.set_defaults(func=cmd_featurize)

    add_train_parser(sub)

    pr = sub.add_parser(
        "predict",
        help="predict with a trained model, with routing weights",
        description="One output row per input row, in input order: row, id, smiles, status "
        "(ok/skipped), reason, one column per target, alpha_1..alpha_K.",
    )
    _add_trained_model_options(pr)
    pr.add_argument("--out", type=Path, required=True, help="output CSV")
    pr.add_argument(
        "--interval",
        type=float,
        default=None,
        help="coverage of the <target>_lower/_upper columns, in (0, 1); default 0.9 when the "
        "model has an uncertainty (an ensemble, or --uncertainty experts)",
    )
    pr.add_argument(
        "--explanations",
        type=Path,
        default=None,
        help="also save the full explanations (alpha, expert predictions, "
        "descriptor trajectories) into this folder",
    )
    pr.set_defaults(func=cmd_predict)

    em = sub.add_parser(
        "embed",
        help="per-molecule embeddings for clustering and similarity search",
        description="One row per input row, in input order: the alpha-weighted mixture the "
        "model's head reads and, in .npz, each selected expert's readout and the gate's input "
        "(the descriptor trajectory). .csv holds row, id, smiles, status, reason, alpha_1..K "
        "and mix_1..H.",
    )
    _add_trained_model_options(em)
    em.add_argument("--out", type=Path, required=True, help="FILE.npz (everything) or FILE.csv")
    em.set_defaults(func=cmd_embed)

    rep = sub.add_parser(
        "report",
        help="write the HTML report of a training run",
        description="One self-contained page (opens offline): metrics, training curves, "
        "parity or ROC, routing map, and example molecules with their filtration; PNG copies "
        "of the main figures go to RUN/figures/.",
    )
    rep.add_argument("--run", type=Path, required=True, help="run folder written by train")
    rep.add_argument("--out", type=Path, default=None, help="HTML file (default RUN/report.html)")
    rep.add_argument("--examples", type=int, default=3, help="example molecules, default 3")
    rep.set_defaults(func=cmd_report)
    return parser


def _is_rank_failure(err: RuntimeError) -> bool:
    """Whether ``err`` says another rank of a distributed run stopped (exit code 1)."""
    # Only a run that imported the distributed module can raise one: no torch import here.
    module = sys.modules.get("mimoe_core.training.distributed")
    return module is not None and isinstance(err, module.RankFailure)


def _input_errors() -> tuple[type[BaseException], ...]:
    """Exceptions that mean bad input or environment, not a bug: one line and exit code 2.

    ValueError covers unreadable JSON/CSV and corrupt checkpoints, splits and explanations;
    OSError covers missing or unwritable files and folders, full disks and failed downloads
    (ConnectionError); EOFError and BadZipFile are truncated gzip/npz files; CacheError is a
    cache file that cannot be used. Anything else is a bug and keeps its traceback.
    """
    import sqlite3
    import zipfile

    from mimoe_core.cache import CacheError

    return (
        ValueError,
        OSError,
        ImportError,
        EOFError,
        zipfile.BadZipFile,
        CacheError,
        sqlite3.DatabaseError,
    )


@contextlib.contextmanager
def _warnings_as_lines(command: str) -> Iterator[None]:
    """Show this package's warnings as one ``mimoe <command>: warning: ...`` line each.

    That is the errors' format, without Python's file name and source line; other
    libraries' warnings keep their own format. Only the formatting changes, so a caller
    that records warnings (``pytest.warns``) still receives them.
    """
    package = str(Path(__file__).resolve().parent)
    default = warnings.formatwarning

    def format_line(message, category, filename, lineno, line=None):
        if str(Path(filename).resolve()).startswith(package):
            return f"mimoe {command}: warning: {message}\n"
        return default(message, category, filename, lineno, line)

    warnings.formatwarning = format_line
    try:
        yield
    finally:
        warnings.formatwarning = default


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; errors in the input end with a one-line message and exit code 2.

    A rank of a distributed run that stops because another one failed prints one line and
    ends with exit code 1 at once (:func:`~mimoe_core.training.distributed.exit_failed_rank`).
    """
    args = build_parser().parse_args(argv)
    import sqlite3

    try:
        with _warnings_as_lines(args.command):
            return args.func(args)
    except (sqlite3.ProgrammingError, sqlite3.IntegrityError):
        raise  # misuse of the database by our code: a bug
    except _input_errors() as err:
        text = " ".join(line.strip() for line in str(err).splitlines() if line.strip())
        print(f"mimoe {args.command}: error: {text or type(err).__name__}", file=sys.stderr)
        return 2
    except RuntimeError as err:
        if not _is_rank_failure(err):
            raise
        print(f"mimoe {args.command}: stopped: {err}", file=sys.stderr)
        from mimoe_core.training.distributed import exit_failed_rank  # loaded: it raised err

        exit_failed_rank(1)
        return 1


if __name__ == "__main__":
    sys.exit(main())
