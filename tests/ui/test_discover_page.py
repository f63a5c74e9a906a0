"""The Discover page against the fake Hub: search -> results -> model page -> download, the queue's
pause/resume/cancel, gated repos and the token, and errors in place."""

from __future__ import annotations

from PySide6.QtCore import Qt

from quantdesk.core.hub import downloads
from quantdesk.ui.app import make_application
from quantdesk.ui.context import AppContext
from quantdesk.ui.discover import DiscoverPage
from tests.hubserver import TOKEN

FAST = {"stall_timeout_s": 0.3, "retry_wait_s": 0.01}


def _page(qtbot, job_options=None) -> DiscoverPage:
    make_application([])
    ctx = AppContext()
    page = DiscoverPage(ctx, job_options=job_options or FAST)
    qtbot.addWidget(page)
    page.resize(1100, 700)
    page.show()
    return page


def _on_disk(item) -> int:
    """Bytes of the download's partial files (progress reports are throttled; the disk is exact)."""
    return downloads.downloaded_bytes(item.spec)


def _search(qtbot, page: DiscoverPage, text: str) -> None:
    page.search_edit.setText(text)
    page.search_button.click()
    qtbot.waitUntil(
        lambda: page.results_model.rowCount() > 0 and page.results_status.text() != "Searching the Hub…", timeout=10_000
    )


def _open(qtbot, page: DiscoverPage, repo_id: str) -> None:
    page.open_repo(repo_id)
    qtbot.waitUntil(
        lambda: page.model_stack.currentIndex() == 1 and page.view is not None and page.view.details.repo_id == repo_id,
        timeout=10_000,
    )


def test_search_results_model_page_and_download(qtbot, fake_hub):
    page = _page(qtbot)
    assert page.results_stack.currentIndex() == 0  # teaches before the first search
    _search(qtbot, page, "tiny")
    m = page.results_model
    assert [m.summary(r).repo_id for r in range(m.rowCount())] == ["acme/Tiny-GGUF"]
    row = [m.index(0, c).data() for c in range(m.columnCount())]
    assert row[0].startswith("Tiny-GGUF") and row[1:4] == ["acme", "5,000", "40"]
    assert row[5:] == ["apache-2.0", "Open"]
    # Clicking a result opens its page: README, licence, grouped files, fit and the recommendation.
    qtbot.mouseClick(
        page.results_view.viewport(),
        Qt.MouseButton.LeftButton,
        pos=page.results_view.visualRect(m.index(0, 0)).center(),
    )
    assert page.stack.currentWidget() is page.model_page
    qtbot.waitUntil(lambda: page.model_stack.currentIndex() == 1, timeout=10_000)
    assert page.model_title.text() == "acme/Tiny-GGUF" and "apache-2.0" in page.model_facts.text()
    assert "tiny" in page.readme_view.toPlainText().lower()
    fm = page.files_model
    labels = [fm.index(r, 0).data() for r in range(fm.rowCount())]
    assert labels[0].startswith("★ Q4_K_M") and "2 parts" in labels[2]
    assert fm.index(0, 2).data() == "fits" and page.selected_group().recommended
    assert "Q4_K_M" in page.download_button.text()
    assert not page.gated_box.isVisible()

    page.download_button.click()
    [item] = page.queue.items()
    assert page.queue_box.isVisible()
    with qtbot.waitSignal(page.ctx.library_changed, timeout=10_000):
        pass
    assert item.state == "done"
    target = item.spec.dest / "Tiny-Q4_K_M.gguf"
    assert target.read_bytes() == fake_hub.repos["acme/Tiny-GGUF"].files["Tiny-Q4_K_M.gguf"]
    assert page.queue.model.index(0, 4).data() == "In your Library"
    page.back_button.click()
    assert page.stack.currentWidget() is page.results_box


def test_filters_sort_and_more_pages(qtbot, fake_hub):
    page = _page(qtbot)
    page.gguf_check.setChecked(False)
    page.textgen_check.setChecked(False)
    page.sort_combo.setCurrentIndex(1)  # most liked
    page.search_edit.setText("")
    page.search()
    qtbot.waitUntil(lambda: page.results_model.rowCount() == 8, timeout=10_000)
    assert page.results_model.summary(0).repo_id == "acme/Tiny"
    gated_row = [r for r in range(8) if page.results_model.summary(r).gated][0]
    assert page.results_model.index(gated_row, 6).data() == "Gated"
    # Paged: three at a time, "More results" appends the next page.
    page._query = page.current_query().__class__(**{**page.current_query().__dict__, "page_size": 3})
    page._page = 0
    page._run_search(append=False)
    qtbot.waitUntil(lambda: page.results_model.rowCount() == 3, timeout=10_000)
    assert page.more_button.isVisible()
    page.more_button.click()
    qtbot.waitUntil(lambda: page.results_model.rowCount() == 6, timeout=10_000)
    sent = [r["path"] for r in fake_hub.requests if r["path"].startswith("/api/models?")]
    assert all("sort=likes" in s for s in sent) and not any("filter=gguf" in s for s in sent)


