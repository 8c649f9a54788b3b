"""How good is each uncertainty estimate? FreeSolv and ESOL, scaffold splits, every estimator.

Per dataset and split (``scaffold_balanced``, seeds 0..S-1), N members of MI-MoE(SchNet)
(sparse k=2 of 5) with a mean-variance head are trained with seeds 100*s + i. Each member is
one resumable run (``benchmarks/_parallel_runs.py``) that saves its validation and test
predictions, so the estimators below are scored at report time and ``--members`` can grow
without retraining. On the test set each estimator gives a prediction and a std:

- ``ensemble``: mean of the members, std of their predictions (ddof=1);
- ``mve``: member 0 and its variance head;
- ``ensemble+mve``: mean of the members, std of their Gaussian mixture
  (sqrt(mean of variances + population variance of the means));
- ``experts``: member 0 and the alpha-weighted spread of its selected experts' predictions;
- ``latent``: member 0 and the mean Euclidean distance of the molecule's mixture embedding
  to its 5 nearest training molecules (a distance, not a std: the calibration below turns
  it into one). Janet et al. 2019, https://doi.org/10.1039/C9SC02298H.
- ``similarity``: member 0 and one minus the mean Tanimoto similarity (Morgan fingerprints,
  radius 2, 2048 bits) of the molecule to its 5 most similar training molecules, the
  model-free applicability domain of QSAR (Sheridan et al. 2004,
  https://doi.org/10.1021/ci049782w); also a distance.

Each std is calibrated on the validation set (z-scaling for the NLL, split conformal for the
90 % intervals) and scored on the test set: NLL, Spearman of |error| against std,
miscalibration area, ENCE, interval coverage and mean width. Two conformal scores are
reported side by side: ``|error| / std`` (``normalized``) and ``|error| / (std + median
validation std)`` (``regularized``, which keeps an interval from collapsing where the std is
too small on shifted molecules). Rows are mean ± sample std (ddof=1) over the splits. The
script also reports the Spearman correlation between the experts' spread and the ensemble's
std on the same molecules, and an oracle that no estimator can be: the Spearman correlation
of the ensemble's |error| with how far the true value lies from the training mean (how much
of the error ranking is regression towards the mean, which an estimator sees only through
the molecule).

    python benchmarks/bench_uncertainty.py                    # ~1 h on 2 CPU cores
    python benchmarks/bench_uncertainty.py --datasets freesolv --splits 2 --members 2 \\
        --epochs 2 --work /tmp/u --out /tmp/u.md              # smoke

Writes ``--out`` (default ``benchmarks/results/uncertainty_cpu.md``) with command, machine
and date. Targets (issue 16): conformal 90 % intervals cover 87-93 % of the test molecules on
average; Spearman(|error|, std) > 0.3 for the best estimator.
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from _parallel_runs import (
    EARLIER_DEFAULTS,
    RUNS,
    add_run_options,
    command_line,
    exit_status,
    featurized,
    markdown_rows,
    results,
    run_all,
    trainings_at_once,
    write_report,
)
from scipy.stats import spearmanr

from mimoe_core.analysis.uncertainty import (
    ConformalRegressor,
    ZScaling,
    regression_uncertainty_metrics,
)

ROOT = Path(__file__).resolve().parents[1]
ESTIMATORS = ("ensemble", "mve", "ensemble+mve", "experts", "latent", "similarity")
CONFORMAL = ("normalized", "regularized")
METRICS = ("nll", "spearman", "miscalibration_area", "ence", "rmse")
NEIGHBOURS = 5


def run_member(
    name: str, split_seed: int, member: int, epochs: int, hidden: int, ema: float = 0.0
) -> dict:
    """Train one member; its validation and test predictions, stds and latent distances.

    ``ema``: the weights' moving average (0, as in the committed runs, or today's 0.999)."""
    from mimoe_core.calibration import expert_spread
    from mimoe_core.data import make_split
    from mimoe_core.trained import TrainedModel
    from mimoe_core.training import TrainSettings, train

    torch.set_num_threads(1)
    started = time.perf_counter()
    ds = featurized(name)
    split = make_split("scaffold_balanced", ds.smiles, seed=split_seed)
    config = {
        "backbone": "schnet",
        "variant": "sparse",
        "top_k": 2,
        "variance_head": True,
        "expert": {"hidden_channels": hidden, "num_layers": 3},
        "gate": {"name": "mlp", "hidden_channels": 64},
    }
    settings = TrainSettings(
        epochs=epochs, batch_size=32, seed=100 * split_seed + member, progress=False,
        **{**EARLIER_DEFAULTS, "ema_decay": ema},
    )  # fmt: skip
    result = train(ds, split, config, settings)
    trained = TrainedModel(
        result.model, ds.table.task, ds.table.target_names, list(ds.radii),
        ds.settings, ds.feature_settings(),
    )  # fmt: skip
    parts = {p: [ds.data_list[i] for i in getattr(split, p)] for p in ("train", "val", "test")}
    train_embedding = trained.embed_data(parts["train"]).mixture
    train_fingerprints = _fingerprints([ds.smiles[i] for i in split.train])
    found = {
        "dataset": name,
        "split": split_seed,
        "member": member,
        "test_rmse": float(result.metrics["test"]["rmse"]),
        "train_y_mean": np.stack([d.y[0].numpy() for d in parts["train"]]).mean(0).tolist(),
    }
    for part in ("val", "test"):
        explained = trained.explain(parts[part])
        embedding = trained.embed_data(parts[part]).mixture
        found[part] = {
            "y": np.stack([d.y[0].numpy() for d in parts[part]]).astype(float).tolist(),
            "prediction": explained.prediction.tolist(),
            "std": explained.std.tolist(),
            "spread": expert_spread(explained).tolist(),
            "latent": _latent_distance(embedding, train_embedding).tolist(),
            "similarity": _similarity_distance(
                [ds.smiles[i] for i in getattr(split, part)], train_fingerprints
            ).tolist(),
        }
    found["seconds"] = time.perf_counter() - started
    return found


def _latent_distance(embedding: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """[M, 1] mean distance of each row of ``embedding`` to its nearest ``reference`` rows."""
    dist = np.sqrt(np.maximum(((embedding[:, None, :] - reference[None]) ** 2).sum(-1), 0.0))
    nearest = np.sort(dist, axis=1)[:, :NEIGHBOURS]
    return nearest.mean(axis=1, keepdims=True)


def _fingerprints(smiles: list[str]) -> list:
    """Morgan fingerprints (radius 2, 2048 bits) of ``smiles``."""
    from rdkit import Chem
    from rdkit.Chem import rdFingerprintGenerator

    generator = rdFingerprintGenerator.GetMorganGenerator(radius=2, fpSize=2048)
    return [generator.GetFingerprint(Chem.MolFromSmiles(s)) for s in smiles]


def _similarity_distance(smiles: list[str], reference: list) -> np.ndarray:
    """[M, 1] one minus the mean Tanimoto similarity of each molecule's fingerprint to its
    ``NEIGHBOURS`` most similar ``reference`` fingerprints (:func:`_fingerprints`, computed
    once per training set)."""
    from rdkit import DataStructs

    distances = [
        1.0 - np.sort(DataStructs.BulkTanimotoSimilarity(fp, reference))[-NEIGHBOURS:].mean()
        for fp in _fingerprints(smiles)
    ]
    return np.asarray(distances)[:, None]


def _estimates(members: list[dict]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """(prediction, std) [M, T] per estimator from the members' saved arrays of one part
    (``similarity`` only where the runs saved it: not the reduced runs of 2026-12-01)."""
    means = np.stack([np.asarray(m["prediction"]) for m in members])
    stds = np.stack([np.asarray(m["std"]) for m in members])
    first = members[0]
    mix_var = (stds**2).mean(axis=0) + means.var(axis=0)
    latent = np.broadcast_to(np.asarray(first["latent"]), means[0].shape)
    found = {
        "ensemble": (means.mean(axis=0), means.std(axis=0, ddof=1)),
        "mve": (means[0], stds[0]),
        "ensemble+mve": (means.mean(axis=0), np.sqrt(mix_var)),
        "experts": (means[0], np.asarray(first["spread"])),
        "latent": (means[0], latent),
    }
    if "similarity" in first:
        found["similarity"] = (
            means[0], np.broadcast_to(np.asarray(first["similarity"]), means[0].shape)
        )  # fmt: skip
    return found


def _score(val, test, y_val, y_test, coverage: float) -> dict[str, float]:
    """Calibrate one estimator on val, score it on test (both conformal scores)."""
    (pv, sv), (pt, st) = val, test
    sv, st = np.maximum(sv, 1e-8), np.maximum(st, 1e-8)
    zs = ZScaling().fit(pv, sv, y_val)
    found = regression_uncertainty_metrics(pt, zs.apply(st), y_test)
    scores = {k: float(found[k]) for k in METRICS if k != "rmse"}
    scores["rmse"] = float(np.sqrt(np.nanmean((pt - y_test) ** 2)))
    offset = {"normalized": 0.0, "regularized": float(np.median(sv))}
    for variant, beta in offset.items():
        cp = ConformalRegressor(coverage).fit(pv, y_val, std=sv + beta)
        lower, upper = cp.interval(pt, st + beta)
        inside = (y_test >= lower) & (y_test <= upper)
        scores[f"coverage_{variant}"] = float(inside.mean())
        scores[f"width_{variant}"] = float((upper - lower).mean())
    return scores


def score_splits(
    members: pd.DataFrame, coverage: float
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Per (dataset, split, estimator) scores, the experts-vs-ensemble agreement, and the
    oracle: Spearman of the ensemble's |error| with |true value - training mean| (runs
    that saved the training mean)."""
    rows, agreement, oracle = [], [], []
    for (name, s), group in members.groupby(["dataset", "split"], sort=False):
        group = group.sort_values("member")
        val, test = list(group["val"]), list(group["test"])
        y_val, y_test = np.asarray(val[0]["y"]), np.asarray(test[0]["y"])
        est_val, est_test = _estimates(val), _estimates(test)
        for estimator in est_test:
            scores = _score(est_val[estimator], est_test[estimator], y_val, y_test, coverage)
            rows.append({"dataset": name, "split": s, "estimator": estimator, **scores})
        rho = spearmanr(est_test["experts"][1].ravel(), est_test["ensemble"][1].ravel())
        agreement.append({"dataset": name, "split": s, "spearman": float(rho.statistic)})
        if "train_y_mean" in group.columns:
            error = np.abs(est_test["ensemble"][0] - y_test)
            distance = np.abs(y_test - np.asarray(group["train_y_mean"].iloc[0]))
            rho = spearmanr(error.ravel(), distance.ravel(), nan_policy="omit")
            oracle.append({"dataset": name, "split": s, "spearman": float(rho.statistic)})
    return pd.DataFrame(rows), pd.DataFrame(agreement), pd.DataFrame(oracle)


