"""The one error a conversion raises for anything the user can fix: its message is one line."""

from __future__ import annotations

from quantdesk.core.errors import QuantdeskError


class ConvertError(QuantdeskError):
    """A checkpoint cannot be converted; the message says why, in one line, for the CLI and the UI."""
