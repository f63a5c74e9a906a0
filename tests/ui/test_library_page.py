"""The Library page: the starter model first with its way into Chat, details read in the background,
added folders, delete with confirmation, reveal."""

from __future__ import annotations

from pathlib import Path

import pytest

from quantdesk.core import library, paths
from quantdesk.ui.app import make_application
from quantdesk.ui.context import AppContext
from quantdesk.ui.library_page import LibraryPage
from tests.hubserver import tiny_checkpoint, tiny_gguf


@pytest.fixture
def page(qtbot, no_other_apps):
    make_application([])
    ctx = AppContext()
    p = LibraryPage(ctx)
    qtbot.addWidget(p)
    p.resize(1100, 700)
    p.show()
    qtbot.waitUntil(lambda: p.model.rowCount() > 0, timeout=10_000)
    return p


def _rescan(qtbot, page: LibraryPage, rows: int) -> None:
    page.ctx.library_changed.emit()
    qtbot.waitUntil(lambda: page.model.rowCount() == rows, timeout=10_000)


def test_the_starter_model_is_selected_with_its_chat_button(qtbot, page, starter_model):
    assert page.model.entry(0).builtin and page.selected().path == starter_model
    assert page.chat_button.isEnabled() and not page.delete_button.isEnabled()
    with qtbot.waitSignal(page.ctx.chat_requested, timeout=3000) as got:
        page.chat_button.click()
    assert got.args == [starter_model]
    assert "Built-in" in page.summary_label.text() and "Q4_1" in page.summary_label.text()


def test_new_files_added_folders_details_and_delete(qtbot, page, tmp_path, monkeypatch):
    folder = paths.models_dir() / "acme" / "Tiny-GGUF"
    folder.mkdir(parents=True)
    g = folder / "Tiny-Q8_0.gguf"
    tiny_gguf(g, "Tiny", 7)
    _rescan(qtbot, page, 2)
    row = page.model.row_of(g)
    assert [page.model.index(row, c).data() for c in range(3)][:2] == ["Tiny-Q8_0", "Q8_0"]
    page.table.selectRow(row)
    qtbot.waitUntil(lambda: "Architecture" in page.facts_label.text(), timeout=10_000)
    facts = page.facts_label.text()
    assert "<td>llama</td>" in facts and "<td>Q8_0</td>" in facts and page.delete_button.isEnabled()

    mine = tmp_path / "mine" / "tiny"
    mine.mkdir(parents=True)
    for name, data in tiny_checkpoint().items():
        (mine / name).write_bytes(data)
    page.add_folder(str(mine.parent))
    qtbot.waitUntil(lambda: page.model.rowCount() == 3, timeout=10_000)
    ck = page.model.row_of(mine)
    assert page.model.index(ck, 1).data() == "checkpoint" and page.model.index(ck, 3).data() == "Added folder"
    page.table.selectRow(ck)
    assert not page.chat_button.isEnabled() and "Quantize" in page.facts_label.text()

    revealed = []
    monkeypatch.setattr(library, "reveal", lambda p: revealed.append(p))
    page.table.selectRow(page.model.row_of(g))
    page.reveal_button.click()
    assert revealed == [g]

    monkeypatch.setattr(page, "confirm_delete", lambda e: False)
    page.delete_button.click()
    assert g.exists()
    monkeypatch.setattr(page, "confirm_delete", lambda e: True)
    page.delete_button.click()
    qtbot.waitUntil(lambda: page.model.rowCount() == 2, timeout=10_000)
    assert not g.exists() and page.model.row_of(g) == -1

    page.remove_folder(mine.parent)
    qtbot.waitUntil(lambda: page.model.rowCount() == 1, timeout=10_000)
    assert "Looking in the models folder" in page.locations.text()


def test_adding_something_that_is_not_a_folder_says_so(qtbot, page, tmp_path):
    page.add_folder(str(tmp_path / "nope"))
    assert page.error.isVisible() and "is not a folder" in page.error.message.text()


def test_an_unreadable_file_says_why(qtbot, page):
    bad = paths.models_dir() / "x" / "y" / "broken-Q4_K_M.gguf"
    bad.parent.mkdir(parents=True)
    bad.write_bytes(b"GGUF" + b"\x03\x00\x00\x00" + b"\xff" * 40)
    _rescan(qtbot, page, 2)
    page.table.selectRow(page.model.row_of(Path(bad)))
    qtbot.waitUntil(lambda: "Cannot read this file" in page.facts_label.text(), timeout=10_000)
