"""App settings kept as one small JSON file in the data folder.

JSON rather than QSettings so the CLI and tests read the same values as the UI without Qt.
Writes go to a temporary file and are renamed, so a crash never leaves a half-written file.
"""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from app.core import paths, renames


def load(path: Path | None = None) -> dict[str, Any]:
    path = path or paths.settings_file()
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def save(values: dict[str, Any], path: Path | None = None) -> None:
    path = path or paths.settings_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".settings-", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(values, f, indent=2, sort_keys=True)
            f.flush()
            os.fsync(f.fileno())
        renames.replace(tmp, path)  # retried on Windows while another process reads the file
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def get(key: str, default: Any = None) -> Any:
    return load().get(key, default)


def set_value(key: str, value: Any) -> None:
    values = load()
    values[key] = value
    save(values)