def _download(page, label: str) -> None:
    """Select the file group with this quant label and press Download."""
    row = [r for r in range(page.files_model.rowCount()) if page.files_model.item(r).group.label == label][0]
    page.files_view.selectRow(row)
    page.download_selected()


def test_pause_resume_and_cancel_in_the_queue(qtbot, fake_hub):
    fake_hub.fault("Tiny-Q8_0.gguf", "stall", after=50_000, seconds=10)
    page = _page(qtbot, {"stall_timeout_s": 20})  # pause must not wait for a stall to time out
    _open(qtbot, page, "acme/Tiny-GGUF")
    _download(page, "Q8_0")
    [item] = page.queue.items()
    qtbot.waitUntil(lambda: _on_disk(item) == 50_000, timeout=10_000)
    page.queue_view.selectRow(0)
    assert page.pause_button.isEnabled()
    page.pause_button.click()
    qtbot.waitUntil(lambda: item.state == "paused", timeout=10_000)
    assert [p.id for p in downloads.pending()] == [item.spec.id]
    assert page.resume_button.isEnabled() and page.queue.model.index(0, 4).data() == "Paused"
    page.resume_button.click()
    qtbot.waitUntil(lambda: item.state == "done", timeout=10_000)
    assert any(r == "bytes=50000-" for r in fake_hub.ranges("Tiny-Q8_0.gguf"))
    assert (item.spec.dest / "Tiny-Q8_0.gguf").exists()

    # Cancel a running download: the row goes and nothing is left on disk.
    fake_hub.fault("F16/Tiny-F16-00001-of-00002.gguf", "stall", after=10_000, seconds=10)
    _download(page, "F16")
    f16 = page.queue.items()[-1]
    qtbot.waitUntil(lambda: _on_disk(f16) == 10_000, timeout=10_000)
    page.queue_view.selectRow(1)
    page.cancel_button.click()
    qtbot.waitUntil(lambda: f16 not in page.queue.items(), timeout=10_000)
    assert not list(f16.spec.dest.rglob("*.part")) and downloads.pending() == []


def test_interrupted_downloads_come_back_paused_and_closing_pauses(qtbot, fake_hub):
    fake_hub.fault("Tiny-Q8_0.gguf", "stall", after=50_000, seconds=10)
    page = _page(qtbot, {"stall_timeout_s": 20})
    _open(qtbot, page, "acme/Tiny-GGUF")
    _download(page, "Q8_0")
    [item] = page.queue.items()
    qtbot.waitUntil(lambda: _on_disk(item) == 50_000, timeout=10_000)
    page.shutdown()  # what the main window calls when it closes
    qtbot.waitUntil(lambda: item.state == "paused", timeout=10_000)
    again = _page(qtbot)  # next start of the app
    [back] = again.queue.items()
    assert back.state == "paused" and back.spec.id == item.spec.id and back.done_bytes == 50_000
    assert again.queue_box.isVisible() and "1 paused" in again.queue_summary.text()


def test_gated_repo_explains_and_the_token_dialog_saves_a_token(qtbot, fake_hub):
    from huggingface_hub import get_token

    page = _page(qtbot)
    assert page.token_button.text() == "Hub token…"
    _open(qtbot, page, "bigco/Locked-GGUF")
    assert page.gated_box.isVisible() and "accept their terms" in page.gated_text.text()
    page.download_selected()
    [item] = page.queue.items()
    qtbot.waitUntil(lambda: item.state == "failed", timeout=10_000)
    assert page.error.isVisible() and "gated" in page.error.message.text()

    page.open_token_dialog()
    dialog = page.token_dialog
    dialog.edit.setText("hf_wrong")
    dialog.save_button.click()
    qtbot.waitUntil(lambda: dialog.save_button.isEnabled(), timeout=10_000)
    assert "did not accept" in dialog.message.text()
    dialog.edit.setText(TOKEN)
    dialog.save_button.click()
    qtbot.waitUntil(lambda: "Saved" in dialog.message.text(), timeout=10_000)
    assert get_token() == TOKEN and dialog.remove_button.isEnabled()
    dialog.close()
    assert page.token_button.text() == "Hub token ✓"

    page.queue_view.selectRow(0)
    page.resume_button.click()
    qtbot.waitUntil(lambda: item.state == "done", timeout=10_000)


def test_hub_errors_show_in_place(qtbot, fake_hub):
    page = _page(qtbot)
    page.open_repo("acme/Nope")
    qtbot.waitUntil(lambda: page.error.isVisible(), timeout=10_000)
    assert "no such model" in page.error.message.text().lower()
    assert "Traceback" not in page.error.message.text()
