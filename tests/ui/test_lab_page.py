"""The Lab page: the Library's models as sources, a real ladder filling the table and the chart,
Cancel leaving nothing saved, earlier runs shown on open and deleted."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from PySide6.QtCore import Qt

from bench.llama_quantize_ref import llama_quantize
from quantdesk.core import paths
from quantdesk.core.lab.ladder import (
    DEFAULT_LEVELS,
    LadderRequest,
    LadderResult,
    LevelResult,
    list_results,
    save_result,
)
from quantdesk.ui.context import AppContext
from quantdesk.ui.lab.page import LAB_LEVELS, SOURCE_HINT, LabPage


@pytest.fixture(scope="session")
def lab_f16(starter_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The starter model in F16 cut to 2 layers, made once by llama.cpp: a real source that
    quantizes and reads in seconds."""
    path = tmp_path_factory.mktemp("lab") / "SmolLM2-135M-2layers-F16.gguf"
    llama_quantize(str(starter_model), str(path), 1, nthread=2, allow_requantize=True, prune_layers=list(range(2, 30)))
    return path


@pytest.fixture
def source(lab_f16: Path) -> Path:
    """That F16 file in this test's models folder, so the Library lists it."""
    dest = paths.models_dir() / lab_f16.name
    try:
        os.link(lab_f16, dest)
    except OSError:
        shutil.copyfile(lab_f16, dest)
    return dest


def _page(qtbot) -> LabPage:
    """The page with its source list in (the Library is listed in a job)."""
    page = LabPage(AppContext())
    qtbot.addWidget(page)
    page.resize(1000, 700)
    page.show()
    qtbot.waitUntil(lambda: page.source.ready, timeout=10_000)
    return page


def _small(source: Path) -> LadderRequest:
    return LadderRequest(source, ["Q8_0", "Q4_K_M"], tokens=256, context=128, generate_tokens=8)


def _level(level: str, size: int, kl: float, source: bool = False) -> LevelResult:
    return LevelResult(
        level=level,
        path=f"/nowhere/m-{level}.gguf",
        is_source=source,
        file_bytes=size,
        bits_per_weight=16.0 * size / 1_000_000_000,
        perplexity=10.0 + 20 * kl,
        kl_mean=kl,
        kl_p99=kl * 5,
        top1_agreement=1.0 - kl,
        prompt_tps=500.0,
        generate_tps=40.0,
    )


def _saved(created: str, model: str) -> LadderResult:
    result = LadderResult(
        model=model,
        source=f"/nowhere/{model}",
        created=created,
        tokens_scored=1022,
        context=512,
        chunks=2,
        threads=None,
        gpu_layers=0,
        levels=[
            _level("F16", 1_000_000_000, 0.0, source=True),
            _level("Q8_0", 531_000_000, 0.004),
            _level("Q4_K_M", 300_000_000, 0.03),
            _level("Q3_K_M", 250_000_000, 0.2),
            _level("Q2_K", 200_000_000, 0.5),
        ],
    )
    save_result(result)
    return result


def test_sources_levels_and_the_empty_state(qtbot, source: Path, starter_model: Path) -> None:
    page = _page(qtbot)
    listed = [Path(page.source.box.itemData(i)) for i in range(page.source.box.count())]
    assert source in listed and starter_model in listed
    assert page.source.path() == source  # the unquantized file is picked first
    assert page.source_hint.text() == SOURCE_HINT
    assert page.selected_levels() == [lv for lv in LAB_LEVELS if lv in DEFAULT_LEVELS]
    assert len(page.level_checks) >= 12 and page.run_button.isEnabled()
    assert page.empty.isVisible() and not page.chart.isVisible() and not page.results.isVisible()
    assert not page.delete_button.isEnabled()
    assert page.chart.points() == []

    request = page.build_request()
    assert request.source == source and request.tokens == 1024 and request.levels == page.selected_levels()

    page.source.set_path(starter_model)  # already quantized: the hint says what that means
    assert "already quantized" in page.source_hint.text()
    page.set_levels([])
    assert not page.run_button.isEnabled() and page.build_request() is None

    (paths.models_dir() / "Another-Q8_0.gguf").write_bytes(source.read_bytes()[:4096])
    page.ctx.library_changed.emit()
    qtbot.waitUntil(lambda: page.source.box.findText("Another-Q8_0", Qt.MatchFlag.MatchStartsWith) >= 0)
    assert page.source.path() == starter_model  # the choice survives a refresh
    assert "already quantized" in page.source_hint.text()


def test_a_ladder_fills_the_table_and_the_chart(qtbot, source: Path) -> None:
    page = _page(qtbot)
    page.start(_small(source))
    assert not page.run_button.isEnabled() and not page.source.isEnabled()
    qtbot.waitUntil(
        lambda: page.table_model.rowCount() == 3 and page._handle is not None and not page._handle.running,
        timeout=120_000,
    )
    rows = [page.table_model.cells(r) for r in range(3)]
    assert [r[0] for r in rows] == ["F16 (source)", "Q8_0", "Q4_K_M"]
    assert rows[0][4:8] == ("—", "—", "—", "—")  # the source is the reference, not compared with itself
    for r in rows[1:]:
        assert r[4].endswith("%") and r[7].endswith("%") and float(r[5]) >= 0
    assert [p[0] for p in page.chart.points()] == ["Q4_K_M", "Q8_0", "F16"]  # by size
    assert page.chart.points()[-1][2] == 0.0
    saved = list_results()
    assert len(saved) == 1 and page.shown_result().path == saved[0].path
    assert page.runs_box.count() == 1 and page.results.isVisible() and not page.empty.isVisible()
    assert "Measured 2 levels" in page.status.text()
    assert page.run_button.isEnabled() and page.source.isEnabled()

    with qtbot.waitSignal(page.ctx.chat_requested) as chat:  # double-click a row: chat with that file
        page.chat_with_row(2)
    assert chat.args[0] == Path(saved[0].levels[2].path) and chat.args[0].is_file()

    # the levels it made are kept, and can be cleared
    assert "of quantized levels kept" in page.cache_label.text() and page.clear_cache_button.isEnabled()
    page.clear_cache_button.click()
    assert page.cache_label.text() == "No levels kept" and not page.clear_cache_button.isEnabled()
    assert "Freed" in page.status.text() and not chat.args[0].exists()
    assert page.runs_box.count() == 1  # the run keeps its figures


