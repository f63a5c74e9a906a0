"""Screenshots of every page, light and dark, at 1100x700 and 1600x1000: what a person sees.

    xvfb-run -a -s "-screen 0 1920x1200x24" .venv/bin/python tools/screenshots.py OUT_DIR

Runs the real window on the real platform plugin (xcb under Xvfb), with a private data folder
(QUANTDESK_HOME) so the user's own chats and settings are neither shown nor touched; the starter
model is in the Library as on a first start. One PNG per page, theme and size.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

SIZES = [(1100, 700), (1600, 1000)]


def main(argv: list[str]) -> int:
    out = Path(argv[0] if argv else "screenshots")
    out.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("QUANTDESK_HOME", tempfile.mkdtemp(prefix="quantdesk-shots-"))
    from PySide6.QtWidgets import QApplication

    from quantdesk.ui import theme
    from quantdesk.ui.app import make_application
    from quantdesk.ui.main_window import PAGES, MainWindow

    for look in ("light", "dark"):
        os.environ["QUANTDESK_THEME"] = look
        app = make_application([])
        theme.apply(app)
        window = MainWindow()
        window.show()
        for width, height in SIZES:
            window.resize(width, height)
            for key, *_ in PAGES:
                window.switch_to(key)
                deadline = time.monotonic() + 2.5  # let jobs (listing, model load) settle and paint
                while time.monotonic() < deadline:
                    QApplication.processEvents()
                    time.sleep(0.02)
                path = out / f"{key}-{look}-{width}x{height}.png"
                window.grab().save(str(path))
                print(path)
        window.close()
        window.deleteLater()
        QApplication.processEvents()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
