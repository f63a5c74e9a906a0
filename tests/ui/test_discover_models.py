"""The Discover page's item models on their own, under pytest-qt's model tester (Qt's
QAbstractItemModelTester, and pytest-qt's Python port, which also checks the types each role
returns), with real rows: search results and repo files from the fake Hub, and download items
from real download plans. Each tester stays attached while the rows change, so appends, resets,
inserts, removals and refreshes are checked too."""

from __future__ import annotations

import pytest
from PySide6.QtCore import Qt
from PySide6.QtGui import QBrush, QFont

from quantdesk.core.fit import Machine
from quantdesk.core.hub import client as hub
from quantdesk.core.hub import downloads
from quantdesk.core.hub.client import FileGroup, RemoteFile
from quantdesk.core.hub.queue import DownloadItem
from quantdesk.core.jobs import Progress
from quantdesk.ui.discover import DownloadsModel, FilesModel, ResultsModel

# Qt's own tester reports what it finds as Qt warnings: make those fail the test.
pytestmark = pytest.mark.qt_log_level_fail("WARNING")

MACHINE = Machine(ram_available_bytes=8_000_000_000, ram_total_bytes=16_000_000_000)
GB = 1_000_000_000


def _check(qtmodeltester, model) -> None:
    """Attach both testers: Qt's C++ one and the Python port (which asserts, and checks roles)."""
    qtmodeltester.check(model)
    qtmodeltester.check(model, force_py=True)


def _every_cell(model) -> dict[int, list]:
    """What data() returns for every row and column, per role the views ask for, checked for the
    types Qt expects (the testers look at the first cell only)."""
    kinds = {
        Qt.ItemDataRole.DisplayRole: str,
        Qt.ItemDataRole.ToolTipRole: str,
        Qt.ItemDataRole.TextAlignmentRole: int,
        Qt.ItemDataRole.ForegroundRole: QBrush,
        Qt.ItemDataRole.FontRole: QFont,
    }
    cells = [model.index(r, c) for r in range(model.rowCount()) for c in range(model.columnCount())]
    every = {role: [i.data(role) for i in cells] for role in kinds}
    for role, kind in kinds.items():
        assert all(v is None or isinstance(v, kind) for v in every[role]), role
    return every


def test_results_model(qtmodeltester, fake_hub) -> None:
    first = hub.search(hub.SearchQuery(sort="likes", page_size=3))
    rest = hub.search(hub.SearchQuery(sort="likes", page_size=3), page=1)
    model = ResultsModel()
    _check(qtmodeltester, model)  # empty first, as before the first search
    model.set_rows(first.results)
    assert model.rowCount() == 3 and model.columnCount() == 7
    model.append_rows(rest.results + first.results[:1])  # a repeated repo is not added twice
    assert model.rowCount() == 6
    assert len({model.summary(r).repo_id for r in range(6)}) == 6
    every = _every_cell(model)
    assert all(isinstance(v, str) for v in every[Qt.ItemDataRole.DisplayRole])
    gated = [r for r in range(6) if model.summary(r).gated]
    assert gated and model.index(gated[0], 6).data() == "Gated"
    assert isinstance(model.index(gated[0], 6).data(Qt.ItemDataRole.ForegroundRole), QBrush)
    assert model.headerData(2, Qt.Orientation.Horizontal) == "Downloads"
    model.set_rows([])
    assert model.rowCount() == 0


