"""`quantdesk info`: facts about a good file; one line and exit 2 for anything broken."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def quantdesk(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "app", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=120, env={**os.environ, "PYTHONPATH": str(ROOT)})


def test_info_on_the_starter_model(starter_model):
    r = quantdesk("info", str(starter_model))
    assert r.returncode == 0, r.stderr
    out = r.stdout
    assert "Architecture:   llama" in out
    assert "File type:      Q4_1" in out
    assert "Chat template:  yes" in out
    assert "Context length: 8192" in out
    assert "Q4_1" in out and "Q8_0" in out  # tensor-type histogram
    assert "MB" in out and "Parameters:" in out


def _broken_files(tmp_path: Path, starter_model: Path) -> dict[str, Path]:
    data = starter_model.read_bytes()
    files = {}
    for name, content in {
        "truncated.gguf": data[: len(data) // 2],
        "header-only.gguf": data[:20],
        "wrong-magic.gguf": b"GGML" + data[4:4096],
        "empty.gguf": b"",
    }.items():
        path = tmp_path / name
        path.write_bytes(content)
        files[name] = path
    folder = tmp_path / "a-folder.gguf"
    folder.mkdir()
    files["folder"] = folder
    files["missing"] = tmp_path / "missing.gguf"
    return files


@pytest.mark.parametrize("case", ["truncated.gguf", "header-only.gguf", "wrong-magic.gguf", "empty.gguf", "folder",
                                  "missing"])
def test_info_on_broken_files_is_one_line(tmp_path, starter_model, case, capsys):
    from app.cli import main

    path = _broken_files(tmp_path, starter_model)[case]
    assert main(["info", str(path)]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("quantdesk: "), err
    assert "Traceback" not in err
