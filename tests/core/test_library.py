"""The Library: what is found where, split files, checkpoints, other tools' folders, delete, info."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from quantdesk.core import library, paths
from quantdesk.core.library import LibraryError
from tests.hubserver import tiny_checkpoint, tiny_gguf


def _gguf(path: Path, file_type: int = 15) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    tiny_gguf(path, path.stem, file_type)
    return path


def _checkpoint(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, data in tiny_checkpoint().items():
        (folder / name).write_bytes(data)
    return folder


def test_the_starter_model_is_always_first_and_cannot_be_deleted(no_other_apps, starter_model):
    entries = library.list_models()
    first = entries[0]
    assert first.builtin and first.path == starter_model and first.kind == "gguf"
    assert first.file_type == "Q4_1" and first.size == starter_model.stat().st_size
    with pytest.raises(LibraryError, match="cannot be deleted"):
        library.delete(first)


def test_models_folder_entries_split_files_and_partials(no_other_apps):
    root = paths.models_dir() / "acme" / "Tiny-GGUF"
    _gguf(root / "Tiny-Q4_K_M.gguf")
    a = _gguf(root / "F16" / "Tiny-F16-00001-of-00002.gguf", 1)
    b = _gguf(root / "F16" / "Tiny-F16-00002-of-00002.gguf", 1)
    (root / "Tiny-Q8_0.gguf.1234abcd.part").write_bytes(b"GGUF partial")
    _gguf(root / "mmproj-Tiny-f16.gguf", 1)
    _gguf(root / ".Tiny-Q5_K_M.gguf.f16.4321-0123abcd.partial")  # an output still being written: hidden
    _gguf(root / ".Tiny-Q6_K.gguf")
    entries = {e.name: e for e in library.list_models() if not e.builtin}
    assert sorted(entries) == ["Tiny-F16", "Tiny-Q4_K_M"]
    q4, f16 = entries["Tiny-Q4_K_M"], entries["Tiny-F16"]
    assert (q4.file_type, q4.source, q4.repo_id) == ("Q4_K_M", library.SOURCE_APP, "acme/Tiny-GGUF")
    assert f16.path == a and f16.files == (a, b) and f16.size == a.stat().st_size + b.stat().st_size
    assert f16.file_type == "F16"

    library.delete(f16)
    assert not a.exists() and not b.exists() and not (root / "F16").exists()
    library.delete(q4)
    assert root.exists()  # the partial download is still there, so the folder stays


def test_added_folders_checkpoints_and_deleting_a_checkpoint_keeps_ggufs_beside_it(no_other_apps):
    mine = no_other_apps / "my-models"
    ckpt = _checkpoint(mine / "tiny-llama")
    beside = _gguf(ckpt / "tiny-llama-Q4_K_M.gguf")
    assert not [e for e in library.list_models() if not e.builtin]
    assert library.add_folder(mine) == mine.resolve()
    library.add_folder(mine)  # twice is once
    assert library.folders() == [mine.resolve()]
    entries = {e.kind: e for e in library.list_models() if not e.builtin}
    assert set(entries) == {"gguf", "checkpoint"}
    c = entries["checkpoint"]
    assert c.name == "tiny-llama" and c.path == ckpt and c.source == library.SOURCE_FOLDER
    assert c.size == sum((ckpt / n).stat().st_size for n in ("config.json", "model.safetensors", "tokenizer.json"))
    library.delete(c)
    assert beside.exists() and not (ckpt / "model.safetensors").exists() and not (ckpt / "config.json").exists()
    library.remove_folder(mine)
    assert library.folders() == [] and beside.exists()
    with pytest.raises(LibraryError, match="not a folder"):
        library.add_folder(no_other_apps / "missing")


def test_hugging_face_cache_and_lm_studio_are_recognised(no_other_apps):
    snap = no_other_apps / "hf-cache" / "models--acme--Tiny-GGUF" / "snapshots" / "abc123"
    blobs = no_other_apps / "hf-cache" / "models--acme--Tiny-GGUF" / "blobs"
    blob = _gguf(blobs / "deadbeef")
    snap.mkdir(parents=True)
    try:
        os.symlink(os.path.relpath(blob, snap), snap / "Tiny-Q4_K_M.gguf")
    except OSError as e:  # Windows without Developer Mode or admin rights (the Hub cache then holds copies)
        pytest.skip(f"cannot create symbolic links here: {e}")
    os.symlink(os.path.join("..", "..", "blobs", "not-downloaded"), snap / "Tiny-Q8_0.gguf")  # dangling: skipped
    lms = _gguf(no_other_apps / "home" / ".lmstudio" / "models" / "bartowski" / "Tiny-GGUF" / "Tiny-Q5_K_M.gguf")
    entries = {e.source: e for e in library.list_models() if not e.builtin}
    assert set(entries) == {library.SOURCE_HF_CACHE, library.SOURCE_LM_STUDIO}
    hf = entries[library.SOURCE_HF_CACHE]
    assert (hf.repo_id, hf.file_type, hf.size) == ("acme/Tiny-GGUF", "Q4_K_M", blob.stat().st_size)
    assert entries[library.SOURCE_LM_STUDIO].path == lms
    assert entries[library.SOURCE_LM_STUDIO].repo_id == "bartowski/Tiny-GGUF"
    assert [label for label, _ in library.known_locations()] == [library.SOURCE_HF_CACHE, library.SOURCE_LM_STUDIO]
    library.delete(hf)  # removes the snapshot link and its blob
    assert not blob.exists() and not (snap / "Tiny-Q4_K_M.gguf").is_symlink()


def test_info_reads_the_gguf_header_and_refuses_checkpoints(no_other_apps):
    g = _gguf(paths.models_dir() / "x" / "y" / "y-Q8_0.gguf", 7)
    entry = library.find(g)
    info = library.info(entry)
    assert info.architecture == "llama" and info.file_type == "Q8_0" and info.block_count == 2
    assert library.info(g) is info  # cached while the file is unchanged
    ckpt = _checkpoint(no_other_apps / "ck")
    with pytest.raises(LibraryError, match="convert it to GGUF"):
        library.info(ckpt)


def test_reveal_command_points_at_the_file(no_other_apps, monkeypatch):
    f = _gguf(no_other_apps / "a" / "m.gguf")
    monkeypatch.setattr("sys.platform", "linux")
    assert library.reveal_command(f) == ["xdg-open", str(f.parent)]
    monkeypatch.setattr("sys.platform", "darwin")
    assert library.reveal_command(f) == ["open", "-R", str(f)]
    monkeypatch.setattr("sys.platform", "win32")
    assert library.reveal_command(f) == ["explorer", "/select,", str(f)]


def test_models_cli_lists_the_library(no_other_apps, capsys):
    from quantdesk.cli import main

    _gguf(paths.models_dir() / "acme" / "Tiny-GGUF" / "Tiny-Q4_K_M.gguf")
    assert main(["models", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data[0]["builtin"] and data[1]["name"] == "Tiny-Q4_K_M" and data[1]["repo_id"] == "acme/Tiny-GGUF"
    assert main(["models"]) == 0
    text = capsys.readouterr().out
    assert "Tiny-Q4_K_M" in text and "Q4_K_M" in text and "Quantdesk" in text and "Built-in" in text
