"""The ``mimoe`` command line (also ``python -m mimoe_core``).

Commands: ``datasets`` (list the bundled datasets), ``featurize`` (conformers and descriptor
trajectories into the cache, with a report of every skipped row), ``train`` (train MI-MoE and
write a run folder) and ``predict`` (predictions with routing weights for a file).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from mimoe_core import __version__, keys, run_folder
from mimoe_core.data.splits import SPLIT_METHODS


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
    group.add_argument("--num-conformers", type=int, default=1, help="keep the lowest-energy one")
    group.add_argument("--conformer-seed", type=int, default=0)
    group.add_argument("--max-atoms", type=int, default=250, help="reject larger molecules")
    group.add_argument("--jobs", type=int, default=None, help="worker processes (default: all)")
    group.add_argument("--cache-dir", type=Path, default=None, help="default $MIMOE_CACHE_DIR")
    group.add_argument("--no-cache", action="store_true", help="neither read nor write the cache")
    group.add_argument("--quiet", action="store_true", help="no progress bars")


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


def cmd_datasets(args: argparse.Namespace) -> int:
    """Print the bundled datasets."""
    from mimoe_core.data import BUNDLED

    for info in BUNDLED.values():
        targets = ",".join(info.targets)
        print(f"{info.name:16s} {info.task:14s} {targets[:40]:40s} {info.description}")
    print("qm9              regression     (choose)                                 needs qm9pack")
    return 0


def _conformer_settings(args: argparse.Namespace):
    """The :class:`ConformerSettings` the conformer options name."""
    from mimoe_core.conformers import ConformerSettings

    return ConformerSettings(
        hydrogens=not args.no_hydrogens,
        fragments=args.fragments,
        polymer_cap=args.polymer_cap,
        num_conformers=args.num_conformers,
        seed=args.conformer_seed,
        max_atoms=args.max_atoms,
    )


def _featurize_input(args: argparse.Namespace, radii=None):
    """Featurize the table named by the input options with the conformer options."""
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
    )


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
    )
    dataset.write_report(args.out)
    if len(dataset) >= 3:
        split = make_split(args.split, dataset.smiles, seed=args.seed)
        split.save(args.out / "splits.json", rows=[int(r) for r in dataset.rows])
    print(dataset.summary_line())
    print(f"wrote {dataset.n_shards} shard(s) in {args.shards}; the report in {args.out}")
    return 0


def _check_out_folder(out: Path) -> None:
    """Create the report folder, or say in one line why it cannot be used."""
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out} is a file, not a folder")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise ValueError(f"cannot create --out {out}: {err.strerror or err}") from None
    if not os.access(out, os.W_OK | os.X_OK):
        raise ValueError(f"cannot write into --out {out}: permission denied")


def cmd_featurize(args: argparse.Namespace) -> int:
    """Featurize a dataset and write its report."""
    from mimoe_core.data import make_split

    out: Path = args.out
    _check_out_folder(out)  # before the work, not after it
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


def model_config_from_args(args: argparse.Namespace) -> dict:
    """The model config, with the options on top.

    The base is ``--config``, else the ``--init-from`` run's, else the backbone's bundled one.
    """
    from mimoe_core.models import load_config

    if getattr(args, "init_from", None) and not args.config and not args.backbone:
        from mimoe_core.training.transfer import load_source

        config = load_config(load_source(args.init_from).model.config)
    elif args.config:
        config = load_config(args.config)
        if args.backbone:
            config["backbone"] = args.backbone
    else:  # every backbone has a bundled config named after it ("dimenet++" -> dimenetpp)
        config = load_config((args.backbone or "schnet").replace("+", "p"))
    overrides = {
        "variant": args.variant,
        "top_k": args.top_k,
        "cutoffs": [float(c) for c in args.cutoffs] if args.cutoffs else None,
        "balance_weight": args.balance_weight,
    }
    config.update({k: v for k, v in overrides.items() if v is not None})
    if args.gate:
        if config["gate"].get("name") != args.gate:
            config["gate"] = {"name": args.gate}
    if args.hidden:
        config["expert"]["hidden_channels"] = args.hidden
    return load_config(config)


def cmd_train(args: argparse.Namespace) -> int:
    """Train MI-MoE (or an ensemble of it) and write the run folder; ``torchrun`` runs it DDP."""
    from mimoe_core.training import distributed

    context = distributed.init_from_env(args.device, args.dist_timeout)
    try:
        return _train(args, context)
    finally:
        distributed.shutdown()


def _train(args: argparse.Namespace, context) -> int:
    from mimoe_core.data import make_split
    from mimoe_core.training import TrainSettings, train, train_ensemble
    from mimoe_core.training.distributed import main_first

    estimator = _uncertainty_choice(args)
    if context.distributed and estimator.startswith("ensemble"):
        raise ValueError("under torchrun, train one model per launch (no --ensemble-size)")
    if args.batch_size < context.world_size:
        raise ValueError(
            f"--batch-size {args.batch_size} is split across {context.world_size} ranks: "
            "it must be at least the number of ranks"
        )
    args.quiet = args.quiet or not context.is_main
    config = model_config_from_args(args)
    if args.shards:
        from mimoe_core.shards import ShardedDataset

        dataset = ShardedDataset(args.shards)
    else:  # rank 0 fills the cache; the other ranks then read it
        dataset = main_first(lambda: _featurize_input(args), context)
    if len(dataset) < 3:
        raise ValueError(f"{len(dataset)} molecule(s) kept; training needs at least 3")
    split = make_split(args.split, dataset.smiles, seed=args.seed)
    settings = TrainSettings(
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        patience=args.patience,
        seed=args.seed,
        device=args.device,
        progress=not args.quiet,
        init_from=str(args.init_from) if args.init_from else None,
        freeze=args.freeze,
        uncertainty=estimator if estimator in ("experts", "mve") else "none",
        calibration=args.calibration,
        coverage=args.interval,
    )
    if estimator == "ensemble+mve":  # members with a variance head: a Gaussian mixture
        config["variance_head"] = True
    if estimator.startswith("ensemble"):
        metrics = train_ensemble(
            dataset,
            split,
            args.ensemble_size,
            config,
            settings,
            args.out,
            calibration=args.calibration,
            coverage=args.interval,
            resume=args.resume,
        ).metrics
    else:
        metrics = train(
            dataset, split, config, settings, out_dir=args.out, resume=args.resume
        ).metrics
    if not context.is_main:
        return 0
    print(dataset.summary_line())
    metric = "rmse" if metrics["task"] == "regression" else "roc_auc"
    scores = [
        f"{part} {metric} {metrics[part][metric]:.4f}" for part in ("val", "test") if metrics[part]
    ]
    best = f"best epoch {metrics['best_epoch']}" if "best_epoch" in metrics else "ensemble"
    print(f"{best}: {', '.join(scores)}")
    unc = metrics.get("uncertainty", {}).get("test") or {}
    if "coverage" in unc and unc["coverage"] is not None:
        print(
            f"test intervals ({args.interval:.0%} nominal): coverage {unc['coverage']:.3f}, "
            f"mean width {unc['width']:.4g}"
        )
    print(f"wrote {', '.join(run_folder.listing(args.out))} in {args.out}")
    return 0


def _uncertainty_choice(args: argparse.Namespace) -> str:
    """The estimator the train options ask for, or a ValueError that says what is wrong."""
    if args.ensemble_size < 1:
        raise ValueError(f"--ensemble-size must be >= 1, got {args.ensemble_size}")
    if not 0 < args.interval < 1:
        raise ValueError(f"--interval must be in (0, 1), got {args.interval}")
    estimator = args.uncertainty or ("ensemble" if args.ensemble_size > 1 else "none")
    if estimator == "ensemble" and args.ensemble_size < 2:
        raise ValueError("--uncertainty ensemble needs --ensemble-size of at least 2")
    if estimator in ("experts", "none") and args.ensemble_size > 1:
        raise ValueError(
            f"--ensemble-size {args.ensemble_size} trains an ensemble; its uncertainty is "
            f"ensemble (or mve, for members with a variance head), not {estimator}"
        )
    if estimator == "mve" and args.ensemble_size > 1:
        return "ensemble+mve"
    return estimator


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


def _add_model_options(parser: argparse.ArgumentParser) -> None:
    from mimoe_core.models import EXPERTS, VARIANTS

    group = parser.add_argument_group("model")
    group.add_argument("--config", default=None, help="model YAML, or a bundled config name")
    group.add_argument("--backbone", choices=sorted(EXPERTS), default=None, help="default schnet")
    group.add_argument(
        "--variant", choices=VARIANTS, default=None, help="the model: default sparse (MI-MoE)"
    )
    group.add_argument("--top-k", type=int, default=None, help="experts per molecule (sparse)")
    group.add_argument("--gate", choices=("mlp", "transformer"), default=None)
    group.add_argument("--cutoffs", type=_csv_list, default=None, help="e.g. 2.0,2.5,3.0,3.5,4.0")
    group.add_argument("--hidden", type=int, default=None, help="expert width (default 128)")
    group.add_argument(
        "--balance-weight", type=float, default=None, help="load-balancing weight, default 0.1"
    )


def _add_trained_model_options(parser: argparse.ArgumentParser) -> None:
    """What ``predict`` and ``embed`` read: a trained model, molecules, how to run it."""
    parser.add_argument("--model", type=Path, required=True, help="run folder or model.pt")
    parser.add_argument("--data", type=Path, required=True, help=".csv(.gz) or .sdf")
    parser.add_argument("--smiles-col", default="smiles", help="CSV column with SMILES")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")


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
        help="stream the molecules into shard files in DIR (for `train --shards`); memory "
        "stays that of one shard, and a rerun continues where a killed one stopped",
    )
    feat.add_argument(
        "--shard-size", type=int, default=4096, help="molecules per shard (default 4096)"
    )
    feat.set_defaults(func=cmd_featurize)

    tr = sub.add_parser(
        "train",
        help="train MI-MoE on a bundled dataset or your own file",
        description="Featurize (cached), split, train with early stopping, and write "
        f"{', '.join(run_folder.TRAIN_OUTPUTS[:-1])} and {run_folder.TRAIN_OUTPUTS[-1]}/ "
        "into --out.",
    )
    _add_input_options(tr, shards=True)
    _add_model_options(tr)
    group = tr.add_argument_group("training")
    group.add_argument("--split", choices=SPLIT_METHODS, default="scaffold")
    group.add_argument("--seed", type=int, default=0, help="seeds the model, shuffling, splits")
    group.add_argument("--epochs", type=int, default=100)
    group.add_argument("--batch-size", type=int, default=32)
    group.add_argument("--lr", type=float, default=5e-4)
    group.add_argument("--patience", type=int, default=20, help="early-stopping epochs")
    group.add_argument("--device", default="auto", help="auto (CUDA if present), cpu or cuda")
    group.add_argument("--resume", action="store_true", help="continue from --out/last.pt")
    group.add_argument(
        "--dist-timeout",
        type=float,
        default=600.0,
        metavar="SECONDS",
        help="under torchrun: how long a rank waits for the others before the run fails",
    )
    group.add_argument(
        "--init-from",
        type=Path,
        default=None,
        metavar="DIR",
        help="fine-tune a trained run (same backbone and cutoffs) on this data",
    )
    group.add_argument(
        "--freeze",
        choices=("none", "experts", "gate"),
        default="none",
        help="with --init-from: hold the experts or the gate fixed (default none)",
    )
    unc = tr.add_argument_group("uncertainty")
    unc.add_argument(
        "--ensemble-size",
        type=int,
        default=1,
        help="train N members with seeds seed..seed+N-1 into one folder (default 1)",
    )
    unc.add_argument(
        "--uncertainty",
        choices=("ensemble", "mve", "experts", "none"),
        default=None,
        help="ensemble (members' std; the default with --ensemble-size > 1), mve (a "
        "variance head, Gaussian NLL), experts (the selected experts' disagreement) or none "
        "(default for one model)",
    )
    unc.add_argument(
        "--calibration",
        choices=("conformal", "zscale", "none"),
        default="conformal",
        help="fitted on the validation set: split-conformal intervals (default), z-scaled "
        "Gaussian intervals, or the raw std",
    )
    unc.add_argument(
        "--interval",
        type=float,
        default=0.9,
        help="coverage of the test intervals in metrics.json (default 0.9)",
    )
    tr.add_argument("--out", type=Path, required=True, help="run folder")
    _add_conformer_options(tr)
    tr.set_defaults(func=cmd_train)

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


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; errors in the input end with a one-line message and exit code 2."""
    args = build_parser().parse_args(argv)
    import sqlite3

    try:
        return args.func(args)
    except RuntimeError as err:
        if not _is_rank_failure(err):
            raise
        print(f"mimoe {args.command}: stopped: {err}", file=sys.stderr)
        return 1
    except (sqlite3.ProgrammingError, sqlite3.IntegrityError):
        raise  # misuse of the database by our code: a bug
    except _input_errors() as err:
        text = " ".join(line.strip() for line in str(err).splitlines() if line.strip())
        print(f"mimoe {args.command}: error: {text or type(err).__name__}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