def render(
    runs: pd.DataFrame, agreement: pd.DataFrame, args, wall: float, oracle: pd.DataFrame
) -> str:
    """The markdown report: the estimator table, the targets, every split."""
    columns = [*METRICS, *(f"{k}_{c}" for c in CONFORMAL for k in ("coverage", "width"))]
    grouped = runs.groupby(["dataset", "estimator"], sort=False)[columns]
    mean, std = grouped.mean(), grouped.std(ddof=1)
    lines = [
        "# Uncertainty estimators: calibration, ranking and conformal coverage",
        "",
        f"- command: `{command_line(__file__, args.argv)}`",
        f"- date: {date.today().isoformat()}",
        f"- machine: {platform.platform()}, {trainings_at_once(args)}, "
        f"{'CUDA' if torch.cuda.is_available() else 'CPU only'}",
        f"- setting: {args.splits} scaffold_balanced splits x {args.members} members, "
        f"{args.epochs} epochs, SchNet experts width {args.hidden}, "
        f"{'EMA ' + str(args.ema) if args.ema else 'no EMA'}, sparse k=2 of 5 with a "
        "mean-variance head (Gaussian NLL after a 5-epoch MSE warm start); every std "
        f"calibrated on the validation set; {args.coverage:.0%} split-conformal intervals",
        "- mean ± sample std (ddof=1) over the splits; NLL in the target's units with the "
        "z-scaled std; coverage and width (mean interval width) for the `normalized` score "
        "|error| / std and the `regularized` score |error| / (std + median validation std)",
        f"- training time, summed over the member runs: {wall:.0f} s",
        "",
        "| dataset | estimator | " + " | ".join(columns) + " |",
        "|---|---|" + "---|" * len(columns),
    ]
    for (dataset, estimator), m in mean.iterrows():
        sd = std.loc[(dataset, estimator)]
        cells = [f"{m[k]:.3f} ± {sd[k]:.3f}" for k in columns]
        lines.append(f"| {dataset} | {estimator} | " + " | ".join(cells) + " |")
    lines += ["", "Spearman(experts' spread, ensemble std) on the test molecules:", ""]
    for dataset, values in agreement.groupby("dataset", sort=False)["spearman"]:
        lines.append(f"- {dataset}: {values.mean():.3f} ± {values.std(ddof=1):.3f}")
    if len(oracle):
        lines += [
            "",
            "Oracle, not an estimator: Spearman(ensemble's |error|, |true value - training "
            "mean|) on the test molecules, how much of the error ranking is regression towards "
            "the mean:",
            "",
        ]
        for dataset, values in oracle.groupby("dataset", sort=False)["spearman"]:
            lines.append(f"- {dataset}: {values.mean():.3f} ± {values.std(ddof=1):.3f}")
    best = runs.groupby("estimator")["spearman"].mean()
    estimators = list(runs["estimator"].unique())
    lines += ["", "## Targets", ""]
    for variant in CONFORMAL:
        cover = runs.groupby("estimator")[f"coverage_{variant}"].mean()
        inside = [e for e in estimators if 0.87 <= cover[e] <= 0.93]
        lines.append(
            f"- {variant} conformal {args.coverage:.0%} coverage, mean over datasets and "
            "splits: " + ", ".join(f"{e} {cover[e]:.3f}" for e in estimators)
            + f" -> target 0.87-0.93 met by {len(inside)} of {len(estimators)} estimators ("
            + (", ".join(inside) or "none") + ")"
        )  # fmt: skip
    per_dataset = runs.groupby(["dataset", "estimator"], sort=False)["spearman"].mean()
    lines += [
        f"- best Spearman(|error|, std), mean over datasets and splits: {best.idxmax()} "
        f"{best.max():.3f} -> {'met' if best.max() > 0.3 else 'NOT met'} (target > 0.3); per "
        "dataset: "
        + ", ".join(
            f"{d} {per_dataset[d].idxmax()} {per_dataset[d].max():.3f}"
            for d in runs["dataset"].unique()
        ),
        "",
        "## Per split",
        "",
        *markdown_rows(runs),
    ]
    return "\n".join(lines) + "\n"