def test_files_model(qtmodeltester, fake_hub) -> None:
    gguf = hub.load_repo_view("acme/Tiny-GGUF")
    checkpoint = hub.load_repo_view("acme/Tiny")
    model = FilesModel()
    _check(qtmodeltester, model)
    rows = hub.assess(gguf.groups, gguf.shape, 4096, MACHINE)
    # A projector and a split level with a part missing, as repos have them: their own wording.
    odd = [
        FileGroup("mmproj-Tiny-F16.gguf", "projector", (RemoteFile("mmproj-Tiny-F16.gguf", 2 * GB),)),
        FileGroup("Q2_K", "gguf", (RemoteFile("Q2_K/Tiny-00001-of-00003.gguf", GB),), "Q2_K", 3, complete=False),
    ]
    model.set_rows(rows + hub.assess(odd, gguf.shape, 4096, MACHINE))
    assert model.rowCount() == len(rows) + 2 and model.columnCount() == 4
    rec = model.recommended_row()
    assert rec >= 0 and model.item(rec).recommended
    assert model.index(rec, 0).data().startswith("★ ") and "recommended" in model.index(rec, 0).data()
    assert isinstance(model.index(rec, 0).data(Qt.ItemDataRole.FontRole), QFont)
    projector, partial = model.rowCount() - 2, model.rowCount() - 1
    assert model.index(projector, 2).data() == "—"
    assert model.index(projector, 2).data(Qt.ItemDataRole.ForegroundRole) is None
    assert "3 parts" in model.index(partial, 0).data() and "parts missing" in model.index(partial, 0).data()
    assert all(isinstance(v, str) for v in _every_cell(model)[Qt.ItemDataRole.ToolTipRole])
    model.set_rows(hub.assess(checkpoint.groups, checkpoint.shape, 4096, MACHINE))
    [row] = range(model.rowCount())
    assert model.item(row).group.kind == "checkpoint"
    assert "quantizing makes it smaller" in model.index(row, 0).data(Qt.ItemDataRole.ToolTipRole)
    model.set_rows([])
    assert model.recommended_row() == -1


def test_downloads_model(qtmodeltester, fake_hub) -> None:
    details = hub.repo_details("acme/Tiny-GGUF")
    groups = {g.label: g for g in hub.group_files(details.files)}
    specs = [downloads.plan("acme/Tiny-GGUF", group=groups[q], details=details) for q in ("Q4_K_M", "Q8_0", "F16")]
    model = DownloadsModel()
    _check(qtmodeltester, model)
    queued, running, failed = (DownloadItem(s) for s in specs)
    for item in (queued, running, failed):
        model.add(item)
    assert model.rowCount() == 3 and model.columnCount() == 5
    half = specs[1].total_bytes // 2
    running.state = "running"
    running.progress = Progress(half, specs[1].total_bytes, "B", "Downloading Tiny-Q8_0.gguf", rate=2e6, eta_s=3)
    model.refresh(running)
    failed.state, failed.error = "failed", "the Hub answered with a server error (HTTP 503)"
    model.refresh(failed)
    _every_cell(model)
    assert model.index(0, 4).data() == "Waiting" and model.index(0, 2).data() == ""
    assert model.index(1, 4).data() == "Downloading" and model.index(1, 2).data() and model.index(1, 3).data()
    assert model.index(1, 1).data(Qt.ItemDataRole.UserRole) == pytest.approx(0.5, abs=0.01)
    assert model.index(2, 0).data(Qt.ItemDataRole.ToolTipRole) == failed.error
    assert isinstance(model.index(2, 4).data(Qt.ItemDataRole.ForegroundRole), QBrush)
    # A running job's own words (a retry, a re-hash) replace "Downloading".
    running.progress = Progress(half, specs[1].total_bytes, "B", "Tiny-Q8_0.gguf: the connection stalled, retrying")
    model.refresh(running)
    assert model.index(1, 4).data() == "Tiny-Q8_0.gguf: the connection stalled, retrying"
    for state, words in (("paused", "Paused"), ("done", "In your Library"), ("cancelled", "Cancelled")):
        running.state = state
        model.refresh(running)
        assert model.index(1, 4).data() == words and model.index(1, 2).data() == ""
        _every_cell(model)
    model.remove(running)
    assert model.items == [queued, failed]
    model.remove(queued)
    model.remove(failed)
    assert model.rowCount() == 0
