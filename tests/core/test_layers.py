"""quantdesk/core and quantdesk/kquant must never import Qt: every capability has to work headless."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2] / "quantdesk"
FORBIDDEN = ("PySide6", "PyQt5", "PyQt6", "shiboken6", "quantdesk.ui", "pyqtgraph")


def _imports(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.append(node.module)
    return names


@pytest.mark.parametrize("package", ["core", "kquant"])
def test_no_qt_below_the_ui(package: str) -> None:
    bad = []
    for path in sorted((ROOT / package).rglob("*.py")):
        for name in _imports(path):
            if name.startswith(FORBIDDEN):
                bad.append(f"{path.relative_to(ROOT)} imports {name}")
    assert not bad, "\n".join(bad)
