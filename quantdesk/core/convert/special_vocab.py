"""Special tokens, add_bos/add_eos, merges and the chat template of a checkpoint's tokenizer.

The reference (convert_hf_to_gguf.py) uses the SpecialVocab of the gguf-py that ships inside
llama.cpp, which is newer than the `gguf` release on PyPI (it reads the ByteLevel post-processor
and the normalizer, and gives the post-processor precedence over tokenizer_config). We follow
that newer behaviour here, in our own words, rather than calling the older gguf.SpecialVocab.

Sources, in the order they are consulted (first answer wins for token ids):
tokenizer.json (merges, normalizer, post_processor, added_tokens), tokenizer_config.json
(chat_template, add_*_token, *_token), chat_template.jinja / chat_template.json, config.json (*_token_id).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gguf

from quantdesk.core.convert.errors import ConvertError

DEFAULT_TYPES = ("bos", "eos", "unk", "sep", "pad", "cls", "mask")


def _load_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, RecursionError) as e:
        raise ConvertError(f"{path.name}: not valid JSON ({type(e).__name__})") from None


def _special_id(item: dict[str, Any]) -> str | None:
    return (item.get("SpecialToken") or {}).get("id")


@dataclass
class SpecialVocab:
    folder: Path
    load_merges: bool = False
    n_vocab: int | None = None
    types: tuple[str, ...] = DEFAULT_TYPES
    merges: list[str] = field(default_factory=list)
    token_ids: dict[str, int] = field(default_factory=dict)
    add_token: dict[str, bool] = field(default_factory=dict)
    chat_template: str | list | None = None
    normalizer_lowercase: bool | None = None
    normalizer_strip_accents: bool | None = None

    def __post_init__(self) -> None:
        self._from_tokenizer_files()
        self._from_config_json()
        if self.load_merges and not self.merges:
            self._from_merges_txt()

    # ---- writing ------------------------------------------------------------------------
    def add_to_gguf(self, w: gguf.GGUFWriter) -> None:
        if self.merges:
            w.add_token_merges(self.merges)
        for typ, token_id in self.token_ids.items():
            if (add := getattr(w, f"add_{typ}_token_id", None)) is not None:
                add(token_id)
        for typ, value in self.add_token.items():
            if (add := getattr(w, f"add_add_{typ}_token", None)) is not None:
                add(value)
        if self.chat_template is not None:
            w.add_chat_template(self.chat_template)
        if self.normalizer_lowercase is not None:
            w.add_bool("tokenizer.ggml.normalizer.lowercase", self.normalizer_lowercase)
        if self.normalizer_strip_accents is not None:
            w.add_bool("tokenizer.ggml.normalizer.strip_accents", self.normalizer_strip_accents)

    # ---- reading ------------------------------------------------------------------------
    def _set_id(self, typ: str, token_id: Any) -> None:
        if not isinstance(token_id, int) or isinstance(token_id, bool):
            return
        if token_id < 0:
            raise ConvertError(f"invalid {typ} token id {token_id}")
        if (self.n_vocab is None or token_id < self.n_vocab) and typ not in self.token_ids:
            self.token_ids[typ] = token_id

    def _from_merges_txt(self) -> None:
        path = self.folder / "merges.txt"
        if not path.is_file():
            return
        lines = path.read_text(encoding="utf-8").splitlines()
        if lines and lines[0].strip().startswith("#"):
            lines = lines[1:]
        for line in lines:
            parts = line.strip().split(None, 3)
            if len(parts) == 2:
                self.merges.append(f"{parts[0]} {parts[1]}")

    def _read_merges(self, merges: Any) -> None:
        if not isinstance(merges, list) or not merges:
            return
        if isinstance(merges[0], str):
            self.merges = list(merges)
        elif isinstance(merges[0], list) and len(merges[0]) == 2 and isinstance(merges[0][0], str):
            # pairs (transformers >= 4.45); a space inside a part is stored as U+0120, like gpt2 bytes
            self.merges = [" ".join(part.replace(" ", "\u0120") for part in pair) for pair in merges]
        else:
            raise ConvertError("tokenizer.json: unknown format of merges")

    def _read_normalizer(self, norm: dict[str, Any]) -> None:
        kind = norm.get("type")
        if kind == "Lowercase":
            self.normalizer_lowercase = True
        elif kind == "StripAccents":
            self.normalizer_strip_accents = True
        elif kind == "BertNormalizer":
            if "lowercase" in norm:
                self.normalizer_lowercase = norm["lowercase"]
            if "strip_accents" in norm:
                self.normalizer_strip_accents = norm["strip_accents"]
        elif kind == "Sequence":
            for sub in norm.get("normalizers", []):
                self._read_normalizer(sub)

    def _from_tokenizer_files(self) -> None:
        tokenizer: dict[str, Any] | None = None
        added_tokens: list[dict[str, Any]] = []
        if (self.folder / "tokenizer.json").is_file():
            tokenizer = _load_json(self.folder / "tokenizer.json")
            if self.load_merges:
                self._read_merges((tokenizer.get("model") or {}).get("merges"))
            if norm := tokenizer.get("normalizer"):
                self._read_normalizer(norm)
            added_tokens = tokenizer.get("added_tokens") or []
        config: dict[str, Any] | None = None
        if (self.folder / "tokenizer_config.json").is_file():
            config = _load_json(self.folder / "tokenizer_config.json")
        if tokenizer:
            self._read_post_processor(tokenizer, config)
        if not config:
            return
        self.chat_template = self._chat_template(config)
        for typ in self.types:
            add = config.get(f"add_{typ}_token")
            if isinstance(add, bool) and typ not in self.add_token:
                self.add_token[typ] = add  # the post-processor, when it said something, wins
            entry = config.get(f"{typ}_token")
            content = entry.get("content") if isinstance(entry, dict) else entry
            if not isinstance(content, str):
                continue
            self._set_id(typ, next((t.get("id") for t in added_tokens if t.get("content") == content), None))

    def _chat_template(self, config: dict[str, Any]) -> str | list | None:
        alt: str | list | None = None
        jinja, as_json = self.folder / "chat_template.jinja", self.folder / "chat_template.json"
        if jinja.is_file():
            alt = jinja.read_text(encoding="utf-8")
            extra = sorted((self.folder / "additional_chat_templates").glob("*.jinja"))
            if extra:
                alt = [{"name": "default", "template": alt}] + [
                    {"name": p.stem, "template": p.read_text(encoding="utf-8")} for p in extra
                ]
        elif as_json.is_file():
            alt = _load_json(as_json).get("chat_template")
        template = config.get("chat_template", alt)
        return template if template is None or isinstance(template, (str, list)) else None

    def _read_post_processor(self, tokenizer: dict[str, Any], config: dict[str, Any] | None) -> None:
        """What the post-processor adds around a text: BOS/EOS/SEP, and which tokens those are."""
        cfg = config if config is not None else {}
        bos, cls_, eos, sep = cfg.get("bos_token"), cfg.get("cls_token"), cfg.get("eos_token"), cfg.get("sep_token")
        if not bos and cls_ and config:
            config["bos_token"] = bos = cls_
        if not eos and sep and config:
            config["eos_token"] = eos = sep
        post = tokenizer.get("post_processor")
        if not post:
            return
        for proc in post.get("processors", [post]):
            kind = proc.get("type")
            if kind == "ByteLevel":
                self.add_token.setdefault("bos", False)
                self.add_token.setdefault("eos", False)
            elif kind == "RobertaProcessing":
                self.add_token.update(bos=True, eos=True, sep=True)
                if not cls_ and config:
                    config["cls_token"] = cls_ = proc.get("cls", [bos])[0]
                if not sep and config:
                    config["sep_token"] = sep = proc.get("sep", [eos])[0]
            elif kind == "TemplateProcessing":
                bos, cls_, eos, sep = self._read_template(proc, config, bos, cls_, eos, sep)

    def _read_template(
        self, proc: dict[str, Any], config: dict[str, Any] | None, bos: Any, cls_: Any, eos: Any, sep: Any
    ) -> tuple[Any, Any, Any, Any]:
        single, pair = proc.get("single", []), proc.get("pair", [])
        first = last = None
        if len(single) > 1:
            if first := _special_id(single[0]):
                if not config:
                    bos = first
                elif first not in (bos, cls_):
                    if not bos:
                        config["bos_token"] = bos = first
                    if not cls_:
                        config["cls_token"] = cls_ = first
                self.add_token["bos"] = first in (bos, cls_)
            if last := _special_id(single[-1]):
                if not config:
                    eos = last
                elif last != eos:
                    if "eot" not in self.types:
                        self.types = (*self.types, "eot")
                        config["eot_token"] = eos
                    elif "eom" not in self.types:
                        self.types = (*self.types, "eom")
                        config["eom_token"] = eos
                    config["eos_token"] = eos = last
                self.add_token["eos"] = last == eos
        if pair:
            start = 1 if first and _special_id(pair[0]) == first else 0
            stop = -1 if last and _special_id(pair[-1]) == last else None
            middle = pair[start:stop]
            if middle:
                a = (middle[0].get("Sequence") or {}).get("id")
                b = (middle[-1].get("Sequence") or {}).get("id")
                middle = middle[1:-1]
                if a == "A" and b == "B" and middle:
                    add_sep = False
                    if (entry := _special_id(middle[0])) and entry in (sep, eos) and not last:
                        add_sep = True
                    if len(middle) == 2 and (entry := _special_id(middle[1])) and entry in (sep, eos):
                        add_sep = True
                    self.add_token["sep"] = add_sep
                    if add_sep and not sep and config:
                        config["sep_token"] = eos
        return bos, cls_, eos, sep

    def _from_config_json(self) -> None:
        path = self.folder / "config.json"
        if not path.is_file():
            return
        config = _load_json(path)
        for typ in self.types:
            token_id = config.get(f"{typ}_token_id")
            if token_id is None and isinstance(config.get("text_config"), dict):
                token_id = config["text_config"].get(f"{typ}_token_id")
            self._set_id(typ, token_id)
