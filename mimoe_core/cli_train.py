"""The ``mimoe train`` command: its options, the model config they name, and the run.

:func:`add_train_parser` adds the ``train`` subcommand to the ``mimoe`` parser built in
:mod:`mimoe_core.cli`; :func:`cmd_train` runs it (under ``torchrun``, as one DDP rank).
"""

from __future__ import annotations

import argparse
import warnings
from pathlib import Path

from mimoe_core import run_folder
from mimoe_core._cli_inputs import (
    _add_conformer_options,
    _add_input_options,
    _csv_list,
    _featurize_input,
)
from mimoe_core.constants import BACKBONES, GATES, VARIANTS
from mimoe_core.data.splits import SPLIT_METHODS


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
    if getattr(args, "atom_attributes", False):
        config["atom_attributes"] = True
    bounds = getattr(args, "cutoff_bounds", None)
    if getattr(args, "learnable_cutoffs", False):
        config["learnable_cutoffs"]["enabled"] = True
    if bounds:
        if not config["learnable_cutoffs"]["enabled"]:
            raise ValueError("--cutoff-bounds sets the bounds of --learnable-cutoffs; add it")
        if len(bounds) != 2:
            raise ValueError(f"--cutoff-bounds takes LOWER,UPPER in Å, got {','.join(bounds)}")
        lower, upper = _floats(bounds, "--cutoff-bounds")
        config["learnable_cutoffs"].update(lower=lower, upper=upper)
    if getattr(args, "shared_trunk", False):
        config["shared_trunk"]["enabled"] = True
    for option, key in (("trunk_layers", "layers"), ("trunk_cutoff", "cutoff")):
        value = getattr(args, option, None)
        if value is None:
            continue
        if not config["shared_trunk"]["enabled"]:
            raise ValueError(f"--{option.replace('_', '-')} sets the --shared-trunk; add it")
        config["shared_trunk"][key] = value
    return load_config(config)


def _floats(values: list[str], option: str) -> list[float]:
    try:
        return [float(v) for v in values]
    except ValueError:
        raise ValueError(f"{option} takes numbers in Å, got {','.join(values)}") from None


def cmd_train(args: argparse.Namespace) -> int:
    """Train MI-MoE (or an ensemble of it) and write the run folder; ``torchrun`` runs it DDP."""
    from mimoe_core.training import distributed

    context = distributed.init_from_env(args.device, args.dist_timeout)
    try:
        code = _train(args, context)
    except distributed.RankFailure:
        raise  # the group stays joined: main reports this, then distributed.exit_failed_rank
    except BaseException:
        distributed.shutdown()
        raise
    distributed.shutdown()
    return code


def _molecules_of_every_rank(dataset, context):
    """``dataset`` without the molecules that another rank did not keep (under torchrun).

    Every rank featurizes from its node's cache, and a conformer that timed out (or failed)
    on one node can have been made on another: the ranks must train on the same molecules.
    """
    from mimoe_core.training.distributed import rows_kept_by_every_rank

    _, lacking, left_out = rows_kept_by_every_rank(dataset.rows, context)
    if left_out and context.is_main:
        warnings.warn(
            f"{left_out} molecule(s) kept by some ranks were not kept by the others (a "
            "conformer that timed out or failed on one node, say): every rank leaves them "
            "out, and skipped.csv lists them",
            stacklevel=2,
        )
    if not lacking:
        return dataset
    return dataset.without_rows(
        {
            row: f"kept on rank {context.rank} but not on rank(s) "
            f"{', '.join(map(str, ranks))}, where its conformer timed out or failed: every "
            "rank trains on the same molecules"
            for row, ranks in lacking.items()
        }
    )


