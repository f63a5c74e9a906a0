"""`quantdesk info`: facts about a good file; one line and exit 2 for anything broken."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def quantdesk(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "quantdesk", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )


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


@pytest.mark.parametrize(
    "case", ["truncated.gguf", "header-only.gguf", "wrong-magic.gguf", "empty.gguf", "folder", "missing"]
)
def test_info_on_broken_files_is_one_line(tmp_path, starter_model, case, capsys):
    from quantdesk.cli import main

    path = _broken_files(tmp_path, starter_model)[case]
    assert main(["info", str(path)]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("quantdesk: "), err
    assert "Traceback" not in err


def test_metadata_values_of_the_wrong_type_read_as_unknown(tmp_path, capsys):
    """A string or an array where the context length belongs was a ValueError / TypeError traceback."""
    import gguf
    import numpy as np

    from quantdesk.cli import main

    for name, add in (
        ("str", lambda w: w.add_string("llama.context_length", "lots")),
        ("array", lambda w: w.add_array("llama.context_length", [1, 2])),
    ):
        path = tmp_path / f"{name}.gguf"
        w = gguf.GGUFWriter(str(path), arch="llama")
        add(w)
        w.add_string("llama.block_count", "x")
        w.add_tensor("a.weight", np.ones((4, 32), dtype=np.float32))
        w.write_header_to_file()
        w.write_kv_data_to_file()
        w.write_tensors_to_file()
        w.close()
        assert main(["info", str(path)]) == 0
        out, err = capsys.readouterr()
        assert "Context length: unknown" in out and err == ""
        assert main(["info", "--json", str(path)]) == 0
        assert '"context_length": null' in capsys.readouterr().out


def test_escape_sequences_in_metadata_are_shown_escaped(tmp_path, capsys):
    """A hostile name could clear the terminal or retitle the window when printed raw."""
    import gguf
    import numpy as np

    from quantdesk.cli import main

    path = tmp_path / "ansi.gguf"
    w = gguf.GGUFWriter(str(path), arch="llama")
    w.add_name("evil\x1b]0;pwned\x07\x1b[2J\nname")
    w.add_tensor("a.weight", np.ones((4, 32), dtype=np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    assert main(["info", str(path)]) == 0
    out = capsys.readouterr().out
    assert "\x1b" not in out and "Name:           evil\\x1b]0;pwned\\x07\\x1b[2J\\nname\n" in out


@pytest.mark.skipif(sys.platform == "win32", reason="a POSIX pipe whose reader has gone")
def test_a_closed_pipe_is_not_a_traceback(starter_model):
    """`quantdesk info FILE | head -1`: the reader leaves early; was a BrokenPipeError traceback."""
    p = subprocess.Popen(
        [sys.executable, "-m", "quantdesk", "info", str(starter_model)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert p.stdout is not None and p.stderr is not None
    p.stdout.close()  # before the program writes a line
    err = p.stderr.read().decode()
    p.stderr.close()
    assert p.wait(timeout=60) == 141 and err == ""


@pytest.mark.parametrize(
    "kind, shown",
    [("array", "unknown ([1, 2])"), ("inf", "unknown (inf)"), ("nan", "unknown (nan)"), ("bool", "unknown (True)")],
)
def test_a_file_type_that_is_not_a_number_reads_as_unknown(tmp_path, capsys, kind, shown):
    """general.file_type as an array was a TypeError traceback, as inf an OverflowError."""
    import gguf
    import numpy as np

    from quantdesk.cli import main

    path = tmp_path / f"{kind}.gguf"
    w = gguf.GGUFWriter(str(path), arch="llama")
    if kind == "array":
        w.add_array("general.file_type", [1, 2])
    elif kind == "bool":
        w.add_bool("general.file_type", True)
    else:
        w.add_float32("general.file_type", float(kind))
    w.add_tensor("a.weight", np.ones((4, 32), dtype=np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    assert main(["info", str(path)]) == 0
    out, err = capsys.readouterr()
    assert f"File type:      {shown}\n" in out and err == ""
