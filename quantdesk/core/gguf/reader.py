"""Reading GGUF files we did not write, safely, on top of the `gguf` package.

gguf's reader trusts the file; quantdesk.core.gguf.index checks what it cannot (size, magic, version,
tensor data inside the file, known types, unique names) and turns every failure into a
GGUFError whose message names the problem in one line, so the CLI and the UI can show it as is.
This module adds the summary `quantdesk info` and the Library show, and gguf's reader for the
few callers that need tensor data through it.
"""

from __future__ import annotations

import struct
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gguf

from quantdesk.core.errors import printable
from quantdesk.core.gguf.index import GGUF_MAGIC, SUPPORTED_VERSIONS, GGUFError, read_index, whole_number

__all__ = ["GGUFError", "GGUF_MAGIC", "SUPPORTED_VERSIONS", "open_gguf", "read_info", "ModelInfo"]


def open_gguf(path: str | Path) -> gguf.GGUFReader:
    """Open and validate a GGUF file for reading tensor data through gguf's reader.

    The checks are the header index's (quantdesk.core.gguf.index.read_index): it is fast and gives
    one-line messages, so a bad file never reaches GGUFReader, whose errors describe numpy
    internals. Prefer read_index or read_info when the tensor data is not needed.
    """
    path = Path(path)
    read_index(path)
    try:
        return gguf.GGUFReader(path, "r")
    except (IndexError, ValueError, OverflowError, MemoryError, struct.error, KeyError, TypeError):
        raise GGUFError(
            f"{path.name}: corrupt or truncated (the metadata or tensor table is malformed, "
            f"or the file ends before the data it describes)"
        ) from None


def field_value(reader: gguf.GGUFReader, key: str, default: Any = None) -> Any:
    """A metadata value as a plain Python value (str, int, float, bool or list)."""
    f = reader.fields.get(key)
    if f is None:
        return default
    try:
        return f.contents()
    except Exception:
        return default


@dataclass
class ModelInfo:
    """What `quantdesk info` and the Library show about a GGUF file."""

    path: Path
    size_bytes: int
    architecture: str
    name: str
    parameters: int
    file_type: str
    tensor_types: dict[str, int] = field(default_factory=dict)
    context_length: int | None = None
    has_chat_template: bool = False
    block_count: int | None = None
    embedding_length: int | None = None

    def as_dict(self) -> dict[str, Any]:
        d = self.__dict__.copy()
        d["path"] = str(self.path)
        return d


def file_type_name(value: Any) -> str:
    """general.file_type number -> 'Q4_K_M' (as llama.cpp names it).

    The value is whatever the file holds: a number llama.cpp does not know, but also a string, a
    float (inf, nan), a bool or an array; each reads as unknown, with the value shown escaped and
    cut short (it came from the file)."""
    if value is None:
        return "unknown"
    n = whole_number(value)
    if n is not None and n in {int(t) for t in gguf.LlamaFileType}:
        return gguf.LlamaFileType(n).name.removeprefix("MOSTLY_").replace("ALL_F32", "F32")
    return f"unknown ({printable(value)[:40]})"


def read_info(path: str | Path) -> ModelInfo:
    """Validate the file and summarise it. Raises GGUFError.

    Uses the header index (quantdesk.core.gguf.index), not GGUFReader: it makes the same checks in
    milliseconds instead of seconds, which matters for the Library and `quantdesk info`.
    """
    idx = read_index(path)
    arch = str(idx.get("general.architecture", "unknown"))
    histogram = Counter(t.type.name for t in idx.tensors)
    return ModelInfo(
        path=idx.path,
        size_bytes=idx.size,
        architecture=arch,
        name=str(idx.get("general.name", idx.path.stem)),
        parameters=sum(t.n_elements for t in idx.tensors),
        file_type=file_type_name(idx.get("general.file_type")),
        tensor_types=dict(histogram.most_common()),
        context_length=whole_number(idx.get(f"{arch}.context_length")),  # None when absent or not a number
        has_chat_template="tokenizer.chat_template" in idx.fields,
        block_count=whole_number(idx.get(f"{arch}.block_count")),
        embedding_length=whole_number(idx.get(f"{arch}.embedding_length")),
    )
