"""The `quantdesk` program: with no arguments the window, with a command the command line.

The one module above both faces, so that neither imports the other: the window (quantdesk.ui)
and the command line (quantdesk.cli) each stand on core alone.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv:
        from quantdesk.ui.app import run_gui  # Qt is imported only when the window is wanted

        return run_gui()
    from quantdesk.cli import main as cli_main

    return cli_main(argv)
