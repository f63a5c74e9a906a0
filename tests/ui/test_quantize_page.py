"""The Quantize page: levels with this model's real sizes, a run that lands in the Library, Cancel."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.llama_quantize_ref import llama_quantize
from quantdesk.core import paths
from quantdesk.core.gguf.index import read_index
from quantdesk.core.quantize.plan import make_plan
from quantdesk.ui.context import AppContext
from quantdesk.ui.quantize_page import QuantizePage


@pytest.fixture
def f16_source(starter_model: Path) -> Path:
    """A real F16 model in the app's models folder: the starter cut to 2 layers, by llama.cpp."""
    path = paths.models_dir() / "SmolLM2-135M-2layers-F16.gguf"
    llama_quantize(str(starter_model), str(path), 1, nthread=2, allow_requantize=True, prune_layers=list(range(2, 30)))
    return path


def _page(qtbot, source: Path) -> QuantizePage:
    ctx = AppContext()
    page = QuantizePage(ctx)
    qtbot.addWidget(page)
    page.source.set_path(source)
    qtbot.waitUntil(lambda: page.levels.rowCount() > 0 and page.source.path() == source, timeout=10000)
    return page


def test_levels_show_the_size_of_this_models_plan(qtbot, f16_source: Path) -> None:
    page = _page(qtbot, f16_source)
    index = read_index(f16_source)
    for row in range(page.levels.rowCount()):
        est = page.levels.level(row)
        assert est.problem is None
        assert est.output_bytes == index.data_offset + make_plan(index, est.level).data_bytes
    assert page.selected_level().level == "Q4_K_M"
    assert not page.requant_warning.isVisible() and page.start_button.isEnabled()
    assert page.output_path() == paths.models_dir() / "SmolLM2-135M-2layers-Q4_K_M.gguf"


def test_quantizing_lands_in_the_library_with_a_card(qtbot, f16_source: Path) -> None:
    page = _page(qtbot, f16_source)
    page.select_level("Q8_0")
    with qtbot.waitSignal(page.ctx.library_changed, timeout=30000):
        page.start()
    out = paths.models_dir() / "SmolLM2-135M-2layers-Q8_0.gguf"
    assert out.exists() and Path(str(out) + ".card.json").exists()
    assert "Saved" in page.result_label.text()
    size = page.levels.level(page.levels.row_of("Q8_0")).output_bytes
    assert out.stat().st_size == size  # the list told the truth
    assert not page.start_button.isEnabled()  # that file exists now: no accidental second run
    from quantdesk.core import library

    assert any(e.path == out for e in library.list_models())


def test_cancel_stops_and_leaves_nothing(qtbot, f16_source: Path) -> None:
    page = _page(qtbot, f16_source)
    page.select_level("IQ4_NL")
    page.start()
    handle = page._handle
    assert handle is not None
    # Cancel at once: waiting for a later progress line raced with the (fast) kernels finishing
    # the whole job first. IQ4_NL, the slowest level, keeps the run going far longer than a click.
    with qtbot.waitSignal(handle.cancelled, timeout=10000):
        page.progress.cancel_button.click()
    assert "Cancelled" in page.result_label.text()
    assert sorted(p.name for p in paths.models_dir().iterdir()) == [f16_source.name]
    assert page.start_button.isEnabled()


def test_an_already_quantized_source_needs_a_clear_yes(qtbot, starter_model: Path) -> None:
    page = _page(qtbot, starter_model)
    assert page.requant_warning.isVisibleTo(page) and "already quantized" in page.requant_warning.text()
    assert not page.start_button.isEnabled()
    page.requant_check.setChecked(True)
    assert page.start_button.isEnabled()
