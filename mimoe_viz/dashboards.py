"""A linked dashboard: pick a molecule and every per-molecule view updates together.

``explore(result)`` composes ipywidgets from a :class:`PredictionResult` (a run's
``test_explained/`` or the output of ``mimoe_core.inference.predict``). The callbacks are
pure functions (``find_entries``, ``entry_options``, ``entry_summary``) that tests call
directly; the widget only wires them to the controls.
"""

from __future__ import annotations

import html
from typing import Any

import numpy as np

from mimoe_core.results import PredictionResult
from mimoe_viz.panels import molecule_figures


def entry_options(result: PredictionResult) -> list[tuple[str, int]]:
    """``(label, index)`` for every ``ok`` entry: ``"3 · CCO (9 atoms)"``."""
    sizes = result.num_atoms
    return [
        (f"{i} · {result.smiles[i]} ({sizes[i]} atoms)", int(i)) for i in np.flatnonzero(result.ok)
    ]


def find_entries(result: PredictionResult, query: str) -> list[int]:
    """Entries matching ``query``: an entry index, an exact id, or a SMILES substring.

    Only ``ok`` entries are returned; an empty query matches all of them.

    Example:
        >>> import numpy as np
        >>> from types import SimpleNamespace
        >>> r = SimpleNamespace(ok=np.array([True, True, False]), ids=["a", "b", "c"],
        ...                     smiles=["CCO", "c1ccccc1", "CCN"])
        >>> find_entries(r, "CC"), find_entries(r, "1"), find_entries(r, "b")
        ([0], [1], [1])
    """
    ok = [int(i) for i in np.flatnonzero(result.ok)]
    query = query.strip()
    if not query:
        return ok
    if query.isdigit() and int(query) in ok:
        return [int(query)]
    by_id = [i for i in ok if result.ids[i] == query]
    if by_id:
        return by_id
    return [i for i in ok if query in result.smiles[i]]


def entry_summary(result: PredictionResult, index: int) -> str:
    """An HTML line on one entry: SMILES, size, prediction, label, selected experts.

    With an uncertainty the prediction reads ``y = 1.2 ± 0.3 [0.7, 1.7]`` (std, interval).
    """
    targets = result.targets or ["y"]
    parts = [f"<b>{html.escape(result.smiles[index])}</b>", f"{result.num_atoms[index]} atoms"]
    for t, name in enumerate(targets):
        text = f"{html.escape(name)} = {result.prediction[index, t]:.3g}"
        std = getattr(result, "std", None)
        if std is not None and np.isfinite(std[index, t]):
            text += f" ± {std[index, t]:.3g}"
            lower, upper = getattr(result, "lower", None), getattr(result, "upper", None)
            if lower is not None and upper is not None:
                text += f" [{lower[index, t]:.3g}, {upper[index, t]:.3g}]"
        if result.labels is not None and np.isfinite(result.labels[index, t]):
            text += f" (label {result.labels[index, t]:.3g})"
        parts.append(text)
    alpha = np.nan_to_num(result.alpha[index])
    chosen = [
        f"E{e + 1} ({result.cutoffs[e]:g} Å) α={alpha[e]:.2f}"
        for e in np.argsort(-alpha)
        if alpha[e] > 0
    ]
    parts.append("experts: " + ", ".join(chosen))
    return " · ".join(parts)


def explore(result: PredictionResult, index: int | None = None) -> Any:
    """A linked dashboard over the molecules of a result.

    A search box (entry index, id or SMILES fragment) narrows a dropdown of molecules; the
    chosen molecule is shown as a 3D structure with a radius slider (the filtration growing
    edge by edge, with its Betti numbers), its descriptor curves, persistence barcode,
    routing weights and expert contributions, all updated together.

    Args:
        result: a result with structures (a run's ``test_explained/`` loaded with
            ``PredictionResult.load``, or ``predict(...)``'s output).
        index: the entry shown first; default the first ``ok`` entry.

    Returns:
        An ``ipywidgets.VBox``; its ``.select(index)`` method switches molecule (as the
        dropdown does).

    Raises:
        ValueError: if no entry has a structure and a prediction.
        ImportError: without ipywidgets (``pip install "mimoe[viz]"``).
    """
    try:
        import ipywidgets as widgets
        from IPython.display import display
    except ImportError as err:  # pragma: no cover - the viz extra brings both
        raise ImportError('explore needs ipywidgets: pip install "mimoe[viz]"') from err
    from mimoe_viz.mol3d import filtration_widget

    options = entry_options(result)
    if not options or not result.positions:
        raise ValueError("the result has no molecule with a structure and a prediction")
    first = options[0][1] if index is None else int(index)
    search = widgets.Text(placeholder="index, id or SMILES fragment", description="Find")
    choice = widgets.Dropdown(
        options=options, value=first, description="Molecule", layout=widgets.Layout(width="60%")
    )
    summary = widgets.HTML()
    structure = widgets.Output()
    panels = {name: widgets.Output() for name in ("curves", "barcode", "alpha", "waterfall")}

    shown = []  # 3Dmol.js is sent with the first viewer only; it stays loaded in the page

    def show(entry: int) -> None:
        summary.value = entry_summary(result, entry)
        z, pos = result.structure(entry)
        library = "none" if shown else "auto"
        structure.clear_output(wait=True)
        with structure:
            display(
                filtration_widget(
                    z, pos, radii=result.radii, cutoffs=result.cutoffs, library=library
                )
            )
        shown.append(entry)
        for name, fig in molecule_figures(result, entry).items():
            panels[name].clear_output(wait=True)
            with panels[name]:
                display(fig)

    def on_search(change: dict) -> None:
        hits = set(find_entries(result, change["new"]))
        choice.options = [(label, i) for label, i in options if i in hits] or options

    def on_choice(change: dict) -> None:
        if change["new"] is not None:
            show(int(change["new"]))

    search.observe(on_search, names="value")
    choice.observe(on_choice, names="value")
    show(first)
    box = widgets.VBox(
        [
            widgets.HBox([search, choice]),
            summary,
            widgets.HBox([structure, panels["curves"]]),
            widgets.HBox([panels["barcode"], panels["alpha"], panels["waterfall"]]),
        ]
    )

    def select(entry: int) -> None:
        choice.value = int(entry)

    box.select = select
    box.search, box.choice, box.summary = search, choice, summary
    return box
