"""The app's look: one accent colour, light and dark tones, the style sheet and the icons.

The style sheet (resources/style.qss) is one template with ${token} placeholders, so the light
and dark looks cannot drift apart. The mode follows the system's colour scheme unless the user
picked one in Settings ("theme": "system" | "light" | "dark") or QUANTDESK_THEME is set (which
is how screenshots of both looks are taken on a headless machine).

Icons are line drawings in resources/icons/ drawn with `currentColor`; `icon(name)` paints them
in the current text colour so they fit both looks.
"""

from __future__ import annotations

import os
import tempfile
from functools import cache
from pathlib import Path
from string import Template
from typing import TYPE_CHECKING

from PySide6.QtCore import QByteArray, QObject, QRectF, QSize, Qt, Signal
from PySide6.QtGui import QColor, QGuiApplication, QIcon, QPainter, QPalette, QPixmap
from PySide6.QtSvg import QSvgRenderer

from quantdesk.core import settings
from quantdesk.core.fit import Verdict
from quantdesk.core.resources import read_resource_text

if TYPE_CHECKING:
    from PySide6.QtWidgets import QApplication

LIGHT = {
    "window": "#f7f7f8",
    "surface": "#ffffff",
    "sidebar": "#efeff2",
    "border": "#dedee3",
    "hover": "#e6e6eb",
    "selected": "#dfe6fd",
    "input": "#ffffff",
    "text": "#1c1c21",
    "muted": "#6b6b76",
    "scroll": "#c8c8cf",
    "accent": "#3b6ef5",
    "accent_hover": "#2f5fe0",
    "accent_strong": "#2452cc",
    "accent_text": "#ffffff",
    "user_bubble": "#e8eefe",
    "code_bg": "#f1f1f4",
    "error": "#c62828",
    "error_bg": "#fdecec",
    "warning": "#a15c00",
    "ok": "#1e7d32",
}

DARK = {
    "window": "#1d1d21",
    "surface": "#26262b",
    "sidebar": "#18181c",
    "border": "#35353c",
    "hover": "#2e2e34",
    "selected": "#2c3656",
    "input": "#26262b",
    "text": "#ececf1",
    "muted": "#9c9ca8",
    "scroll": "#45454d",
    "accent": "#6f8fff",
    "accent_hover": "#819dff",
    "accent_strong": "#a9bcff",
    "accent_text": "#0f1220",
    "user_bubble": "#2a3149",
    "code_bg": "#2b2b31",
    "error": "#ef6b6b",
    "error_bg": "#3a2224",
    "warning": "#e0a040",
    "ok": "#6cc57a",
}

_current: dict[str, str] = LIGHT


def wants_dark() -> bool:
    """Dark if the user (or QUANTDESK_THEME) says so, else whatever the system scheme is."""
    choice = os.environ.get("QUANTDESK_THEME") or settings.get("theme", "system")
    if choice in ("light", "dark"):
        return choice == "dark"
    app = QGuiApplication.instance()
    if app is None:
        return False
    scheme = QGuiApplication.styleHints().colorScheme()
    if scheme == Qt.ColorScheme.Dark:
        return True
    if scheme == Qt.ColorScheme.Light:
        return False
    # Unknown scheme (e.g. a bare X server): judge by the platform palette's window colour.
    return QGuiApplication.palette().color(QPalette.ColorRole.Window).lightness() < 128


def colors() -> dict[str, str]:
    """The tones in use now; widgets that paint themselves read from here."""
    return _current


def color(name: str) -> QColor:
    return QColor(_current[name])


def is_dark() -> bool:
    return _current is DARK


