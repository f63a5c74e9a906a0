"""A plain (not editable) install: the wheel carries the style sheet, icons and texts inside the
package, and a wheel installed into a fresh virtualenv passes `quantdesk selftest`."""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
RESOURCES = ROOT / "quantdesk" / "resources"


@pytest.mark.slow
def test_a_wheel_in_a_fresh_venv_has_its_resources_and_passes_selftest(tmp_path: Path) -> None:
    wheels = tmp_path / "wheels"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation", "-w", wheels, ROOT],
        check=True,
        cwd=tmp_path,
    )
    (wheel,) = wheels.glob("quantdesk-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    shipped = [p.relative_to(ROOT).as_posix() for p in RESOURCES.rglob("*") if p.is_file()]
    assert shipped and not [n for n in shipped if n not in names], "resources missing from the wheel"
    assert any(n.startswith("quantdesk/kquant/_kquant") for n in names), "the native library is missing"

    # A fresh venv with only our wheel in it; its dependencies (llama.cpp, Qt, ...) are borrowed
    # from the test's own environment through a .pth file rather than downloaded.
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", venv], check=True)
    python = venv / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
    site = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    subprocess.run(
        [sys.executable, "-m", "pip", "--python", python, "install", "--quiet", "--no-deps", wheel], check=True
    )
    Path(site, "borrowed_dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n", encoding="utf-8")
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "QUANTDESK_HOME": str(tmp_path / "home")}
    where = subprocess.run(
        [python, "-c", "import quantdesk; print(quantdesk.__file__)"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
        check=True,
    ).stdout.strip()
    assert Path(where).is_relative_to(venv), f"the test ran the checkout, not the wheel: {where}"
    r = subprocess.run(
        [python, "-m", "quantdesk", "selftest"], capture_output=True, text=True, cwd=tmp_path, env=env, timeout=300
    )
    assert r.returncode == 0, r.stdout + r.stderr