def test_cancel_saves_nothing_and_the_page_stays_usable(qtbot, source: Path) -> None:
    page = _page(qtbot)
    page.start(_small(source))
    handle = page._handle
    with qtbot.waitSignal(handle.cancelled, timeout=30_000):
        page.progress.cancel_button.click()
    assert "Cancelled" in page.status.text()
    assert list_results() == [] and page.empty.isVisible() and not page.results.isVisible()
    assert page.run_button.isEnabled() and page.source.isEnabled() and page.level_checks["Q8_0"].isEnabled()


def test_earlier_runs_newest_first_and_delete(qtbot, monkeypatch) -> None:
    _saved("2026-11-20T10:00:00+00:00", "Older-F16.gguf")
    _saved("2026-11-22T10:00:00+00:00", "Newer-F16.gguf")
    page = _page(qtbot)
    assert page.shown_result().model == "Newer-F16.gguf"  # the newest is on screen when the page opens
    assert [r.model for r in page.runs()] == ["Newer-F16.gguf", "Older-F16.gguf"]
    assert page.table_model.rowCount() == 5 and len(page.chart.points()) == 5
    quality = [page.table_model.cells(r)[-1] for r in range(5)]
    assert quality == ["Reference", "Close to the original", "Small loss", "Noticeable loss", "Large loss"]
    assert page.table_model.cells(1)[1] == "531 MB" and page.table_model.cells(1)[5] == "0.0040"

    page.runs_box.setCurrentIndex(1)
    assert page.shown_result().model == "Older-F16.gguf"
    page._theme_changed()  # light <-> dark: the chart is drawn again in the new tones
    assert [p[0] for p in page.chart.points()] == ["Q2_K", "Q3_K_M", "Q4_K_M", "Q8_0", "F16"]

    monkeypatch.setattr(page, "confirm_delete", lambda r: False)
    page.delete_button.click()
    assert len(list_results()) == 2
    monkeypatch.setattr(page, "confirm_delete", lambda r: True)
    page.delete_button.click()
    assert [r.model for r in list_results()] == ["Newer-F16.gguf"]
    assert page.shown_result().model == "Newer-F16.gguf"
    page.delete_button.click()
    assert list_results() == [] and page.shown_result() is None
    assert page.empty.isVisible() and not page.delete_button.isEnabled() and page.chart.points() == []


def test_a_bad_source_is_an_error_in_place(qtbot, tmp_path: Path) -> None:
    bad = tmp_path / "broken.gguf"
    bad.write_bytes(b"not a model at all" * 100)
    page = _page(qtbot)
    page.start(LadderRequest(bad, ["Q8_0"], tokens=256, context=128))
    qtbot.waitUntil(lambda: page.error.isVisible(), timeout=30_000)
    assert (
        page.error.message.text().startswith("The ladder did not run:")
        and "Nothing was saved" in page.error.message.text()
    )
    assert "Traceback" not in page.error.message.text()
    qtbot.waitUntil(lambda: page.run_button.isEnabled(), timeout=5_000)
    assert list_results() == []


def test_opening_the_window_does_not_load_the_chart_library(tmp_path: Path) -> None:
    """pyqtgraph costs a few tenths of a second to import: the window opens without it, even with
    saved runs, and the Lab builds its chart when it is first shown."""
    import os
    import subprocess
    import sys

    # The findings go to a file, not stdout: llama-cpp-python silences a model load by pointing the
    # process's stdout and stderr at /dev/null for a moment, from whichever thread loads it.
    report = tmp_path / "report.txt"
    script = (
        "import sys\n"
        "from quantdesk.ui.app import make_application\n"
        "from quantdesk.ui.main_window import MainWindow\n"
        f"out = open({str(report)!r}, 'w', encoding='utf-8')\n"
        "app = make_application([])\n"
        "w = MainWindow(); w.show(); app.processEvents()\n"
        "print('at start:', 'pyqtgraph' in sys.modules, file=out)\n"
        "w.switch_to('lab'); app.processEvents()\n"
        "print('on the Lab:', 'pyqtgraph' in sys.modules, len(w.page('lab').chart.points()), file=out)\n"
        "out.close()\n"
    )
    env = {**os.environ, "QUANTDESK_HOME": str(tmp_path / "home"), "QT_QPA_PLATFORM": "offscreen"}
    subprocess.run(
        [
            sys.executable,
            "-c",
            "from tests.ui.test_lab_page import _saved; _saved('2026-11-22T10:00:00+00:00', 'Saved-F16.gguf')",
        ],
        env=env,
        check=True,
        cwd=Path(__file__).resolve().parents[2],
    )
    out = subprocess.run(
        [sys.executable, "-c", script],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=Path(__file__).resolve().parents[2],
    )
    found = report.read_text(encoding="utf-8") if report.exists() else ""
    assert "at start: False" in found, found + out.stdout + out.stderr
    assert "on the Lab: True 5" in found, found + out.stdout + out.stderr
