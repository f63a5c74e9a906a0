"""Render packaging/icons/quantdesk.svg into the icon files each platform wants.

Writes into build/icons/: quantdesk-<N>.png (Linux hicolor sizes), quantdesk.ico (Windows exe and
installer) and quantdesk.icns (macOS .app). Qt (already a dependency) renders the SVG; the ICO and
ICNS containers are written here because both are just a table of PNG images, which spares the
build an image library. Usage: python packaging/make_icons.py [OUT_DIR]
"""

from __future__ import annotations

import os
import struct
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from project import ICONS_OUT, PACKAGING  # noqa: E402

SVG = PACKAGING / "icons" / "quantdesk.svg"
PNG_SIZES = (16, 24, 32, 48, 64, 128, 256, 512, 1024)
ICO_SIZES = (16, 24, 32, 48, 64, 128, 256)
# ICNS entry types that hold PNG data, with their pixel size (the @2x ones are Retina variants).
ICNS_TYPES = (
    (b"icp4", 16),
    (b"icp5", 32),
    (b"ic11", 32),
    (b"icp6", 64),
    (b"ic12", 64),
    (b"ic07", 128),
    (b"ic08", 256),
    (b"ic13", 256),
    (b"ic09", 512),
    (b"ic14", 512),
    (b"ic10", 1024),
)


def render_pngs(svg: Path) -> dict[int, bytes]:
    """PNG bytes of the SVG at each size, rendered with antialiasing on a transparent canvas."""
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtCore import QBuffer, QByteArray, QIODevice
    from PySide6.QtGui import QImage, QPainter
    from PySide6.QtSvg import QSvgRenderer
    from PySide6.QtWidgets import QApplication

    # A QApplication (not a QGuiApplication): in a test run the same process later builds widgets,
    # and Qt allows only one application object per process.
    app = QApplication.instance() or QApplication([])  # noqa: F841 (Qt needs one alive)
    renderer = QSvgRenderer(str(svg))
    if not renderer.isValid():
        raise SystemExit(f"{svg} is not a valid SVG")
    out: dict[int, bytes] = {}
    for size in PNG_SIZES:
        image = QImage(size, size, QImage.Format.Format_ARGB32_Premultiplied)
        image.fill(0)
        painter = QPainter(image)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform)
        renderer.render(painter)
        painter.end()
        data = QByteArray()
        buf = QBuffer(data)
        buf.open(QIODevice.OpenModeFlag.WriteOnly)
        if not image.save(buf, "PNG"):
            raise SystemExit(f"could not encode the {size}px icon as PNG")
        out[size] = bytes(data.data())
    return out


def ico_bytes(pngs: dict[int, bytes]) -> bytes:
    """An ICO file whose entries are PNGs (supported since Windows Vista)."""
    header = struct.pack("<HHH", 0, 1, len(ICO_SIZES))
    offset = len(header) + 16 * len(ICO_SIZES)
    entries, images = b"", b""
    for size in ICO_SIZES:
        png = pngs[size]
        dim = 0 if size >= 256 else size  # 0 means 256 in the ICO directory
        entries += struct.pack("<BBBBHHII", dim, dim, 0, 0, 1, 32, len(png), offset)
        images += png
        offset += len(png)
    return header + entries + images


def icns_bytes(pngs: dict[int, bytes]) -> bytes:
    """An ICNS file: 'icns' + total length, then (type, length, PNG) entries."""
    body = b"".join(kind + struct.pack(">I", 8 + len(pngs[size])) + pngs[size] for kind, size in ICNS_TYPES)
    return b"icns" + struct.pack(">I", 8 + len(body)) + body


def write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    tmp.replace(path)


def main(argv: list[str]) -> int:
    out = Path(argv[0]) if argv else ICONS_OUT
    out.mkdir(parents=True, exist_ok=True)
    pngs = render_pngs(SVG)
    for size, png in pngs.items():
        write_atomic(out / f"quantdesk-{size}.png", png)
    write_atomic(out / "quantdesk.ico", ico_bytes(pngs))
    write_atomic(out / "quantdesk.icns", icns_bytes(pngs))
    write_atomic(out / "quantdesk.svg", SVG.read_bytes())
    print(f"icons: {len(pngs)} PNG sizes, quantdesk.ico, quantdesk.icns in {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
