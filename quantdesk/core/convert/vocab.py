"""Writing a checkpoint's tokenizer into GGUF metadata, as convert_hf_to_gguf.py does.

Two tokenizer kinds are supported:
- SentencePiece (tokenizer.model): read with a few lines of protobuf parsing (no sentencepiece
  package needed); the GGUF tokenizer model is "llama".
- BPE (tokenizer.json): read with the `tokenizers` package; the GGUF tokenizer model is "gpt2"
  and `tokenizer.ggml.pre` names the pre-tokenizer by hashing the token ids of a fixed text,
  the way llama.cpp does (table in bpe_pre.py).
Special token ids, add_bos/add_eos, merges and the chat template come from special_vocab.py.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from hashlib import sha256
from pathlib import Path
from typing import Any

import gguf

from quantdesk.core.convert.bpe_pre import CHECK_TEXT, KNOWN_HASHES
from quantdesk.core.convert.errors import ConvertError
from quantdesk.core.convert.special_vocab import SpecialVocab
from quantdesk.core.errors import printable

# sentencepiece's ModelProto.SentencePiece.Type values, which are also GGUF token types.
SPM_NORMAL, SPM_UNKNOWN, SPM_CONTROL, SPM_USER_DEFINED, SPM_UNUSED, SPM_BYTE = 1, 2, 3, 4, 5, 6


@dataclass
class SpmPiece:
    piece: bytes
    score: float
    type: int


def read_sentencepiece_model(path: Path) -> list[SpmPiece]:
    """The pieces of a sentencepiece tokenizer.model (ModelProto field 1, repeated)."""
    data = path.read_bytes()
    pieces: list[SpmPiece] = []
    try:
        for field, wire, value in _proto_fields(data):
            # isinstance only narrows: wire types 1, 2 and 5 carry bytes, wire type 0 an int.
            if field == 1 and wire == 2 and isinstance(value, bytes):
                piece, score, kind = b"", 0.0, SPM_NORMAL
                for f2, w2, v2 in _proto_fields(value):
                    if f2 == 1 and w2 == 2 and isinstance(v2, bytes):
                        piece = v2
                    elif f2 == 2 and w2 == 5 and isinstance(v2, bytes):
                        score = struct.unpack("<f", v2)[0]
                    elif f2 == 3 and w2 == 0 and isinstance(v2, int):
                        kind = v2
                pieces.append(SpmPiece(piece, score, kind))
    except (IndexError, struct.error, ValueError):
        raise ConvertError(f"{path.name}: not a valid SentencePiece model") from None
    if not pieces:
        raise ConvertError(f"{path.name}: not a valid SentencePiece model (no pieces)")
    return pieces


def _proto_fields(buf: bytes) -> Iterator[tuple[int, int, int | bytes]]:
    """(field number, wire type, value) for each field of a protobuf message."""
    pos, end = 0, len(buf)
    value: int | bytes
    while pos < end:
        key, pos = _varint(buf, pos)
        field, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(buf, pos)
        elif wire == 1:
            value, pos = buf[pos : pos + 8], pos + 8
        elif wire == 2:
            n, pos = _varint(buf, pos)
            value, pos = buf[pos : pos + n], pos + n
        elif wire == 5:
            value, pos = buf[pos : pos + 4], pos + 4
        else:
            raise ValueError(f"unsupported wire type {wire}")
        if pos > end:
            raise ValueError("truncated")
        yield field, wire, value


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    result, shift = 0, 0
    while True:
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, pos
        shift += 7


def looks_special(token: str) -> bool:
    """Added tokens some models forget to mark special (same list as llama.cpp's)."""
    return (
        token in ("<pad>", "<mask>", "<2mass>", "[@BOS@]")
        or (token.startswith("<|") and token.endswith("|>"))
        or (token.startswith("<｜") and token.endswith("｜>"))
        or (token.startswith("<unused") and token.endswith(">"))
    )


def read_json(path: Path) -> dict[str, Any]:
    """A tokenizer JSON file, which is an object in every format we read."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, RecursionError) as e:
        raise ConvertError(f"{path.name}: not valid JSON ({type(e).__name__})") from None
    except OSError as e:
        raise ConvertError(f"{path.name}: cannot read ({e.strerror})") from None
    if not isinstance(data, dict):
        raise ConvertError(f"{path.name}: not a JSON object")
    return data


def sentencepiece_vocab(
    folder: Path, vocab_size: int | None, phi3: bool = False
) -> tuple[list[bytes], list[float], list[int]]:
    """Tokens, scores and types from tokenizer.model plus added tokens, padded to vocab_size.

    phi3: Phi-3's own variant in the reference: added tokens from tokenizer_config.json and
    tokenizer.json are USER_DEFINED unless marked special, taken verbatim.
    """
    pieces = read_sentencepiece_model(folder / "tokenizer.model")
    n = vocab_size or len(pieces)
    tokens = [f"[PAD{i}]".encode() for i in range(n)]
    scores = [-10000.0] * n
    types = [SPM_UNUSED] * n
    for i, p in enumerate(pieces[:n]):
        tokens[i], scores[i] = p.piece, p.score
        # user-defined pieces inside the model stay NORMAL, as the reference script does
        types[i] = p.type if p.type in (SPM_UNKNOWN, SPM_CONTROL, SPM_UNUSED, SPM_BYTE) else SPM_NORMAL
    added_file = folder / "added_tokens.json"
    if added_file.is_file():
        for text, token_id in read_json(added_file).items():
            if not _is_token_id(token_id):
                raise ConvertError(f"added_tokens.json: the id of {text!r:.40} is {token_id!r:.40}, not a token id")
            if token_id < n:
                tokens[token_id], scores[token_id], types[token_id] = text.encode(), -1000.0, SPM_USER_DEFINED
    decoder = added_tokens_decoder(folder)
    if phi3:
        entries = list(decoder)
        if (folder / "tokenizer.json").is_file():
            entries += _tokenizer_json_added_tokens(read_json(folder / "tokenizer.json"))
        for token_id, data in entries:
            if token_id >= n:
                raise ConvertError(f"added token {data['content']!r} has id {token_id}, beyond vocab_size {n}")
            tokens[token_id], scores[token_id] = data["content"].encode(), -1000.0
            types[token_id] = SPM_CONTROL if data.get("special") else SPM_USER_DEFINED
        return tokens, scores, types
    for token_id, data in decoder:
        text = data["content"]
        if token_id >= n:
            continue
        if data.get("special") or looks_special(text):
            types[token_id] = SPM_CONTROL
        else:
            text = text.replace("\u2581", " ")  # user-defined spaces are stored pre-normalized
            types[token_id] = SPM_USER_DEFINED
        scores[token_id], tokens[token_id] = -1000.0, text.encode()
    return tokens, scores, types


def _is_token_id(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def added_tokens_decoder(folder: Path) -> list[tuple[int, dict[str, Any]]]:
    """tokenizer_config.json's added_tokens_decoder as (id, entry) pairs, every entry an object with
    a string "content". The file is anyone's JSON: a list there, an entry that is a string, or one
    without content was a traceback (reached from Gemma 3's plan, outside any handler)."""
    config_file = folder / "tokenizer_config.json"
    if not config_file.is_file():
        return []
    decoder = read_json(config_file).get("added_tokens_decoder") or {}
    if not isinstance(decoder, dict):
        raise ConvertError(f"tokenizer_config.json: added_tokens_decoder should be an object, not {decoder!r:.40}")
    entries = []
    for key, entry in decoder.items():
        token_id = int(key) if key.isascii() and key.isdigit() and len(key) < 12 else None
        if token_id is None:
            raise ConvertError(f"tokenizer_config.json: added_tokens_decoder has the id {key!r:.40}, not a token id")
        if not isinstance(entry, dict) or not isinstance(entry.get("content"), str):
            raise ConvertError(
                f"tokenizer_config.json: added token {token_id} should be an object with a string content"
            )
        entries.append((token_id, entry))
    return entries


def _tokenizer_json_added_tokens(tok: dict[str, Any]) -> list[tuple[int, dict[str, Any]]]:
    """tokenizer.json's added_tokens as (id, entry) pairs, checked like added_tokens_decoder."""
    added = tok.get("added_tokens") or []
    if not isinstance(added, list) or not all(
        isinstance(d, dict) and _is_token_id(d.get("id")) and isinstance(d.get("content"), str) for d in added
    ):
        raise ConvertError("tokenizer.json: added_tokens should be objects with a token id and a string content")
    return [(d["id"], d) for d in added]


def bpe_vocab(folder: Path, vocab_size: int | None) -> tuple[list[str], list[int], str]:
    """Tokens, types and the pre-tokenizer name of a tokenizer.json BPE tokenizer."""
    from tokenizers import Tokenizer

    try:
        tok = Tokenizer.from_file(str(folder / "tokenizer.json"))
    except Exception as e:  # the tokenizers library raises plain Exceptions for bad files
        reason = printable((str(e).splitlines() or [type(e).__name__])[0])[:100]  # it may quote the file
        raise ConvertError(f"tokenizer.json: cannot be loaded ({reason})") from None
    vocab = tok.get_vocab(with_added_tokens=True)
    n = vocab_size or len(vocab)
    if max(vocab.values()) >= n:
        raise ConvertError(f"tokenizer.json has token ids up to {max(vocab.values())}, beyond vocab_size {n}")
    pre = bpe_pre_name(tok)
    reverse = {i: t for t, i in vocab.items()}
    added = tok.get_added_tokens_decoder()
    tokens: list[str] = []
    types: list[int] = []
    for i in range(n):
        if i not in reverse:
            tokens.append(f"[PAD{i}]")
            types.append(gguf.TokenType.UNUSED)
            continue
        token = reverse[i]
        if i in added:
            if not added[i].normalized:
                token = tok.decode(tok.encode(token, add_special_tokens=False).ids, skip_special_tokens=False)
            if added[i].special or looks_special(token):
                types.append(gguf.TokenType.CONTROL)
            else:
                token = token.replace("\u2581", " ")
                types.append(gguf.TokenType.USER_DEFINED)
        else:
            types.append(gguf.TokenType.NORMAL)
        tokens.append(token)
    return tokens, types, pre


def bpe_pre_name(tok: Any) -> str:
    """llama.cpp's name for this tokenizer's pre-tokenizer, found by hashing a fixed text's ids."""
    ids = tok.encode(CHECK_TEXT).ids
    digest = sha256(str(ids).encode()).hexdigest()
    name = KNOWN_HASHES.get(digest)
    if name is None:
        raise ConvertError(
            "this BPE tokenizer's pre-tokenizer is not one llama.cpp knows "
            f"(hash {digest[:12]}…); it cannot be converted faithfully"
        )
    return name


def write_sentencepiece(writer: gguf.GGUFWriter, folder: Path, vocab_size: int | None, phi3: bool = False) -> int:
    tokens, scores, types = sentencepiece_vocab(folder, vocab_size, phi3)
    writer.add_tokenizer_model("llama")
    writer.add_tokenizer_pre("default")
    writer.add_token_list(tokens)
    writer.add_token_scores(scores)
    writer.add_token_types(types)
    SpecialVocab(folder, n_vocab=len(tokens)).add_to_gguf(writer)
    return len(tokens)


def write_bpe(writer: gguf.GGUFWriter, folder: Path, vocab_size: int | None) -> int:
    tokens, types, pre = bpe_vocab(folder, vocab_size)
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre(pre)
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    SpecialVocab(folder, load_merges=True).add_to_gguf(writer)
    return len(tokens)


def tokenizer_kind(folder: Path) -> str:
    """'spm' or 'bpe', or a ConvertError when the checkpoint has no usable tokenizer."""
    if (folder / "tokenizer.model").is_file():
        return "spm"
    path = folder / "tokenizer.json"
    if path.is_file():
        model = read_json(path).get("model")
        model = {} if model is None else model
        if not isinstance(model, dict):
            raise ConvertError(f"tokenizer.json: its model should be an object, not {model!r:.40}")
        if model.get("type") != "BPE":
            raise ConvertError(
                f"tokenizer.json holds a {model.get('type')} tokenizer; only BPE (or tokenizer.model) is supported"
            )
        if model.get("byte_fallback"):
            raise ConvertError(
                "tokenizer.json is a SentencePiece-style BPE without tokenizer.model; add tokenizer.model to convert it"
            )
        return "bpe"
    raise ConvertError(f"{folder.name}: no tokenizer (neither tokenizer.model nor tokenizer.json)")
