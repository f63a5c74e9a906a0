"""Every reproducer the fuzzer (tools/fuzz, `make fuzz`) saved under tests/data/fuzz/ is replayed:
each must now come out "clean" (refused in one line) or "ok". One marked "known" names the owner
who has it and is replayed as an expected failure until fixed (then the mark must go)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_every_saved_reproducer_is_clean_or_ok(starter_model: Path) -> None:
    # A child process: the fuzzer forks a child per case, which is only safe from a process
    # without threads (this test session may have some).
    r = subprocess.run(
        [sys.executable, "-m", "tools.fuzz", "--replay"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-4000:]
    assert "reproducers replayed, 0 failing" in r.stdout


def test_a_short_seeded_pass_runs_every_input_kind(starter_model: Path, tmp_path: Path) -> None:
    """The machinery itself: a few cases of each kind, classified, nothing saved."""
    r = subprocess.run(
        [sys.executable, "-m", "tools.fuzz", "--max-cases", "18", "--seed", "3", "--no-save"]
        + ["--reproducers", str(tmp_path / "none"), "--report", str(tmp_path / "report.json")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    import json

    report = json.loads((tmp_path / "report.json").read_text(encoding="utf-8"))
    assert sum(sum(c.values()) for c in report["cases"].values()) == 18, r.stdout + r.stderr
    assert all(sum(c.values()) == 2 for c in report["cases"].values())
