"""Every tutorial runs in a real JupyterLab 4, in headless Chromium driven by Playwright.

One JupyterLab server for the module (a scratch copy of notebooks/, smoke mode, throwaway
Jupyter folders), one test per notebook: open it, Run All Cells, then check that every code
cell ran without an error, that widgets, plotly figures and the 3D viewers rendered, and in
notebook 01 that the filtration explorer's slider updates its text and its 3D view. Then the
notebook is saved with its outputs and exported to HTML without running it again, and the page
must render in the same browser with the network off (tests/exported_page.py). A
failure message names a screenshot of the page, the page's console errors and the server log.
Chromium is Debian's (no ``playwright install``); without it, or without playwright, the
tests skip, except under CI, where they fail.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from exported_page import browser_render_problems, export_html
from jupyterlab_driver import (
    REPO,
    LabRun,
    LabServer,
    decode,
    difference,
    drawn,
    lab_workspace,
    run_all,
    save,
)
from viz.chromium import FLAGS, chromium_or_skip

NOTEBOOKS = sorted(p.name for p in (REPO / "notebooks").glob("0*.ipynb"))
NOTEBOOK_TIMEOUT_S = 300
# The offline flags of tests/viz/chromium.py; Playwright adds the headless switch itself.
BROWSER_ARGS = [flag for flag in FLAGS if flag != "--headless"]
# stderr that is only warnings (warnings.warn's "file:line: XWarning: ..." plus its source
# line) is allowed; anything else on stderr is a failure.
WARNING_LINE = re.compile(r"\b\w*Warning\b|^\s*warnings\.warn\(|^\s*$")

pytestmark = [pytest.mark.browser, pytest.mark.notebook]


def _missing(what: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"{what} is not installed")
    pytest.skip(f"{what} is not installed")


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabServer]:
    scratch = tmp_path_factory.mktemp("jupyterlab")
    root = lab_workspace(scratch / "lab")
    env = {
        "SMOKE_TEST": "1",
        "OMP_NUM_THREADS": "1",
        "MIMOE_CACHE_DIR": str(scratch / "cache"),
        "MIMOE_RUNS_DIR": str(scratch / "runs"),
    }
    server = LabServer(root=root, scratch=scratch, env=env)
    try:
        yield server.start()
    finally:
        server.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    path = chromium_or_skip()
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _missing('playwright (pip install -e ".[test]")')
    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=path, args=BROWSER_ARGS, timeout=120_000)
        try:
            yield chromium
        finally:
            chromium.close()


class Page:
    """A fresh browser page that records console errors and writes failure screenshots."""

    def __init__(self, browser: Any, lab: LabServer, tmp_path: Path, name: str) -> None:
        self.context = browser.new_context(viewport={"width": 1400, "height": 1000})
        self.context.set_default_timeout(60_000)
        self.page = self.context.new_page()
        self.lab, self.tmp_path, self.name = lab, tmp_path, name
        self.console: list[str] = []
        self.page.on(
            "console",
            lambda m: (
                self.console.append(f"console.{m.type}: {m.text}") if m.type == "error" else None
            ),
        )
        self.page.on("pageerror", lambda err: self.console.append(f"page error: {err}"))

    def fail(self, message: str, cell: int | None = None) -> None:
        """Fail with a screenshot of the page, scrolled to notebook cell ``cell`` if given."""
        shot = self.tmp_path / f"{self.name}-failure.png"
        try:
            if cell is not None and cell >= 0:
                target = self.page.locator(".jp-Notebook .jp-Cell").nth(cell)
                target.scroll_into_view_if_needed(timeout=10_000)
            self.page.screenshot(path=str(shot), timeout=30_000)
        except Exception as err:  # noqa: BLE001 - the message matters more than the picture
            shot = Path(f"(no screenshot: {err})")
        console = "\n".join(self.console[-30:]) or "(none)"
        pytest.fail(
            f"{self.name}: {message}\nscreenshot: {shot}\nconsole errors:\n{console}\n"
            f"server log ({self.lab.log_path}), tail:\n{self.lab.log_tail(2000)}",
            pytrace=False,
        )

    def check(self, ok: bool, message: str, cell: int | None = None) -> None:
        if not ok:
            self.fail(message, cell)


@pytest.fixture
def page(browser: Any, lab: LabServer, tmp_path: Path, request: pytest.FixtureRequest):
    callspec = getattr(request.node, "callspec", None)
    page = Page(browser, lab, tmp_path, callspec.id if callspec else request.node.name)
    try:
        yield page
    finally:
        page.context.close()


def _cell(found: list[dict[str, Any]]) -> int | None:
    return found[0]["cell"] if found else None


def _not_warnings(text: str) -> bool:
    return not all(WARNING_LINE.search(line) for line in text.splitlines())


def check_outputs(p: Page, run: LabRun) -> None:
    """Every code cell ran, nothing raised, widgets, plotly and 3D viewers rendered."""
    cells = run.code_cells
    summary = f"({run.seconds:.0f} s, {run.attempts} attempt(s) {run.note})"
    errors = [
        f"cell {c['index']} ({c['source'][:60]!r}): {o['ename']}: {o['evalue']}"
        for c in cells
        for o in c["outputs"]
        if o["output_type"] == "error"
    ]
    first = [c["index"] for c in cells if any(o["output_type"] == "error" for o in c["outputs"])]
    p.check(not errors, f"cells raised {summary}:\n" + "\n".join(errors), (first or [None])[0])
    unrun = [c for c in cells if not c["count"]]
    p.check(
        not unrun,
        f"code cells without an execution count {summary}: "
        + "; ".join(f"{c['index']} {c['prompt']!r} {c['source'][:50]!r}" for c in unrun),
        unrun[0]["index"] if unrun else None,
    )
    p.check(run.state["kernelName"] == "python3", f"kernel {run.state['kernelName']}")
    dom = run.dom
    p.check(not dom["errors"], f"error outputs on the page: {dom['errors']}", _cell(dom["errors"]))
    stderr = [o["text"] for c in cells for o in c["outputs"] if o["name"] == "stderr"]
    stderr += [s["text"] for s in dom["stderr"]]
    bad = [s[:500] for s in stderr if _not_warnings(s)]
    p.check(not bad, f"stderr that is not just warnings: {bad}")
    p.check(
        not dom["widgetTexts"],
        f"widgets that did not render: {dom['widgetTexts']}",
        _cell(dom["widgetTexts"]),
    )
    widgets = run.expected("application/vnd.jupyter.widget-view+json")
    p.check(dom["widgetViews"] >= widgets, f"{widgets} widget outputs, views: {dom['widgetViews']}")
    plotly = run.expected("application/vnd.plotly.v1+json")
    p.check(
        len(dom["plots"]) >= plotly,
        f"{plotly} plotly outputs but {len(dom['plots'])} figures drawn: {dom['plots']}",
    )
    empty = [f for f in dom["plots"] if f["traces"] <= 0 or not f["drawn"]]
    p.check(not empty, f"plotly figures without traces: {empty}", _cell(empty))
    viewers = sum(("show_molecule(" in c["source"]) + ("explore(" in c["source"]) for c in cells)
    p.check(len(dom["viewers"]) >= viewers, f"{viewers} 3D viewers expected: {dom['viewers']}")
    for viewer in dom["viewers"]:
        ready = viewer["status"] == "ready" and viewer["canvases"]
        p.check(ready, f"3D viewer not ready: {viewer}", viewer["cell"])
        image = decode(p.page.locator(f"[id='{viewer['id']}']").screenshot(timeout=30_000))
        colours, ink = drawn(image)
        p.check(
            colours > 8 and ink > 0.005,
            f"3D viewer {viewer} looks blank: {colours=} {ink=}",
            viewer["cell"],
        )


def check_explorer(p: Page, run: LabRun) -> None:
    """Notebook 01's explore(result): the radius slider updates the summary and the 3D view."""
    index = next(c["index"] for c in run.code_cells if "explore(result)" in c["source"])
    cell = p.page.locator(".jp-Notebook .jp-Cell").nth(index)
    summary = cell.locator(".widget-html-content", has_text=re.compile(r"edges? · β"))
    handle = cell.locator(".widget-slider .noUi-handle, .widget-hslider .noUi-handle").first
    viewer = cell.locator(".mimoe-mol3d").first
    p.check(summary.count() == 1, f"explorer summary: {summary.count()} matches", index)
    p.check(handle.count() == 1, "the explorer has no slider handle", index)
    viewer_id = viewer.get_attribute("id")
    shot = cell.locator(f"[id='{viewer_id}-viewer']")
    before_text, before_edges = summary.inner_text(), viewer.get_attribute("data-edges")
    before = decode(shot.screenshot(timeout=30_000))
    handle.focus()
    for _ in range(12):  # grid steps of 0.1 Å: from 4.0 Å down to 2.8 Å
        handle.press("ArrowLeft")
    try:
        p.page.wait_for_function(
            """([sel, id, text, edges]) => {
                const s = document.querySelectorAll(sel);
                const v = document.getElementById(id);
                return Array.from(s).some(e => /edges? · β/.test(e.innerText)
                       && e.innerText !== text) && v.getAttribute('data-edges') !== edges;
            }""",
            arg=[".widget-html-content", viewer_id, before_text, before_edges],
            timeout=60_000,
        )
    except Exception as err:  # noqa: BLE001 - reported with the screenshot below
        p.fail(f"moving the slider changed nothing ({before_text!r}): {err}", index)
    p.page.wait_for_timeout(1500)  # the kernel may still be answering the last key presses
    after_text = summary.inner_text()
    after = decode(shot.screenshot(timeout=30_000))
    edges = [re.search(r"(\d+) edges?", t) for t in (before_text, after_text)]
    p.check(all(edges) and edges[0][1] != edges[1][1], f"{before_text!r} -> {after_text!r}", index)
    changed = difference(before, after)
    p.check(changed > 0.001, f"the 3D view did not change ({changed:.4%} of pixels)", index)
    print(f"explorer: {before_text!r} -> {after_text!r}, {changed:.2%} of the view changed")


