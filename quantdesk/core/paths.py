"""Where the app keeps its files.

Everything lives under one data folder (the platform's, via platformdirs) so that a user can
find, back up or delete it in one place. QUANTDESK_HOME overrides it, which is how tests keep
their files away from the user's.
"""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs

APP_NAME = "Quantdesk"


def data_dir() -> Path:
    """The app's data folder, created on first use."""
    override = os.environ.get("QUANTDESK_HOME")
    path = Path(override) if override else Path(platformdirs.user_data_dir(APP_NAME, APP_NAME))
    path.mkdir(parents=True, exist_ok=True)
    return path


def models_dir() -> Path:
    """Models the app downloads or produces, unless the user picks another folder."""
    path = data_dir() / "models"
    path.mkdir(parents=True, exist_ok=True)
    return path


def log_dir() -> Path:
    path = data_dir() / "logs"
    path.mkdir(parents=True, exist_ok=True)
    return path


def log_file() -> Path:
    return log_dir() / "quantdesk.log"


def settings_file() -> Path:
    return data_dir() / "settings.json"