def _palette(c: dict[str, str]) -> QPalette:
    p = QPalette()
    roles = {
        QPalette.ColorRole.Window: c["window"],
        QPalette.ColorRole.WindowText: c["text"],
        QPalette.ColorRole.Base: c["input"],
        QPalette.ColorRole.AlternateBase: c["sidebar"],
        QPalette.ColorRole.Text: c["text"],
        QPalette.ColorRole.Button: c["surface"],
        QPalette.ColorRole.ButtonText: c["text"],
        QPalette.ColorRole.Highlight: c["accent"],
        QPalette.ColorRole.HighlightedText: c["accent_text"],
        QPalette.ColorRole.ToolTipBase: c["surface"],
        QPalette.ColorRole.ToolTipText: c["text"],
        QPalette.ColorRole.PlaceholderText: c["muted"],
        QPalette.ColorRole.Link: c["accent"],
        QPalette.ColorRole.Mid: c["border"],
    }
    for role, value in roles.items():
        p.setColor(role, QColor(value))
    for role in (QPalette.ColorRole.Text, QPalette.ColorRole.WindowText, QPalette.ColorRole.ButtonText):
        p.setColor(QPalette.ColorGroup.Disabled, role, QColor(c["muted"]))
    return p


# Images the style sheet shows: (icon, palette tone, the ${token} the style sheet names it by).
_SHEET_IMAGES = (
    ("chevron-up", "muted", "arrow_up"),
    ("chevron-down", "muted", "arrow_down"),
    ("check", "accent_text", "check"),
)


def _image_files(c: dict[str, str]) -> dict[str, str]:
    """Style sheets can only show image files, so their icons are written once per tone to a temp folder."""
    folder = Path(tempfile.gettempdir()) / "quantdesk-icons"
    folder.mkdir(exist_ok=True)
    out = {}
    for name, tone, token in _SHEET_IMAGES:
        path = folder / f"{name}-{c[tone].lstrip('#')}.svg"
        if not path.exists():
            tmp = path.with_suffix(f".{os.getpid()}.tmp")
            tmp.write_text(_svg_source(name).replace("currentColor", c[tone]), encoding="utf-8")
            os.replace(tmp, path)
        out[token] = path.as_posix()
    return out


def style_sheet(c: dict[str, str]) -> str:
    template = read_resource_text("style.qss")
    return Template(template).safe_substitute({**c, **_image_files(c)})


class _Notifier(QObject):
    changed = Signal()  # the look switched between light and dark: repaint icons and custom colours


_notifier: _Notifier | None = None


def notifier() -> _Notifier:
    global _notifier
    if _notifier is None:
        _notifier = _Notifier()
    return _notifier


def apply(app: QApplication) -> None:  # a QApplication: style sheets are a widgets thing
    """Choose light or dark and apply palette + style sheet; call again when the scheme changes."""
    global _current
    new = DARK if wants_dark() else LIGHT
    changed = new is not _current
    _current = new
    app.setPalette(_palette(_current))
    app.setStyleSheet(style_sheet(_current))
    _icon_cache.clear()
    if changed:
        notifier().changed.emit()


_icon_cache: dict[tuple[str, str, int], QIcon] = {}


@cache
def _svg_source(name: str) -> str:
    return read_resource_text("icons", f"{name}.svg")


def icon(name: str, tone: str = "text", size: int = 20) -> QIcon:
    """resources/icons/<name>.svg painted in the theme colour `tone` (a key of the palette)."""
    key = (name, _current[tone], size)
    cached = _icon_cache.get(key)
    if cached is not None:
        return cached
    svg = _svg_source(name).replace("currentColor", _current[tone])
    renderer = QSvgRenderer(QByteArray(svg.encode("utf-8")))
    result = QIcon()
    for scale in (1, 2):
        pix = QPixmap(QSize(size * scale, size * scale))
        pix.fill(Qt.GlobalColor.transparent)
        painter = QPainter(pix)
        renderer.render(painter, QRectF(0, 0, size * scale, size * scale))
        painter.end()
        pix.setDevicePixelRatio(scale)
        result.addPixmap(pix)
    _icon_cache[key] = result
    return result


# The palette tone each fit verdict is shown in, on every page (quantdesk.core.fit).
VERDICT_TONE = {Verdict.FITS: "ok", Verdict.TIGHT: "warning", Verdict.WONT_FIT: "error"}