def check_export(p: Page, browser: Any, lab: LabServer, name: str) -> None:
    """The notebook as JupyterLab ran it, saved and exported to HTML, renders offline."""
    saved = save(p.page, lab, f"notebooks/{name}")
    html = export_html(saved, p.tmp_path)
    source = (REPO / "notebooks" / name).read_text()
    problems = browser_render_problems(browser, html, source, html.with_suffix(".png"))
    p.check(not problems, f"the HTML export of the run notebook ({html}): {problems}")


@pytest.mark.parametrize("name", NOTEBOOKS, ids=[n.split(".")[0] for n in NOTEBOOKS])
def test_runs_in_jupyterlab(page: Page, browser: Any, lab: LabServer, name: str) -> None:
    try:
        run = run_all(page.page, lab, f"notebooks/{name}", timeout=NOTEBOOK_TIMEOUT_S)
    except Exception as err:  # noqa: BLE001 - timeouts and dialogs, with a screenshot
        page.fail(f"{type(err).__name__}: {err}")
    (page.tmp_path / "run.json").write_text(json.dumps(vars(run), indent=1, default=str))
    print(f"{name}: ran in {run.seconds:.0f} s, {run.attempts} attempt(s) {run.note}")
    check_outputs(page, run)
    check_export(page, browser, lab, name)
    if name.startswith("01_"):
        check_explorer(page, run)