def _train(args: argparse.Namespace, context) -> int:
    from mimoe_core.data import make_split
    from mimoe_core.training import TrainSettings, train, train_ensemble
    from mimoe_core.training.distributed import check_batch_size, main_first, peer_failures_reported

    estimator = _uncertainty_choice(args)
    if context.distributed and estimator.startswith("ensemble"):
        raise ValueError("under torchrun, train one model per launch (no --ensemble-size)")
    # Checked before featurizing (which may take hours), not only when training starts.
    check_batch_size(args.batch_size, context, name="--batch-size")
    if args.loader_workers < 0:
        raise ValueError(f"--loader-workers must be >= 0, got {args.loader_workers}")
    if args.data and not args.target_cols:
        raise ValueError(
            f"--data {args.data.name}: name the label column(s) to train on with --target-cols "
            "(CSV columns or SD properties, comma-separated)"
        )
    args.quiet = args.quiet or not context.is_main
    config = model_config_from_args(args)
    args.atom_attributes = bool(config["atom_attributes"])  # featurize what the model reads
    if args.shards and args.atom_attributes:
        raise ValueError(
            "atom attributes are read from the molecules at featurization, and shards hold "
            "featurized data without them; train from --dataset or --data instead"
        )
    if args.shards:
        from mimoe_core._cli_inputs import options_shards_ignore
        from mimoe_core.shards import ShardedDataset

        moot = options_shards_ignore(args)
        if moot:
            raise ValueError(
                f"--shards {args.shards}: {', '.join(moot)} would change what is read or how "
                "it is featurized, and the shards hold molecules featurized once by `mimoe "
                "featurize --shards` with its own options; featurize again with them, or leave "
                "them out"
            )

        dataset = ShardedDataset(args.shards)
    else:  # rank 0 fills the cache; the other ranks then read it
        with peer_failures_reported(context):
            if not args.no_cache:
                from mimoe_core.cache import default_cache_dir
                from mimoe_core.training.distributed import check_one_host_per_folder

                cache = Path(args.cache_dir or default_cache_dir())
                check_one_host_per_folder(cache, context, "cache folder")
            dataset = main_first(
                lambda fills_cache: _featurize_input(
                    args, retry_timeouts=args.retry_timeouts and fills_cache
                ),
                context,
            )
            dataset = _molecules_of_every_rank(dataset, context)
    if len(dataset) < 3:
        raise ValueError(f"{len(dataset)} molecule(s) kept; training needs at least 3")
    if args.split_file:
        from mimoe_core.data.split_files import split_from_file

        split = split_from_file(args.split_file, dataset.rows, dataset.table.n_rows)
        if context.is_main:
            source = split.source
            dropped = source["dropped_skipped_rows"]
            print(
                f"split from {args.split_file} ({source['layout']}): train/val/test "
                f"{'/'.join(str(n) for n in split.sizes())} molecules; rows dropped because "
                f"they were skipped: {dropped['train']}/{dropped['val']}/{dropped['test']}; "
                f"kept molecules in no part: {source['unassigned_molecules']}"
            )
    else:
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
        uncertainty=estimator if estimator in ("experts", "mve", "conformers") else "none",
        calibration=args.calibration,
        coverage=args.interval,
        ema_decay=args.ema,
        warmup_epochs=args.warmup_epochs,
        cutoff_lr_scale=args.cutoff_lr_scale,
        compile=args.compile,
        fused_optimizer=not args.no_fused_optimizer,
        loader_workers=args.loader_workers,
    )
    if args.compile and not args.quiet:  # a long first epoch is expected, not a hang
        print(
            "--compile: the experts' message passing is compiled during the first epoch, "
            "which takes longer (tens of seconds to minutes, once per run)"
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
        # An infinite interval (too few validation molecules to calibrate) has no width.
        width = "infinite" if unc.get("width") is None else f"{unc['width']:.4g}"
        print(
            f"test intervals ({args.interval:.0%} nominal): coverage {unc['coverage']:.3f}, "
            f"mean width {width}"
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
    if estimator in ("experts", "conformers", "none") and args.ensemble_size > 1:
        raise ValueError(
            f"--ensemble-size {args.ensemble_size} trains an ensemble; its uncertainty is "
            f"ensemble (or mve, for members with a variance head), not {estimator}"
        )
    if estimator == "mve" and args.ensemble_size > 1:
        return "ensemble+mve"
    return estimator


def _add_model_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("model")
    group.add_argument("--config", default=None, help="model YAML, or a bundled config name")
    group.add_argument("--backbone", choices=sorted(BACKBONES), default=None, help="default schnet")
    group.add_argument(
        "--variant", choices=VARIANTS, default=None, help="the model: default sparse (MI-MoE)"
    )
    group.add_argument("--top-k", type=int, default=None, help="experts per molecule (sparse)")
    group.add_argument(
        "--gate",
        choices=GATES,
        default=None,
        help="default mlp; size (reads only the atom count) and random (a fixed hash of the "
        "molecule) are ablations",
    )
    group.add_argument("--cutoffs", type=_csv_list, default=None, help="e.g. 2.0,2.5,3.0,3.5,4.0")
    group.add_argument("--hidden", type=int, default=None, help="expert width (default 128)")
    group.add_argument(
        "--atom-attributes",
        action="store_true",
        help="experts also embed chemical atom attributes (hybridization, aromaticity, "
        "charge, hydrogens, ring, R/S) beside the atomic number",
    )
    group.add_argument(
        "--balance-weight", type=float, default=None, help="load-balancing weight, default 0.1"
    )
    group.add_argument(
        "--learnable-cutoffs",
        action="store_true",
        help="learn the expert cutoffs with the model, starting from --cutoffs, kept ordered "
        "inside --cutoff-bounds (schnet, painn, et, dimenet++; a routed variant)",
    )
    group.add_argument(
        "--cutoff-bounds",
        type=_csv_list,
        default=None,
        metavar="LOWER,UPPER",
        help="bounds in Å of learnable cutoffs, default 1.0,6.0 (neighbours are searched at UPPER)",
    )
    group.add_argument(
        "--shared-trunk",
        action="store_true",
        help="memory-lean experts: the atom embedding and the first --trunk-layers blocks run "
        "once (at --trunk-cutoff), each expert keeps the rest at its own cutoff (a routed variant)",
    )
    group.add_argument(
        "--trunk-layers",
        type=int,
        default=None,
        help="blocks in the shared trunk, default 1 (of the experts' num_layers, default 3)",
    )
    group.add_argument(
        "--trunk-cutoff",
        type=float,
        default=None,
        help="cutoff in Å of the shared trunk's graph, default the largest expert cutoff",
    )


def add_train_parser(sub: argparse._SubParsersAction) -> None:
    """Add the ``train`` subcommand and its options to the ``mimoe`` subparsers ``sub``."""
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
    group.add_argument(
        "--split-file",
        type=Path,
        default=None,
        metavar="FILE",
        help="use the split in FILE instead of --split: chemprop's splits.json (0-based data "
        "rows of the input) or a run's splits.json (its source rows)",
    )
    group.add_argument("--seed", type=int, default=0, help="seeds the model, shuffling, splits")
    group.add_argument("--epochs", type=int, default=100)
    group.add_argument("--batch-size", type=int, default=32)
    group.add_argument("--lr", type=float, default=5e-4)
    group.add_argument("--patience", type=int, default=20, help="early-stopping epochs")
    group.add_argument(
        "--ema",
        type=float,
        default=0.999,
        metavar="DECAY",
        help="validate and keep a moving average of the weights (default 0.999; 0: off)",
    )
    group.add_argument(
        "--warmup-epochs",
        type=int,
        default=0,
        metavar="N",
        help="raise the learning rate linearly over the first N epochs (default 0: off)",
    )
    group.add_argument(
        "--cutoff-lr-scale",
        type=float,
        default=1.0,
        metavar="X",
        help="learnable cutoffs train at X times --lr (default 1; 0 holds them at the start)",
    )
    group.add_argument("--device", default="auto", help="auto (CUDA if present), cpu or cuda")
    group.add_argument(
        "--compile",
        action="store_true",
        help="compile the experts' message passing with torch.compile: faster steps after "
        "a first epoch that pays the compilation (needs a C++ compiler on the CPU)",
    )
    group.add_argument(
        "--no-fused-optimizer",
        action="store_true",
        help="step AdamW with torch's loop over the parameters instead of its fused kernel "
        "(the same update, slower; the fused one is the default)",
    )
    group.add_argument(
        "--loader-workers",
        type=int,
        default=0,
        metavar="N",
        help="N worker processes assemble the next training batches while a step runs "
        "(default 0: in line; the same batches either way). Meant for GPUs, which otherwise "
        "wait for the CPU (not yet measured on one); on the CPU they did not pay",
    )
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
        choices=("ensemble", "mve", "experts", "conformers", "none"),
        default=None,
        help="ensemble (members' std; the default with --ensemble-size > 1), mve (a "
        "variance head, Gaussian NLL), experts (the selected experts' disagreement), conformers "
        "(the spread over --conformers M > 1) or none (default for one model)",
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
