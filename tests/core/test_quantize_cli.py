"""`quantdesk quantize` end to end, and the card written beside the output."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from quantdesk.cli import main
from quantdesk.core.model_card import read_card


def test_cli_quantizes_and_writes_a_card(f16_small: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "small-Q5_K_M.gguf"
    assert main(["quantize", str(f16_small), str(out), "--type", "q5_k_m", "--threads", "2"]) == 0
    assert "Q5_K_M" in capsys.readouterr().out
    card = read_card(out)
    assert card is not None
    assert card["level"] == "Q5_K_M"
    assert card["source"] == str(f16_small)
    assert card["source_sha256"] == hashlib.sha256(f16_small.read_bytes()).hexdigest()
    assert card["imatrix"] is None and card["seconds"] > 0
    assert card["output_bytes"] == out.stat().st_size
    assert json.loads((tmp_path / "small-Q5_K_M.gguf.card.json").read_text(encoding="utf-8"))["quantdesk_version"]


def test_cli_errors_are_one_line_and_exit_2(
    f16_small: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "o.gguf"
    out.write_bytes(b"x")
    assert main(["quantize", str(f16_small), str(out), "--type", "Q4_K_M"]) == 2
    assert "already exists" in capsys.readouterr().err
    assert main(["quantize", str(f16_small), str(tmp_path / "p.gguf"), "--type", "Q9_K"]) == 2
    assert "unknown level" in capsys.readouterr().err
    assert (
        main(["quantize", str(f16_small), str(tmp_path / "p.gguf"), "--type", "Q4_K_M", "--tensor-type", "nope"]) == 2
    )
    assert "REGEX=TYPE" in capsys.readouterr().err
    assert not (tmp_path / "p.gguf").exists()
