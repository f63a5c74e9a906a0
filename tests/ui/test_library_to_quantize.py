"""From the Library to Quantize: the "Quantize…" button, and a checkpoint folder as a source
(estimated sizes, the convert job's stages, cancel, the result in the Library)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from quantdesk.core import library, paths
from quantdesk.core.gguf.reader import open_gguf
from quantdesk.ui.app import make_application
from quantdesk.ui.context import AppContext
from quantdesk.ui.library_page import LibraryPage
from quantdesk.ui.quantize_page import QuantizePage
from tests.core.test_convert import recipes


@pytest.fixture
def checkpoint(tmp_path: Path) -> Path:
    """A real (tiny, random-weight) Llama checkpoint with a SentencePiece tokenizer, in an added folder."""
    folder = tmp_path / "checkpoints" / "tiny-llama"
    recipes.tiny_llama_minimal(folder)
    library.add_folder(folder.parent)
    return folder


def _quantize_page(qtbot, ctx: AppContext, source: Path) -> QuantizePage:
    page = QuantizePage(ctx)
    qtbot.addWidget(page)
    page.source.set_path(source)
    qtbot.waitUntil(
        lambda: page.source.path() == source and "checkpoint" in page.source_info.text() or page.levels.rowCount() > 0,
        timeout=10_000,
    )
    return page


def test_library_quantize_button_opens_the_starter_on_the_quantize_page(
    qtbot, no_other_apps, starter_model: Path
) -> None:
    make_application([])
    ctx = AppContext()
    lib = LibraryPage(ctx)
    qtbot.addWidget(lib)
    quant = QuantizePage(ctx)
    qtbot.addWidget(quant)
    pages = []
    ctx.page_requested.connect(pages.append)
    qtbot.waitUntil(lambda: lib.selected() is not None, timeout=10_000)
    assert lib.selected().path == starter_model and lib.quantize_button.isEnabled()
    lib.quantize_button.click()
    assert pages == ["quantize"] and quant.source.path() == starter_model
    qtbot.waitUntil(lambda: quant.levels.rowCount() > 0, timeout=10_000)
    assert "already quantized" in quant.requant_warning.text()  # the starter is Q4_1


def test_a_checkpoint_from_the_library_converts_to_f16_and_lands_in_the_library(qtbot, checkpoint: Path) -> None:
    make_application([])
    ctx = AppContext()
    lib = LibraryPage(ctx)
    qtbot.addWidget(lib)
    quant = QuantizePage(ctx)
    qtbot.addWidget(quant)
    qtbot.waitUntil(lambda: lib.model.row_of(checkpoint) >= 0, timeout=10_000)
    lib.table.selectRow(lib.model.row_of(checkpoint))
    assert lib.quantize_button.isEnabled() and not lib.chat_button.isEnabled()
    lib.quantize_button.click()
    assert quant.source.path() == checkpoint
    qtbot.waitUntil(lambda: quant.levels.rowCount() > 0, timeout=10_000)

    rows = [quant.levels.level(r).level for r in range(quant.levels.rowCount())]
    assert rows[:3] == ["F16", "BF16", "F32"] and "Q8_0" in rows and "Q4_K_M" in rows
    assert quant.levels.index(0, 1).data().startswith("about ")  # an estimate, said so
    assert quant.levels.level(2).output_bytes == 2 * quant.levels.level(0).output_bytes  # F32 twice F16
    assert not quant.imatrix_pick.isEnabled()
    assert "llama" in quant.source_info.text() and "checkpoint" in quant.source_info.text()

    quant.select_level("F16")
    out = paths.models_dir() / "tiny-llama-F16.gguf"
    assert quant.output_path() == out and quant.start_button.isEnabled()
    stages = []
    quant.start()
    quant._handle.progress.connect(lambda p: stages.append(p.stage))
    with qtbot.waitSignal(ctx.library_changed, timeout=20_000):
        pass
    assert "Converting" in stages
    assert out.exists() and "Saved tiny-llama-F16.gguf: F16" in quant.result_label.text()
    reader = open_gguf(out)  # a sound GGUF, validated as the app reads untrusted files
    assert bytes(reader.fields["general.architecture"].parts[-1]) == b"llama" and len(reader.tensors) > 0
    assert any(e.path == out for e in library.list_models())
    qtbot.waitUntil(lambda: lib.model.row_of(out) >= 0, timeout=10_000)  # the Library page shows it
    assert not quant.start_button.isEnabled()  # just made: no accidental second run


def test_a_checkpoint_to_q8_0_shows_both_stages_and_cancel_leaves_nothing(qtbot, checkpoint: Path) -> None:
    ctx = AppContext()
    page = _quantize_page(qtbot, ctx, checkpoint)
    qtbot.waitUntil(lambda: page.levels.rowCount() > 0, timeout=10_000)
    page.select_level("Q8_0")
    lines = []
    page.start()
    page._handle.progress.connect(lambda p: lines.append((p.stage, page.progress.text.text(), page.detail.text())))
    with qtbot.waitSignal(ctx.library_changed, timeout=20_000):
        pass
    out = paths.models_dir() / "tiny-llama-Q8_0.gguf"
    assert out.exists() and "Q8_0" in page.result_label.text()
    seen = [s for s, _, _ in lines]
    assert "Converting" in seen and "Quantizing" in seen and seen.index("Converting") < seen.index("Quantizing")
    assert any(d.startswith("Step 1 of 2: Converting") for _, _, d in lines)
    assert any(d.startswith("Step 2 of 2: Quantizing") for _, _, d in lines)
    card = json.loads(Path(str(out) + ".card.json").read_text(encoding="utf-8"))
    assert card["source"] == str(checkpoint)
    assert sorted(p.name for p in paths.models_dir().iterdir()) == [out.name, out.name + ".card.json"]

    # Cancel straight after the start: nothing is left, not even the F16 intermediate. (Cancelling
    # from a progress report raced with the tiny checkpoint's job finishing before it arrived.)
    page.select_level("F32")
    page.start()
    handle = page._handle
    with qtbot.waitSignal(handle.cancelled, timeout=10_000):
        page.cancel()
    assert "Cancelled" in page.result_label.text()
    assert sorted(p.name for p in paths.models_dir().iterdir()) == [out.name, out.name + ".card.json"]
    assert page.start_button.isEnabled()


def test_a_checkpoint_that_cannot_be_converted_says_why_and_cannot_start(qtbot, checkpoint: Path) -> None:
    config = json.loads((checkpoint / "config.json").read_text(encoding="utf-8"))
    config["architectures"] = ["MambaForCausalLM"]
    (checkpoint / "config.json").write_text(json.dumps(config), encoding="utf-8")
    ctx = AppContext()
    page = _quantize_page(qtbot, ctx, checkpoint)
    qtbot.waitUntil(lambda: "cannot be converted" in page.requant_warning.text(), timeout=10_000)
    assert page.requant_warning.isVisibleTo(page)
    assert "MambaForCausalLM is not supported" in page.requant_warning.text()
    assert page.levels.rowCount() == 0 and not page.start_button.isEnabled()
