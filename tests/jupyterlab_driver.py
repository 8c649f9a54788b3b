"""Drive a real JupyterLab 4 in headless Chromium (Playwright) for tests/test_jupyterlab.py.

:func:`lab_workspace` copies the tutorials to a scratch folder laid out like a checkout (so
``project_root()`` finds ``notebooks/data`` and ``benchmarks/results``), :class:`LabServer`
runs ``python -m jupyterlab`` on a free local port with throwaway Jupyter config, data,
runtime, settings and workspace folders, and :func:`run_all` opens one notebook, runs all of
its cells through ``window.jupyterapp`` (``--LabApp.expose_app_in_browser``) and returns
what the kernel and the page show. Every wait is bounded; nothing here asserts.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from io import BytesIO
from pathlib import Path
from typing import Any

import numpy as np
from viz.chromium import non_blank_fraction

REPO = Path(__file__).resolve().parents[1]

# Settings written to the throwaway user-settings folder: no news/update prompt, no toasts,
# every cell attached to the DOM (windowing off), no autosave racing the test.
LAB_SETTINGS = {
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {
        "fetchNews": "false",
        "checkForUpdates": False,
        "doNotDisturbMode": True,
    },
    "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {"windowingMode": "none"},
    "@jupyterlab/docmanager-extension/plugin.jupyterlab-settings": {"autosave": False},
}

# Texts that ipywidgets' renderer leaves when a widget view could not be built.
WIDGET_FAILURES = (
    "Error displaying widget",
    "model not found",
    "Loading widget",
    "Failed to load model class",
    "Could not create a view",
)

# ---------------------------------------------------------------------------- workspace


def lab_workspace(dest: Path) -> Path:
    """Copy notebooks/ (without runs/) to ``dest/notebooks``, beside a checkout's markers.

    ``mimoe_core`` is an empty folder: ``project_root()`` only needs it to exist, and it is
    not on the kernel's ``sys.path`` (that starts with ``notebooks/``), so the installed
    package is what the notebooks import.
    """
    dest.mkdir(parents=True, exist_ok=True)
    shutil.copy2(REPO / "pyproject.toml", dest / "pyproject.toml")
    (dest / "mimoe_core").mkdir(exist_ok=True)
    if (REPO / "benchmarks" / "results").is_dir():
        shutil.copytree(REPO / "benchmarks" / "results", dest / "benchmarks" / "results")
    shutil.copytree(
        REPO / "notebooks",
        dest / "notebooks",
        ignore=shutil.ignore_patterns("runs", ".ipynb_checkpoints", "__pycache__"),
    )
    return dest


# ---------------------------------------------------------------------------- server


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class LabServer:
    """``python -m jupyterlab`` in its own process group, rooted at ``root``."""

    root: Path
    scratch: Path
    env: dict[str, str] = field(default_factory=dict)
    token: str = field(default_factory=lambda: secrets.token_hex(16))
    port: int = 0
    proc: subprocess.Popen | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def url(self, path: str) -> str:
        return f"{self.base_url}/{path.lstrip('/')}?token={self.token}&reset"

    @property
    def log_path(self) -> Path:
        return self.scratch / "jupyterlab.log"

    def log_tail(self, chars: int = 3000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return "(no server log)"

    def start(self, timeout: float = 120.0) -> LabServer:
        dirs = {
            name: self.scratch / name
            for name in ("config", "data", "runtime", "settings", "workspaces", "ipython")
        }
        for folder in dirs.values():
            folder.mkdir(parents=True, exist_ok=True)
        for name, values in LAB_SETTINGS.items():
            path = dirs["settings"] / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(values))
        env = {
            **os.environ,
            "JUPYTER_CONFIG_DIR": str(dirs["config"]),
            "JUPYTER_DATA_DIR": str(dirs["data"]),
            "JUPYTER_RUNTIME_DIR": str(dirs["runtime"]),
            "JUPYTERLAB_SETTINGS_DIR": str(dirs["settings"]),
            "JUPYTERLAB_WORKSPACES_DIR": str(dirs["workspaces"]),
            "IPYTHONDIR": str(dirs["ipython"]),
            "JUPYTER_PLATFORM_DIRS": "1",
            "PYDEVD_DISABLE_FILE_VALIDATION": "1",
            **self.env,
        }
        last_error = ""
        for _attempt in range(3):  # a port taken between free_port() and the bind: retry
            self.port = free_port()
            cmd = [
                sys.executable, "-m", "jupyterlab", "--no-browser", "--ip=127.0.0.1",
                f"--port={self.port}", "--ServerApp.port_retries=0",
                f"--IdentityProvider.token={self.token}", f"--ServerApp.root_dir={self.root}",
                "--LabApp.expose_app_in_browser=True", "--LabApp.news_url=None",
                "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
                "--ServerApp.terminals_enabled=False",
            ]  # fmt: skip
            if os.geteuid() == 0:
                cmd.append("--allow-root")
            with open(self.log_path, "ab") as log:
                self.proc = subprocess.Popen(
                    cmd,
                    cwd=self.root,
                    env=env,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline and self.proc.poll() is None:
                try:
                    api = f"{self.base_url}/api/status?token={self.token}"
                    with urllib.request.urlopen(api, timeout=5) as reply:
                        if reply.status == 200:
                            return self
                except (urllib.error.URLError, OSError) as err:
                    last_error = repr(err)
                time.sleep(0.5)
            self.stop()
            if "already in use" not in self.log_tail():
                break
        raise RuntimeError(
            f"JupyterLab did not start ({last_error}); log {self.log_path}:\n{self.log_tail()}"
        )

    def stop(self) -> None:
        """SIGTERM the process group (server and kernels), SIGKILL what is left after 15 s."""
        proc, self.proc = self.proc, None
        if proc is None:
            return
        for sig, wait in ((signal.SIGTERM, 15), (signal.SIGKILL, 10)):
            try:
                os.killpg(proc.pid, sig)
            except ProcessLookupError:
                break
            try:
                proc.wait(timeout=wait)
                # kernels live in the same group and may outlive the server by a moment
                os.killpg(proc.pid, 0)
            except ProcessLookupError:
                break
            except subprocess.TimeoutExpired:
                continue
            time.sleep(1)


# ---------------------------------------------------------------------------- browser

# The notebook panel, its kernel and, per cell, what the model and the prompt say.
STATE_JS = """() => {
  const app = window.jupyterapp;
  const panel = app && app.shell.currentWidget;
  if (!panel || !panel.content || !panel.sessionContext || !panel.context) {
    return {ready: false};
  }
  const session = panel.sessionContext.session;
  const kernel = session && session.kernel;
  const dialog = document.querySelector('.jp-Dialog');
  const cells = panel.content.widgets.map((cell, index) => {
    const model = cell.model;
    const prompt = cell.node.querySelector('.jp-InputPrompt');
    const outputs = model.type === 'code' ? model.outputs.toJSON() : [];
    return {
      index, type: model.type,
      source: model.sharedModel.getSource().slice(0, 2000),
      count: model.type === 'code' ? model.executionCount : null,
      prompt: prompt ? prompt.textContent.trim() : '',
      outputs: outputs.map(o => ({
        output_type: o.output_type, name: o.name || null,
        text: Array.isArray(o.text) ? o.text.join('') : (o.text || ''),
        ename: o.ename || null, evalue: o.evalue || null,
        mimes: Object.keys(o.data || {}),
      })),
    };
  });
  return {
    ready: panel.context.isReady && !!kernel,
    path: panel.context.path,
    kernelName: kernel ? kernel.name : null,
    kernelStatus: kernel ? kernel.status : null,
    connection: kernel ? kernel.connectionStatus : null,
    dialog: dialog ? dialog.innerText.slice(0, 500) : null,
    runAll: window.__mimoeRunAll || null,
    cells,
  };
}"""

# Each run gets its own record, so a stale run (resolved by a kernel restart) marks only its own.
RUN_ALL_JS = """() => {
  const run = {started: Date.now()};
  window.__mimoeRunAll = run;
  window.jupyterapp.commands.execute('notebook:run-all-cells').then(
    ok => { run.done = true; run.ok = ok; },
    err => { run.done = true; run.error = String(err); });
}"""

RESTART_JS = """async () => {
  const panel = window.jupyterapp.shell.currentWidget;
  window.__mimoeRunAll = null;
  await panel.sessionContext.session.kernel.restart();
  await window.jupyterapp.commands.execute('notebook:clear-all-cell-outputs');
}"""

# Save the open notebook with its outputs (autosave is off); whether it is still dirty.
SAVE_JS = """async () => {
  const panel = window.jupyterapp.shell.currentWidget;
  await panel.context.save();
  return panel.context.model.dirty;
}"""

# What the rendered outputs show: error and stderr nodes, widget views, plotly figures and
# the 3D viewers of mimoe_viz.mol3d (and any plain py3Dmol viewer).
DOM_JS = """(failures) => {
  const panel = window.jupyterapp.shell.currentWidget;
  const root = panel.content.node;
  const text = el => (el.innerText || '').trim();  // visible text, no script source
  const cellOf = el => {
    const cell = el.closest('.jp-Cell');
    return cell ? Array.prototype.indexOf.call(root.querySelectorAll('.jp-Cell'), cell) : -1;
  };
  const pick = sel => Array.from(root.querySelectorAll(sel)).map(
    el => ({cell: cellOf(el), text: text(el).slice(0, 1500)}));
  const widgetTexts = [];
  root.querySelectorAll('.jp-OutputArea-output').forEach(el => {
    const t = text(el);
    for (const f of failures) {
      if (t.includes(f)) { widgetTexts.push({cell: cellOf(el), text: t.slice(0, 300)}); break; }
    }
  });
  const plots = Array.from(root.querySelectorAll('.js-plotly-plot')).map(el => ({
    cell: cellOf(el),
    traces: Array.isArray(el.data) ? el.data.length : -1,
    drawn: el.querySelectorAll('.trace, .main-svg').length,
  }));
  const viewers = [];
  root.querySelectorAll('.mimoe-mol3d').forEach(el => viewers.push({
    cell: cellOf(el), id: el.id + '-viewer', status: el.getAttribute('data-status'),
    edges: el.getAttribute('data-edges'),
    canvases: el.querySelectorAll('canvas').length}));
  root.querySelectorAll('div[id^="3dmolviewer_"]').forEach(el => viewers.push({
    cell: cellOf(el), id: el.id, status: el.querySelector('canvas') ? 'ready' : null,
    edges: null, canvases: el.querySelectorAll('canvas').length}));
  return {
    errors: pick('[data-mime-type="application/vnd.jupyter.error"], .jp-mod-error'),
    stderr: pick('.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"]'),
    widgetViews: root.querySelectorAll('.jp-OutputArea-output .widget-box, ' +
      '.jp-OutputArea-output .jupyter-widgets').length,
    widgetTexts, plots, viewers,
  };
}"""


@dataclass
class LabRun:
    """What one notebook showed after "Run All Cells"."""

    state: dict[str, Any]
    dom: dict[str, Any]
    seconds: float
    attempts: int
    note: str = ""

    @property
    def code_cells(self) -> list[dict[str, Any]]:
        return [c for c in self.state["cells"] if c["type"] == "code"]

    def expected(self, mime: str) -> int:
        """How many top-level outputs carry ``mime``."""
        return sum(mime in o["mimes"] for c in self.code_cells for o in c["outputs"])


def _pending(state: dict[str, Any]) -> list[dict[str, Any]]:
    return [c for c in state["cells"] if c["type"] == "code" and c["count"] is None]


def _has_error(state: dict[str, Any]) -> bool:
    return any(o["output_type"] == "error" for c in state["cells"] for o in c["outputs"])


def open_notebook(page: Any, server: LabServer, path: str, timeout: float = 120.0) -> dict:
    """Load ``/lab/tree/<path>`` and wait for its kernel to be idle; the panel state."""
    page.goto(server.url(f"lab/tree/{path}"), wait_until="domcontentloaded", timeout=60_000)
    deadline = time.monotonic() + timeout
    state: dict[str, Any] = {}
    while time.monotonic() < deadline:
        state = page.evaluate(STATE_JS)
        if state.get("dialog"):
            raise RuntimeError(f"JupyterLab opened a dialog: {state['dialog']}")
        if (
            state.get("ready")
            and state.get("path") == path
            and state["kernelStatus"] == "idle"
            and state["connection"] == "connected"
        ):
            return state
        time.sleep(0.5)
    raise TimeoutError(f"{path}: no idle kernel after {timeout:.0f} s: {_brief(state)}")


def _brief(state: dict[str, Any]) -> str:
    keys = ("ready", "path", "kernelName", "kernelStatus", "connection", "dialog", "runAll")
    return json.dumps({k: state.get(k) for k in keys})


def run_all(
    page: Any,
    server: LabServer,
    path: str,
    timeout: float = 300.0,
    stuck_after: float = 60.0,
    render_timeout: float = 60.0,
) -> LabRun:
    """Open ``path``, Run All Cells, wait until done, then until the outputs have rendered.

    Done: the kernel is idle, the run-all command resolved and no prompt shows ``[*]``
    (or a cell raised, which stops the run). A kernel idle for ``stuck_after`` seconds with
    cells still waiting is a lost execute reply (see tests/test_notebooks.py): the kernel
    is restarted and the notebook run once more. Past ``timeout`` it raises TimeoutError.
    """
    start = time.monotonic()
    deadline = start + timeout
    open_notebook(page, server, path, timeout=min(120.0, timeout))
    attempts, note = 1, ""
    page.evaluate(RUN_ALL_JS)
    idle_since: float | None = None
    state: dict[str, Any] = {}
    while True:
        if time.monotonic() > deadline:
            raise TimeoutError(
                f"{path}: not done after {timeout:.0f} s ({attempts} attempt(s)); "
                f"{_brief(state)}; waiting: {[c['index'] for c in _pending(state)]}"
            )
        time.sleep(1.0)
        state = page.evaluate(STATE_JS)
        if state.get("dialog"):
            raise RuntimeError(f"{path}: JupyterLab opened a dialog: {state['dialog']}")
        run = state.get("runAll") or {}
        idle = state.get("kernelStatus") == "idle"
        busy_prompt = any("*" in c["prompt"] for c in state["cells"] if c["type"] == "code")
        if idle and run.get("done") and not busy_prompt:
            break
        if idle and _has_error(state) and not busy_prompt:
            break
        idle_since = (idle_since or time.monotonic()) if idle else None
        if idle_since is not None and time.monotonic() - idle_since > stuck_after:
            if attempts >= 2:
                raise TimeoutError(
                    f"{path}: kernel idle for {stuck_after:.0f} s with cells "
                    f"{[c['index'] for c in _pending(state)]} waiting, twice; {_brief(state)}"
                )
            note = f"attempt 1 stuck (kernel idle, cells {[c['index'] for c in _pending(state)]})"
            page.evaluate(RESTART_JS)
            open_deadline = time.monotonic() + 60
            while time.monotonic() < open_deadline:
                if page.evaluate(STATE_JS).get("kernelStatus") == "idle":
                    break
                time.sleep(0.5)
            attempts += 1
            idle_since = None
            page.evaluate(RUN_ALL_JS)
    seconds = time.monotonic() - start
    # Let the renderers finish: widget views built, plotly drawn, 3D viewers ready.
    render_deadline = time.monotonic() + render_timeout
    while True:
        dom = page.evaluate(DOM_JS, list(WIDGET_FAILURES))
        plotly = LabRun(state, dom, seconds, attempts).expected("application/vnd.plotly.v1+json")
        settled = (
            not dom["widgetTexts"]
            and len(dom["plots"]) >= plotly
            and all(p["traces"] > 0 for p in dom["plots"])
            and all(v["status"] == "ready" and v["canvases"] for v in dom["viewers"])
        )
        if settled or time.monotonic() > render_deadline:
            break
        time.sleep(1.0)
    return LabRun(page.evaluate(STATE_JS), dom, seconds, attempts, note)


def save(page: Any, server: LabServer, path: str) -> Path:
    """Save the open notebook ``path`` with its outputs; the file on disk."""
    if page.evaluate(SAVE_JS):
        raise RuntimeError(f"{path}: still unsaved after JupyterLab's save")
    return server.root / path


# ---------------------------------------------------------------------------- pixels


def decode(png: bytes) -> np.ndarray:
    """PNG bytes as an [H, W, 3] uint8 array."""
    from PIL import Image

    return np.asarray(Image.open(BytesIO(png)).convert("RGB"))


def drawn(image: np.ndarray) -> tuple[int, float]:
    """(distinct colours, share of pixels that are not near white) of an 8-bit RGB image."""
    colours = np.unique(image.reshape(-1, 3), axis=0).shape[0]
    return colours, non_blank_fraction(image / 255.0)


def difference(a: np.ndarray, b: np.ndarray) -> float:
    """Share of pixels that differ between two images of the same size (1.0 if sizes differ)."""
    if a.shape != b.shape:
        return 1.0
    return float((np.abs(a.astype(np.int16) - b.astype(np.int16)).max(axis=-1) > 16).mean())
