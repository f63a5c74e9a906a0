"""`quantdesk models`: the Library on the terminal; one line and exit 2 when it cannot be read."""

from __future__ import annotations

from pathlib import Path

import pytest


def test_an_unusable_data_folder_is_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    """A file where the data folder belongs was a FileExistsError traceback."""
    from quantdesk.cli import main

    home = tmp_path / "home"
    home.write_text("not a folder", encoding="utf-8")
    monkeypatch.setenv("QUANTDESK_HOME", str(home))
    assert main(["models"]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.startswith("quantdesk: cannot use the data folder") and err.count("\n") == 1
