"""Headless Chromium for browser checks: screenshots and the DOM after scripts ran.

Debian's ``chromium`` package (``make browser`` installs it). Without it the browser tests
skip, except under CI, where a missing browser is a failure.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import pytest

# Offline: no background requests (they are refused here and slow the start down).
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
    "--no-first-run",
    "--hide-scrollbars",
)


def chromium_or_skip() -> str:
    """The chromium executable; skip the test when absent (fail under CI)."""
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is not installed (make browser installs it)")
        pytest.skip("chromium is not installed (make browser installs it)")
    return path


def _run(args: list[str], timeout: float = 120.0) -> subprocess.CompletedProcess:
    with tempfile.TemporaryDirectory() as profile:
        cmd = [chromium_or_skip(), *FLAGS, f"--user-data-dir={profile}", *args]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)


def screenshot(page: Path, png: Path, width: int = 1200, height: int = 900) -> np.ndarray:
    """Render ``page`` and return the screenshot as an [H, W, C] float array in [0, 1]."""
    from matplotlib.image import imread

    proc = _run([f"--window-size={width},{height}", "--virtual-time-budget=15000",
                 f"--screenshot={png}", page.resolve().as_uri()])  # fmt: skip
    assert png.is_file(), f"no screenshot written: {proc.stderr[-2000:]}"
    return imread(png)


def dump_dom(page: Path) -> str:
    """The DOM of ``page`` after its scripts ran (``--dump-dom``)."""
    proc = _run(["--virtual-time-budget=15000", "--dump-dom", page.resolve().as_uri()])
    assert proc.stdout, f"chromium printed no DOM: {proc.stderr[-2000:]}"
    return proc.stdout


def non_blank_fraction(image: np.ndarray, box: tuple[int, int, int, int] | None = None) -> float:
    """Share of pixels that are not (near) white in ``box`` = (top, left, bottom, right)."""
    rgb = image[..., :3]
    if box is not None:
        top, left, bottom, right = box
        rgb = rgb[top:bottom, left:right]
    return float((rgb.min(axis=-1) < 0.92).mean())
