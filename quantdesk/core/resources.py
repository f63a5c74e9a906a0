"""The files Quantdesk ships with (style sheet, icons, the Lab's texts), read from the package.

They live in quantdesk/resources/ and travel inside the wheel and the bundles as package data, so
an installed copy, an editable checkout and a PyInstaller bundle all find them the same way:
through importlib.resources, never by walking up from a source file.
"""

from __future__ import annotations

import sys
from importlib.resources import files

# importlib.resources.abc is new in 3.11; on 3.10 the same protocol lives in importlib.abc.
if sys.version_info >= (3, 11):
    from importlib.resources.abc import Traversable
else:
    from importlib.abc import Traversable


def resource(*parts: str) -> Traversable:
    """quantdesk/resources/<parts...>, e.g. resource("icons", "chat.svg")."""
    return files("quantdesk").joinpath("resources", *parts)


def read_resource_text(*parts: str) -> str:
    """The text of a shipped file (UTF-8). FileNotFoundError names it when an install lacks it."""
    return resource(*parts).read_text(encoding="utf-8")
