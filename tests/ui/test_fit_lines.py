"""The fit line (quantdesk.core.fit) reads the same on the Library, Chat and Lab pages for the same
file and context, and Discover's table carries the same figures."""

from __future__ import annotations

from pathlib import Path

import pytest

from quantdesk.core import fit
from quantdesk.core.chat.engine import default_settings, read_facts
from quantdesk.core.fit import Machine
from quantdesk.core.hub import client as hub
from quantdesk.core.hub.client import FileGroup, RemoteFile
from quantdesk.core.lab.ladder import DEFAULT_CONTEXT as LADDER_CONTEXT
from quantdesk.ui.chat.settings_panel import ChatSettingsPanel
from quantdesk.ui.context import AppContext
from quantdesk.ui.discover import FilesModel
from quantdesk.ui.lab import LabPage
from quantdesk.ui.library_page import LibraryPage
from quantdesk.ui.widgets import fit_html

MACHINE = Machine(ram_available_bytes=300_000_000, ram_total_bytes=2_000_000_000)


@pytest.fixture(autouse=True)
def fixed_machine(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fit.Machine, "now", classmethod(lambda cls: MACHINE))


def test_library_chat_lab_and_discover_agree(qtbot, no_other_apps, starter_model: Path) -> None:
    expected = fit.fit_at_default(starter_model, MACHINE)
    assert expected.verdict is fit.Verdict.TIGHT  # 300 MB free is not room to spare for this model

    library = LibraryPage(AppContext())
    qtbot.addWidget(library)
    library.show()
    qtbot.waitUntil(lambda: library.model.rowCount() > 0, timeout=10_000)
    library.select_path(starter_model)
    qtbot.waitUntil(lambda: "needs" in library.fit_label.text(), timeout=10_000)
    assert library.fit_label.text() == f"At {expected.context:,} tokens of context: " + fit_html(expected)

    panel = ChatSettingsPanel()
    qtbot.addWidget(panel)
    facts = read_facts(starter_model)
    panel.set_settings(default_settings(facts))
    panel.set_model(facts)
    assert panel.memory.text() == fit_html(expected)
    assert panel.memory_verdict() is expected.verdict

    lab = LabPage(AppContext())
    qtbot.addWidget(lab)
    lab.show()
    lab.source.set_path(starter_model)
    at_ladder = fit.estimate(fit.size_of_gguf(starter_model), LADDER_CONTEXT, MACHINE)
    qtbot.waitUntil(lambda: "needs" in lab.fit_label.text(), timeout=10_000)
    assert lab.fit_label.text() == f"Memory at {LADDER_CONTEXT:,} tokens of context: " + fit_html(at_ladder)

    size = fit.size_of_gguf(starter_model)
    group = FileGroup("Q4_1", "gguf", (RemoteFile(starter_model.name, size.weights_bytes),), quant="Q4_1")
    files = FilesModel()
    files.set_rows(hub.assess([group], size.with_weights(0), expected.context, MACHINE))
    assert files.item(0).fit == expected
    tooltip = [
        files.data(files.index(0, c), 3)  # Qt.ToolTipRole
        for c in range(files.columnCount())
    ]
    assert any(expected.explain() in (t or "") for t in tooltip)
