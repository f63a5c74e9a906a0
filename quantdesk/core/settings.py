"""App settings kept as one small JSON file in the data folder.

JSON rather than QSettings so the CLI and tests read the same values as the UI without Qt.
Writes go to a temporary file and are renamed, so a crash never leaves a half-written file.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from quantdesk.core import paths, renames


def load(path: Path | None = None) -> dict[str, Any]:
    path = path or paths.settings_file()
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def save(values: dict[str, Any], path: Path | None = None) -> None:
    renames.write_text(path or paths.settings_file(), json.dumps(values, indent=2, sort_keys=True))


def get(key: str, default: Any = None) -> Any:
    return load().get(key, default)


def set_value(key: str, value: Any) -> None:
    values = load()
    values[key] = value
    save(values)
