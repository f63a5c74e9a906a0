"""The SourcePicker the Lab and Quantize share: it lists the Library in a job (never in the UI
thread), keeps the user's choice across rescans, remembers it, and reports a failed scan."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from quantdesk.core import library, paths
from quantdesk.core.library import LibraryEntry
from quantdesk.ui.context import AppContext
from quantdesk.ui.source_picker import LOOKING, SourcePicker

KEY = "test.source"


def _describe(e: LibraryEntry) -> tuple[str, str]:
    return f"{e.name} ({e.kind})", str(e.path)


def _describe_file(p: Path) -> str:
    return f"{p.name} — not in the Library"


def _picker(qtbot, ctx: AppContext, **kw) -> SourcePicker:
    picker = SourcePicker(ctx, KEY, describe=_describe, describe_file=_describe_file, **kw)
    qtbot.addWidget(picker)
    return picker


def _listed(picker: SourcePicker) -> list[Path]:
    return [Path(picker.box.itemData(i)) for i in range(picker.box.count())]


@pytest.fixture
def models(no_other_apps) -> list[Path]:
    """Two GGUF files and a checkpoint folder in the app's models folder (the Library reads only names and sizes)."""
    made = []
    for name in ("Alpha-F16.gguf", "Beta-Q8_0.gguf"):
        made.append(paths.models_dir() / name)
        made[-1].write_bytes(b"GGUF" + bytes(1000))
    checkpoint = paths.models_dir() / "someone" / "tiny-ckpt"
    checkpoint.mkdir(parents=True)
    (checkpoint / "config.json").write_text("{}", encoding="utf-8")
    (checkpoint / "model.safetensors").write_bytes(bytes(100))
    return made + [checkpoint]


def test_the_library_is_listed_in_a_job_not_in_the_ui_thread(qtbot, models, starter_model, monkeypatch) -> None:
    threads = []
    real = library.list_models

    def spy() -> list[LibraryEntry]:
        threads.append(threading.current_thread())
        return real()

    monkeypatch.setattr(library, "list_models", spy)
    ctx = AppContext()
    picker = _picker(qtbot, ctx)
    # Nothing yet: the scan is a job of ctx.jobs, and the combo says it is looking.
    assert not picker.ready and picker.path() is None and picker.box.count() == 0
    assert picker.box.placeholderText() == LOOKING
    assert [h.title for h in ctx.jobs.running()] == ["Looking for models"]
    with qtbot.waitSignal(picker.changed, timeout=10_000) as changed:
        pass
    assert picker.ready and picker.box.placeholderText() == ""
    assert threads and all(t is not threading.main_thread() for t in threads)
    assert _listed(picker) == [starter_model, *models[:2]]  # GGUF files only: the checkpoint is left out
    assert changed.args == [starter_model] and picker.path() == starter_model  # the first listed
    assert picker.entry() is not None and picker.entry().builtin
    assert picker.box.itemText(1) == "Alpha-F16 (gguf)" and ctx.setting(KEY) == str(starter_model)


def test_kinds_and_prefer_are_the_pages_to_choose(qtbot, models) -> None:
    picker = _picker(
        qtbot,
        AppContext(),
        kinds=("gguf", "checkpoint"),
        prefer=lambda entries: next(e.path for e in entries if e.file_type == "Q8_0"),
    )
    qtbot.waitUntil(lambda: picker.ready, timeout=10_000)
    assert models[2] in _listed(picker) and picker.entry().kind == "gguf"
    assert picker.path() == models[1]  # what the page prefers when nothing is remembered


def test_the_choice_survives_a_rescan(qtbot, models) -> None:
    ctx = AppContext()
    picker = _picker(qtbot, ctx)
    qtbot.waitUntil(lambda: picker.ready, timeout=10_000)
    seen = []
    picker.changed.connect(seen.append)
    picker.box.setCurrentIndex(_listed(picker).index(models[1]))  # the user picks Beta
    assert seen == [models[1]] and picker.path() == models[1] and ctx.setting(KEY) == str(models[1])

    newer = paths.models_dir() / "Gamma-Q4_K_M.gguf"
    newer.write_bytes(b"GGUF" + bytes(500))
    with qtbot.waitSignal(picker.listed, timeout=10_000):
        ctx.library_changed.emit()
    assert newer in _listed(picker)
    assert picker.path() == models[1] and picker.box.currentData() == str(models[1])
    assert seen == [models[1]]  # a rescan is no change of choice

    models[1].unlink()  # deleted meanwhile: it stays chosen (the page may still show facts about it)
    with qtbot.waitSignal(picker.listed, timeout=10_000):
        picker.rescan()
    assert picker.path() == models[1] and picker.box.currentText() == "Beta-Q8_0.gguf — not in the Library"
    assert picker.entry() is None and seen == [models[1]]


def test_a_file_from_elsewhere_is_added_and_kept(qtbot, models, tmp_path: Path) -> None:
    outside = tmp_path / "elsewhere" / "Outside-F16.gguf"
    outside.parent.mkdir()
    outside.write_bytes(b"GGUF" + bytes(100))
    ctx = AppContext()
    picker = _picker(qtbot, ctx)
    with qtbot.waitSignal(picker.changed) as changed:
        picker.set_path(outside)  # before the first scan is in, as another page may hand one over
    assert changed.args == [outside] and picker.path() == outside
    qtbot.waitUntil(lambda: picker.ready, timeout=10_000)
    assert picker.path() == outside and picker.entry() is None  # the first listing did not override it
    assert picker.box.currentText() == "Outside-F16.gguf — not in the Library"
    assert _listed(picker).count(outside) == 1
    with qtbot.assertNotEmitted(picker.changed):
        picker.set_path(str(outside))  # the same again: no change
    picker.set_path(models[0])
    assert picker.path() == models[0] and picker.entry().name == "Alpha-F16"


def test_the_last_choice_is_remembered(qtbot, models, starter_model) -> None:
    ctx = AppContext()
    ctx.set_setting(KEY, str(models[1]))
    picker = _picker(qtbot, ctx)
    qtbot.waitUntil(lambda: picker.ready, timeout=10_000)
    assert picker.path() == models[1]

    ctx.set_setting(KEY, str(paths.models_dir() / "Gone.gguf"))  # no longer on disk: the first listed
    again = _picker(qtbot, ctx)
    qtbot.waitUntil(lambda: again.ready, timeout=10_000)
    assert again.path() == starter_model and ctx.setting(KEY) == str(starter_model)


def test_a_failed_scan_is_reported(qtbot, models, monkeypatch) -> None:
    def broken() -> list[LibraryEntry]:
        raise PermissionError(13, "Permission denied", str(paths.models_dir()))

    monkeypatch.setattr(library, "list_models", broken)
    picker = _picker(qtbot, AppContext())
    with qtbot.waitSignal(picker.failed, timeout=10_000) as failed:
        pass
    assert isinstance(failed.args[0], PermissionError) and "PermissionError" in failed.args[1]
    assert picker.ready and picker.path() is None and picker.box.count() == 0
