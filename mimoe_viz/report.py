"""One self-contained HTML page per training run: metrics, curves, routing and molecules.

``report(run_dir)`` reads only the files a run folder holds (``metrics.json``,
``history.csv``, ``test_explained/``, ``skipped.csv``), through
:func:`mimoe_core.run_folder.load_run`: it never loads or runs a model.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from mimoe_core import run_folder
from mimoe_core.analysis.routing import dominant_from_alpha
from mimoe_core.analysis.uncertainty import coverage_curve, miscalibration_area, rmv_rmse_bins
from mimoe_core.results import PredictionResult
from mimoe_viz import dataset_routing, mol3d
from mimoe_viz._deps import mpl_figure
from mimoe_viz._style import REFERENCE, SERIES
from mimoe_viz.evaluation_figures import parity_figure, parity_mpl, roc_figure, roc_mpl
from mimoe_viz.export import html_page, plotly_fragment, save_png
from mimoe_viz.panels import molecule_figures
from mimoe_viz.tables import metrics_table_html, uncertainty_table_html
from mimoe_viz.training_figures import training_curves_figure, training_curves_mpl
from mimoe_viz.uncertainty_figures import (
    coverage_calibration_figure,
    error_vs_std_figure,
    parity_interval_figure,
)


def pick_examples(result: PredictionResult, num: int = 3) -> list[int]:
    """Entries worth a closer look: routed to different experts, of different sizes.

    First the most confidently routed molecule of each dominant expert (most used experts
    first), then molecules spread over the size range, until ``num`` are chosen.

    Args:
        result: a result with structures.
        num: how many, default 3.

    Returns:
        Up to ``num`` entry indices (fewer if fewer molecules are ``ok``).

    Example:
        >>> import numpy as np
        >>> from types import SimpleNamespace
        >>> r = SimpleNamespace(ok=np.ones(4, bool), num_atoms=np.array([3, 9, 5, 7]),
        ...                     alpha=np.array([[1, 0], [.6, .4], [.2, .8], [.9, .1]]))
        >>> pick_examples(r, 3)
        [0, 2, 1]
    """
    ok = np.flatnonzero(result.ok)
    if ok.size == 0:
        return []
    alpha = np.nan_to_num(result.alpha[ok])
    dominant = dominant_from_alpha(alpha)
    chosen: list[int] = []
    experts, counts = np.unique(dominant, return_counts=True)
    for expert in experts[np.argsort(-counts, kind="stable")]:
        members = np.flatnonzero(dominant == expert)
        chosen.append(int(ok[members[np.argmax(alpha[members, expert])]]))
        if len(chosen) == num:
            return chosen
    by_size = ok[np.argsort(result.num_atoms[ok], kind="stable")]
    for q in np.linspace(1.0, 0.0, len(by_size)):
        if len(chosen) == num:
            break
        pick = int(by_size[int(round(q * (len(by_size) - 1)))])
        if pick not in chosen:
            chosen.append(pick)
    return chosen


def uncertainty_note(result: PredictionResult, index: int) -> str:
    """`` ± std`` and the interval of one entry's prediction, or ``""`` without a std.

    Example:
        >>> import numpy as np
        >>> from types import SimpleNamespace
        >>> r = SimpleNamespace(std=np.array([[0.25]]), lower=np.array([[0.5]]),
        ...                     upper=np.array([[1.5]]), coverage=0.9)
        >>> uncertainty_note(r, 0)
        ' ± 0.25 · 90% interval [0.5, 1.5]'
    """
    std = getattr(result, "std", None)
    if std is None or not np.isfinite(std[index]).any():
        return ""
    text = " ± " + ", ".join(f"{v:.3g}" for v in std[index])
    lower, upper = getattr(result, "lower", None), getattr(result, "upper", None)
    if lower is not None and upper is not None:
        coverage = getattr(result, "coverage", None)
        level = f"{coverage:.0%} " if coverage else ""
        bounds = ", ".join(
            f"[{lo:.3g}, {hi:.3g}]" for lo, hi in zip(lower[index], upper[index], strict=True)
        )
        text += f" · {level}interval {bounds}"
    return text


def molecule_section(result: PredictionResult, index: int, radii: Sequence[float]) -> str:
    """HTML for one molecule: 3D filtration, descriptor curves, barcode, routing, waterfall."""
    z, pos = result.structure(index)
    label = ""
    if result.labels is not None and np.isfinite(result.labels[index]).any():
        label = " · label " + ", ".join(f"{v:.3g}" for v in result.labels[index])
    pred = ", ".join(f"{v:.3g}" for v in result.prediction[index])
    title = (
        f"{html.escape(result.smiles[index])} <span class='note'>({len(z)} atoms · "
        f"prediction {pred}{uncertainty_note(result, index)}{label})</span>"
    )
    viewer = mol3d.molecule_html(
        z,
        pos,
        radius=float(result.cutoffs[len(result.cutoffs) // 2]),
        cutoffs=result.cutoffs,
        radii=np.asarray(radii),
        include_library=False,
        width=520,
        height=380,
    )
    figures = molecule_figures(result, index, radii)
    cards = [f'<div class="card">{viewer}</div>']
    cards += [f'<div class="card">{plotly_fragment(fig)}</div>' for fig in figures.values()]
    return f"<h3>{title}</h3>\n<div class='grid'>{''.join(cards)}</div>"


def _grid(figures: Sequence) -> str:
    """Plotly figures as cards in a responsive grid."""
    cards = "".join(f'<div class="card">{plotly_fragment(fig)}</div>' for fig in figures)
    return f"<div class='grid'>{cards}</div>"


def report(run_dir: str | Path, out: str | Path | None = None, examples: int = 3) -> Path:
    """Write ``report.html`` for a training run, and PNG versions of its main figures.

    The page holds the metrics table, training curves, the test set's parity plot
    (regression) or ROC curves (classification), the routing map, expert usage and routing
    against size and a descriptor, and ``examples`` test molecules with their 3D filtration,
    descriptor curves, barcode, routing weights and expert contributions. plotly.js and
    3Dmol.js are inlined: the file opens offline. PNGs go to ``<run_dir>/figures/``.

    Args:
        run_dir: a folder written by ``mimoe train`` / :func:`mimoe_core.training.train`.
        out: the HTML file; default ``<run_dir>/report.html``.
        examples: example molecules, default 3.

    Returns:
        The path of the HTML file.

    Raises:
        FileNotFoundError: if the run folder lacks ``metrics.json`` or the test
            explanations (``test_explained/``, written by runs since this version).
    """
    run = run_folder.load_run(run_dir)
    if run.test is None:
        raise FileNotFoundError(
            f"{run.path} has no {run_folder.TEST_EXPLAINED}/ folder (written by mimoe train); "
            "train again with this version to get the test-set explanations"
        )
    result = run.test
    out = Path(out) if out is not None else run.path / run_folder.REPORT
    figures_dir = run.path / run_folder.FIGURES
    model = run.metrics.get("model", {})
    subtitle = (
        f"{', '.join(run.targets)} ({run.task}) · {model.get('backbone', '?')} experts, "
        f"{_variant_words(model)}, top-k {model.get('top_k', '?')}, {_cutoff_words(model, run)} · "
        f"written {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC"
    )
    unit = str(run.metrics.get("unit") or "") if run.task == "regression" else ""
    body = ["<h2>Metrics</h2>", metrics_table_html(run.metrics)]

    body.append("<h2>Training</h2>")
    body.append(_grid([training_curves_figure(run.history)]))
    save_png(training_curves_mpl(run.history), figures_dir / "training_curves.png")

    body.append("<h2>Test set</h2>")
    if run.task == "regression":
        fit, fit_png = parity_figure(result, unit=unit), parity_mpl(result, unit=unit)
        name = "parity.png"
    else:
        fit, fit_png = roc_figure(result), roc_mpl(result)
        name = "roc.png"
    save_png(fit_png, figures_dir / name)
    body.append(_grid([fit, dataset_routing.expert_usage_figure(result)]))
    save_png(dataset_routing.expert_usage_mpl(result), figures_dir / "expert_usage.png")

    body += uncertainty_section(run.metrics, result, figures_dir, unit)

    body.append("<h2>Routing</h2>")
    body.append(
        "<p class='note'>Each row is a test molecule, each column an expert (its cutoff); the "
        "colour is the routing weight alpha. Below: the alpha-weighted cutoff of each molecule "
        "against its size and against a descriptor of its filtration.</p>"
    )
    body.append(_grid([dataset_routing.routing_map(result, "size")]))
    save_png(dataset_routing.routing_map_mpl(result, "size"), figures_dir / "routing_map.png")
    body.append(
        _grid(
            [
                dataset_routing.alpha_vs_size_figure(result),
                dataset_routing.alpha_vs_descriptor_figure(result),
            ]
        )
    )
    save_png(dataset_routing.alpha_vs_size_mpl(result), figures_dir / "alpha_vs_size.png")

    body.append("<h2>Example molecules</h2>")
    body.append(
        "<p class='note'>Drag to rotate the 3D structure; the slider grows the radius graph "
        "G(r) edge by edge. Edge colours: the smallest expert cutoff whose graph holds the "
        "edge (grey: beyond every cutoff).</p>"
    )
    for index in pick_examples(result, examples):
        body.append(molecule_section(result, index, result.radii))

    if len(run.skipped):
        body.append("<h2>Skipped molecules</h2>")
        body.append(
            f"<p>{len(run.skipped)} input rows did not become molecules; reasons in "
            f"<code>{html.escape(str(run.path / run_folder.SKIPPED))}</code>. First rows:</p>"
        )
        body.append(run.skipped.head(10).to_html(index=False, escape=True, border=0))

    out.parent.mkdir(parents=True, exist_ok=True)
    page = html_page(
        f"MI-MoE run: {run.path.name}", body, plotly=True, threedmol=True, subtitle=subtitle
    )
    out.write_text(page, encoding="utf-8")
    return out


def _labelled(result: PredictionResult) -> np.ndarray:
    """Entries with a prediction and a finite std: the rows the uncertainty figures use."""
    finite = np.isfinite(result.prediction).all(axis=1) & np.isfinite(result.std).all(axis=1)
    return np.flatnonzero(result.ok & finite)


def uncertainty_section(
    metrics: dict, result: PredictionResult, figures_dir: Path, unit: str = ""
) -> list[str]:
    """The report's "Uncertainty" section, or ``[]`` when the run has no uncertainty.

    Its table and, for a regression with a std, the coverage calibration, error against
    std and parity-with-intervals figures (PNG twins of them in ``figures_dir``).
    """
    table = uncertainty_table_html(metrics)
    if not table:
        return []
    parts = ["<h2>Uncertainty</h2>", table]
    if result.task != "regression" or result.std is None or result.labels is None:
        return parts
    keep = _labelled(result)
    if keep.size == 0:
        return parts
    names = [f"{t} ({unit})" if unit else t for t in result.targets]
    pred, std, labels = result.prediction[keep], result.std[keep], result.labels[keep]
    expected, observed = coverage_curve(pred, std, labels)
    figures = [
        coverage_calibration_figure(expected, observed, names),
        error_vs_std_figure(pred, std, labels, names),
    ]
    pngs = {
        "coverage_calibration.png": _coverage_mpl(expected, observed, names),
        "error_vs_std.png": _error_vs_std_mpl(pred, std, labels, names),
    }
    if result.lower is not None and result.upper is not None:
        lower, upper = result.lower[keep], result.upper[keep]
        figures.append(parity_interval_figure(pred, lower, upper, labels, names))
        pngs["parity_interval.png"] = _parity_interval_mpl(pred, lower, upper, labels, names)
    parts.append(
        "<p class='note'>Left: observed against nominal coverage of central Gaussian "
        "intervals (a calibrated std follows the diagonal). Right: absolute error against "
        "the predicted std, with binned RMSE against RMV. Below: each test molecule's "
        "interval around its prediction.</p>"
    )
    parts.append(_grid(figures))
    for name, fig in pngs.items():
        save_png(fig, figures_dir / name)
    return parts


def _panel_axes(count: int, size: float = 4.0) -> list:
    fig = mpl_figure(figsize=(size * count, size), layout="constrained")
    return list(np.atleast_1d(fig.subplots(1, count, squeeze=False)[0]))


def _coverage_mpl(expected: np.ndarray, observed: np.ndarray, names: list[str]) -> Any:
    """Print twin of :func:`coverage_calibration_figure` (for ``figures/``)."""
    ax = _panel_axes(1)[0]
    areas = miscalibration_area(expected, observed)
    for t, name in enumerate(names):
        ax.plot(expected, observed[:, t], color=SERIES[t % len(SERIES)],
                label=f"{name} (area {areas[t]:.3f})")  # fmt: skip
    ax.plot([0, 1], [0, 1], "--", color=REFERENCE, label="ideal")
    ax.set(xlim=(0, 1), ylim=(0, 1.02), xlabel="expected coverage", ylabel="observed coverage")
    ax.set_aspect("equal")
    ax.legend(fontsize=8)
    ax.set_title("Coverage calibration", fontsize=9)
    return ax


def _error_vs_std_mpl(pred, std, labels, names: list[str]) -> Any:
    """Print twin of :func:`error_vs_std_figure`: one panel per target."""
    axes = _panel_axes(len(names))
    for t, (ax, name) in enumerate(zip(axes, names, strict=True)):
        keep = np.isfinite(labels[:, t])
        err, sig = np.abs(pred[keep, t] - labels[keep, t]), std[keep, t]
        rmv, rmse = rmv_rmse_bins(pred[:, [t]], std[:, [t]], labels[:, [t]])[0]
        ax.scatter(sig, err, s=10, alpha=0.5, color=SERIES[t % len(SERIES)], label="|error|")
        ax.plot(rmv, rmse, "o-", color="black", markersize=3, label="binned RMSE")
        top = max([0.0, *sig, *err]) or 1.0
        ax.plot([0, top], [0, top], "--", color=REFERENCE, label="RMSE = RMV")
        ax.set(xlabel=f"predicted std ({name})", ylabel="|error|, RMSE")
        ax.legend(fontsize=8)
    return axes[0]


def _parity_interval_mpl(pred, lower, upper, labels, names: list[str]) -> Any:
    """Print twin of :func:`parity_interval_figure`: one panel per target."""
    axes = _panel_axes(len(names))
    for t, (ax, name) in enumerate(zip(axes, names, strict=True)):
        keep = np.isfinite(labels[:, t])
        true, p = labels[keep, t], pred[keep, t]
        up, down = upper[keep, t] - p, p - lower[keep, t]
        bars = np.where(np.isfinite([down, up]), [down, up], np.nan)
        ax.errorbar(true, p, yerr=np.nan_to_num(bars), fmt="o", markersize=3, elinewidth=0.8,
                    color=SERIES[t % len(SERIES)], label="interval")  # fmt: skip
        finite = np.concatenate([true, p])
        lo, hi = float(finite.min()), float(finite.max())
        ax.plot([lo, hi], [lo, hi], "--", color=REFERENCE, label="y = x")
        ax.set(xlabel=f"true {name}", ylabel=f"predicted {name}")
        ax.legend(fontsize=8)
    return axes[0]


def _cutoff_words(model: dict, run) -> str:
    """The cutoffs for the subtitle; learned ones with the values they started from."""
    shown = ", ".join(f"{round(c, 2):g}" for c in run.cutoffs)
    if "learned_cutoffs" not in model:
        return f"cutoffs {shown} Å"
    start = ", ".join(f"{c:g}" for c in model.get("initial_cutoffs", []))
    return f"learned cutoffs {shown} Å (from {start} Å)"


def _variant_words(model: dict) -> str:
    # Runs written before 0.2 name the variant "routing" (with "one"/"single").
    name = model.get("variant", model.get("routing", "?"))
    words = {"sparse": "sparse (Top-k) routing", "dense": "dense routing"}
    words.update({"one_expert": "one expert", "one": "one expert"})
    words.update({"plain": "the plain backbone", "single": "the plain backbone"})
    return words.get(name, f"{name} variant")
