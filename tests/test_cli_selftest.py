"""`quantdesk selftest` passes on a working install."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from quantdesk.ui.main_window import PAGES

ROOT = Path(__file__).resolve().parents[1]


def test_selftest_passes():
    r = subprocess.run(
        [sys.executable, "-m", "quantdesk", "selftest"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PYTHONPATH": str(ROOT), "QT_QPA_PLATFORM": "offscreen"},
    )
    assert r.returncode == 0, r.stdout + r.stderr
    assert "selftest passed" in r.stderr
    assert "FAIL" not in r.stdout
    assert f"main window built offscreen with {len(PAGES)} pages" in r.stdout
