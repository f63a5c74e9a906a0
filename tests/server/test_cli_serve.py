"""`quantdesk serve`: the real command in a subprocess, and its refusals in one line."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time

import httpx2 as httpx

from quantdesk.cli import main


def test_serve_preloads_answers_and_stops_on_sigterm(tmp_path):
    env = dict(os.environ, QUANTDESK_HOME=str(tmp_path / "home"), HOME=str(tmp_path), HF_HUB_CACHE=str(tmp_path / "hf"))
    proc = subprocess.Popen(
        [sys.executable, "-m", "quantdesk", "serve", "--port", "0", "--model", "starter"],
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert proc.stderr is not None
        seen = []
        deadline = time.monotonic() + 120
        address = None
        while address is None and time.monotonic() < deadline:
            line = proc.stderr.readline()
            assert line, "serve ended early: " + "".join(seen)
            seen.append(line)
            match = re.search(r"Serving on (http://127\.0\.0\.1:\d+)/v1", line)
            address = match.group(1) if match else None
        assert address, "".join(seen)
        assert any("loaded starter" in line for line in seen)  # --model loads before it listens
        models = httpx.get(address + "/v1/models").json()["data"]
        assert [(m["id"], m["loaded"]) for m in models] == [("starter", True)]
        proc.send_signal(signal.SIGTERM)
        _out, rest = proc.communicate(timeout=30)
        assert proc.returncode == 0
        assert "GET /v1/models 200" in rest and "Stopped." in rest
        assert "Traceback" not in rest
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_serve_refuses_the_network_without_a_key_and_unknown_models(capsys, monkeypatch):
    monkeypatch.delenv("QUANTDESK_API_KEY", raising=False)
    assert main(["serve", "--host", "0.0.0.0"]) == 2
    assert "API key" in capsys.readouterr().err
    assert main(["serve", "--model", "no-such-model"]) == 2
    assert "no model 'no-such-model'" in capsys.readouterr().err
