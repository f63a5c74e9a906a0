"""`quantdesk chat`: the reply alone on stdout, statistics on stderr, one-line errors."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def quantdesk(*args: str, stdin: str = "") -> subprocess.CompletedProcess:
    # UTF-8 both ways: a reply may hold any character, and Windows would use cp1252 for the pipe
    return subprocess.run(
        [sys.executable, "-m", "quantdesk", *args],
        cwd=ROOT,
        capture_output=True,
        encoding="utf-8",
        input=stdin,
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(ROOT), "PYTHONIOENCODING": "utf-8"},
    )


def test_prompt_prints_the_greedy_reply_alone(starter_model):
    from quantdesk.core.chat.engine import ChatEngine, ChatSettings

    r = quantdesk(
        "chat",
        str(starter_model),
        "--prompt",
        "What is 2+2?",
        "--temp",
        "0",
        "--seed",
        "1",
        "--max-tokens",
        "12",
        "--threads",
        "1",
        "--ctx",
        "512",
    )
    assert r.returncode == 0, r.stderr
    engine = ChatEngine()
    settings = ChatSettings(temperature=0.0, seed=1, max_tokens=12, threads=1, context_length=512)
    engine.load(starter_model, settings)
    try:
        expected = engine.generate([{"role": "user", "content": "What is 2+2?"}], settings).text
    finally:
        engine.unload()
    assert r.stdout == expected + "\n"
    assert "tok/s" in r.stderr and "to first token" in r.stderr


def test_interactive_session_keeps_history_until_reset(monkeypatch, capsys):
    import io

    from quantdesk.cli import main

    monkeypatch.setattr("sys.stdin", io.StringIO("Hi\n/reset\nBye\n/exit\n"))
    assert main(["chat", "starter", "--temp", "0", "--max-tokens", "4", "--threads", "1", "--ctx", "512"]) == 0
    out, err = capsys.readouterr()
    assert err.count("tok/s") == 2 and "(new conversation)" in err
    assert out.strip()


def test_bad_model_is_one_line(tmp_path):
    bad = tmp_path / "x.gguf"
    bad.write_text("hello", encoding="utf-8")
    r = quantdesk("chat", str(bad), "--prompt", "hi")
    assert r.returncode == 2 and r.stdout == ""
    assert r.stderr.strip().splitlines() == ["quantdesk: x.gguf: not a GGUF file (wrong magic bytes)"]
