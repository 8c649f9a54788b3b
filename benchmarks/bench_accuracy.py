"""Accuracy side by side: single-scale SchNet, MI-MoE(SchNet), MI-MoE(PaiNN), chemprop.

Every model trains on the same scaffold split of each dataset with the same seeds; the table
reports test mean ± std over seeds and the wall time per training run. chemprop 2.x (D-MPNN,
its default architecture) runs when installed (``pip install -e ".[bench]"``).

    python benchmarks/bench_accuracy.py --setting cpu     # reduced: see SETTINGS, < 1 h here
    python benchmarks/bench_accuracy.py --setting full    # the real thing, for a GPU

Writes ``--out`` (default ``benchmarks/results/accuracy_<setting>.md``) with the command,
machine and date, plus ``runs.csv`` beside it.
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

from mimoe_core.data import load_dataset, make_split
from mimoe_core.featurization import featurize
from mimoe_core.training import TrainSettings, run_experiments
from mimoe_core.training.metrics import compute_metrics

DATASETS = ("freesolv", "esol", "lipo", "bace", "tox21", "clintox")

SETTINGS = {
    # Reduced for 2 CPU cores: `limit` molecules drawn at random (seed 0) from each dataset,
    # narrower networks, fewer epochs. Numbers from it are not comparable to published ones.
    "cpu": {"limit": 500, "epochs": 30, "patience": 10, "hidden": 64, "batch_size": 32},
    "full": {"limit": None, "epochs": 200, "patience": 30, "hidden": 128, "batch_size": 64},
    # Checks that the script runs end to end (a minute); its numbers mean nothing.
    "smoke": {"limit": 60, "epochs": 2, "patience": 2, "hidden": 16, "batch_size": 16},
}


def model_variants(hidden: int) -> dict[str, dict]:
    expert = {"hidden_channels": hidden, "num_layers": 3}
    return {
        "single-scale SchNet (6 layers, 5 Å)": {
            "backbone": "schnet",
            "variant": "plain",
            "expert": expert,
            "plain": {"cutoff": 5.0, "num_layers": 6},
        },
        "MI-MoE(SchNet) sparse k=2": {"backbone": "schnet", "variant": "sparse", "expert": expert},
        "MI-MoE(PaiNN) sparse k=2": {
            "backbone": "painn",
            "variant": "sparse",
            "expert": expert,
            "gate": {"name": "transformer"},
        },
    }


def run_chemprop(ds, split, task: str, seed: int, epochs: int, batch_size: int) -> dict:
    """chemprop 2.x with its default D-MPNN on the same split; test metrics in our code."""
    from chemprop import data, featurizers, models, nn
    from lightning import pytorch as pl

    smiles = ds.smiles
    labels = np.stack([d.y[0].numpy() for d in ds.data_list]).astype(float)
    featurizer = featurizers.SimpleMoleculeMolGraphFeaturizer()

    def dataset(idx):
        points = [data.MoleculeDatapoint.from_smi(smiles[i], labels[i]) for i in idx]
        return data.MoleculeDataset(points, featurizer)

    train_set, val_set, test_set = (dataset(getattr(split, p)) for p in ("train", "val", "test"))
    if task == "regression":
        scaler = train_set.normalize_targets()
        val_set.normalize_targets(scaler)
        ffn = nn.RegressionFFN(
            n_tasks=labels.shape[1],
            output_transform=nn.UnscaleTransform.from_standard_scaler(scaler),
        )
    else:
        ffn = nn.BinaryClassificationFFN(n_tasks=labels.shape[1])
    pl.seed_everything(seed, verbose=False)
    model = models.MPNN(nn.BondMessagePassing(), nn.MeanAggregation(), ffn)
    best = _KeepBest(pl.Callback)()
    trainer = pl.Trainer(
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        accelerator="auto",
        devices=1,
        max_epochs=epochs,
        callbacks=[best],
    )
    loader = data.build_dataloader
    trainer.fit(
        model,
        loader(train_set, batch_size=batch_size, seed=seed),
        loader(val_set, batch_size=batch_size, shuffle=False),
    )
    model.load_state_dict(best.state)  # the epoch with the lowest validation loss
    preds = trainer.predict(model, loader(test_set, batch_size=batch_size, shuffle=False))
    pred = torch.cat(preds).reshape(len(split.test), -1).numpy()
    return compute_metrics(task, pred, labels[split.test])


def _KeepBest(base: type) -> type:
    """A lightning callback class keeping the weights of the lowest validation loss in memory
    (lightning's own checkpoints do not load with ``weights_only=True``)."""

    class KeepBest(base):
        def __init__(self) -> None:
            self.loss, self.state = float("inf"), None

        def on_validation_epoch_end(self, trainer, module) -> None:
            loss = trainer.callback_metrics.get("val_loss")
            if trainer.sanity_checking or loss is None or not float(loss) < self.loss:
                return
            self.loss = float(loss)
            self.state = {k: v.detach().clone() for k, v in module.state_dict().items()}

    return KeepBest


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--setting", choices=SETTINGS, default="cpu")
    parser.add_argument("--datasets", default=",".join(DATASETS))
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument(
        "--split",
        choices=("scaffold", "scaffold_balanced", "random"),
        default="scaffold",
        help="scaffold: one deterministic split for every seed (MoleculeNet); "
        "scaffold_balanced: a seeded scaffold split per seed (chemprop), which also puts both "
        "classes in small test sets",
    )
    parser.add_argument("--device", default="auto")
    parser.add_argument("--no-chemprop", action="store_true")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument(
        "--retable",
        type=Path,
        default=None,
        help="rewrite the tables of an existing result (.md with its .csv beside it) from its "
        "per-seed runs, without training; keeps its command, machine and date",
    )
    args = parser.parse_args()
    if args.retable is not None:
        retable(args.retable)
        return

    cfg = SETTINGS[args.setting]
    seeds = [int(s) for s in args.seeds.split(",")]
    out = args.out or Path(__file__).parent / "results" / f"accuracy_{args.setting}.md"
    out.parent.mkdir(parents=True, exist_ok=True)
    settings = TrainSettings(
        epochs=cfg["epochs"],
        patience=cfg["patience"],
        batch_size=cfg["batch_size"],
        device=args.device,
        progress=False,
    )
    try:
        import chemprop

        has_chemprop = not args.no_chemprop
        chemprop_version = chemprop.__version__
    except ImportError:
        has_chemprop, chemprop_version = False, None

    header = [
        "# Accuracy: MI-MoE against single-scale SchNet and chemprop",
        "",
        f"- command: `python {' '.join(sys.argv)}`",
        f"- date: {date.today().isoformat()}",
        f"- machine: {platform.machine()}, {torch.get_num_threads()} torch threads, "
        f"{'CUDA ' + torch.cuda.get_device_name() if torch.cuda.is_available() else 'CPU only'}",
        f"- setting `{args.setting}`: {cfg}; split: {args.split} 80/10/10; seeds {seeds}",
        f"- chemprop: {chemprop_version or 'not installed (pip install -e .[bench])'}",
        "- test metrics: RMSE/MAE in the target's units (lower is better), ROC-AUC/PR-AUC "
        "(higher is better); seconds: wall time of one training run",
        "",
    ]
    sections, all_runs = [], []
    for name in args.datasets.split(","):
        table = load_dataset(name)
        if cfg["limit"] is not None:
            table = table.sample(cfg["limit"], seed=0)
        ds = featurize(table, progress=False)
        task = ds.table.task
        variants = model_variants(cfg["hidden"])
        runs, _ = run_experiments(ds, variants, seeds, args.split, settings)
        if has_chemprop:
            rows = []
            for seed in seeds:
                split = make_split(args.split, ds.smiles, seed=seed)
                start = time.perf_counter()
                metrics = run_chemprop(ds, split, task, seed, cfg["epochs"], cfg["batch_size"])
                row = {
                    "variant": "chemprop D-MPNN",
                    "seed": seed,
                    "seconds": time.perf_counter() - start,
                }
                row.update({f"test_{k}": v for k, v in metrics.items() if isinstance(v, float)})
                rows.append(row)
            runs = pd.concat([runs, pd.DataFrame(rows)], ignore_index=True)
        runs.insert(0, "dataset", name)
        all_runs.append(runs)
        sections.append(_table(runs, f"{name} ({task}, {len(ds)} molecules)"))
        print(sections[-1], flush=True)
    out.write_text("\n".join(header + sections))
    pd.concat(all_runs).to_csv(out.with_suffix(".csv"), index=False)
    print(f"wrote {out} and {out.with_suffix('.csv')}")


def retable(md: Path) -> None:
    """Recompute the mean ± std tables of ``md`` from the runs in ``md``'s CSV."""
    runs = pd.read_csv(md.with_suffix(".csv"))
    text = md.read_text()
    header = text[: text.index("\n### ")].rstrip("\n").splitlines()
    titles = [line[4:] for line in text.splitlines() if line.startswith("### ")]
    header.append(
        f"- tables recomputed from the per-seed runs in {md.with_suffix('.csv').name} "
        f"on {date.today().isoformat()} (mean ± sample std, ddof=1)"
    )
    sections = []
    for title in titles:
        name = title.split(" ", 1)[0]
        part = runs[runs["dataset"] == name].drop(columns="dataset").dropna(axis=1, how="all")
        sections.append(_table(part, title))
    md.write_text("\n".join([*header, "", *sections]))
    print(md.read_text())


def _table(runs: pd.DataFrame, title: str) -> str:
    from mimoe_core.training.experiments import markdown_table, summarize

    keep = [
        c
        for c in runs.columns
        if c in ("variant", "seed", "seconds")
        or c in ("test_rmse", "test_mae", "test_roc_auc", "test_pr_auc")
    ]
    return markdown_table(summarize(runs[keep]), title)


if __name__ == "__main__":
    main()