def _ema_tag(ema: float) -> str:
    """File-name part: none without EMA (the committed runs' names), ``_ema0.999`` with."""
    return f"_ema{ema:g}" if ema else ""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", default="freesolv,esol")
    parser.add_argument("--members", type=int, default=3)
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--coverage", type=float, default=0.9)
    parser.add_argument(
        "--ema", type=float, default=0.0, metavar="DECAY",
        help="the weights' moving average: 0 as in the committed reduced runs, 0.999 for "
        "today's defaults (with --epochs 100 --hidden 128: the full-size setting)",
    )  # fmt: skip
    add_run_options(parser, RUNS / "uncertainty", ROOT / "benchmarks/results/uncertainty_cpu.md")
    parser.set_defaults(epochs=30)
    args = parser.parse_args(argv)
    args.argv = sys.argv[1:] if argv is None else argv
    args.work.mkdir(parents=True, exist_ok=True)
    datasets = args.datasets.split(",")
    runs = [
        (args.work / f"{name}_{s}_m{i}_e{args.epochs}_h{args.hidden}{_ema_tag(args.ema)}.json",
         run_member, (name, s, i, args.epochs, args.hidden, args.ema))
        for name in datasets for s in range(args.splits) for i in range(args.members)
    ]  # fmt: skip
    failures = run_all(runs, args, datasets, lambda row: (
            f"{row['dataset']} split {row['split']} member {row['member']}: test rmse "
            f"{row['test_rmse']:.3f} ({row['seconds']:.0f} s)"))  # fmt: skip
    members = pd.DataFrame(results(runs))
    complete = members.groupby(["dataset", "split"])["member"].transform("count") == args.members
    if not complete.all():
        print(f"{(~complete).sum()} member runs belong to unfinished splits; left out")
    members = members[complete]
    if len(members) == 0:
        print("no split has all its members yet; nothing to report")
        return 1
    scored, agreement, oracle = score_splits(members, args.coverage)
    text = render(scored, agreement, args, float(members["seconds"].sum()), oracle)
    write_report(args.out, text)
    return exit_status(failures)


if __name__ == "__main__":
    sys.exit(main())
