"""What every architecture family shares: reading config.json, naming tensors, generic metadata.

A Family says, for one kind of Hugging Face model, what convert_hf_to_gguf.py would write:
which GGUF architecture, which hyperparameter keys (with the defaults transformers' config class
fills in when config.json leaves them out, since the reference reads the config through it),
which tensors under which names, and which tokenizer. Subclasses (llama.py, qwen.py, ...) change
only what differs.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import gguf
import numpy as np

from quantdesk.core.convert import vocab
from quantdesk.core.convert.errors import ConvertError
from quantdesk.core.convert.safetensors_file import LazyTensor
from quantdesk.core.errors import printable

Transform = Callable[[np.ndarray], np.ndarray]

# Tensors the reference never writes (buffers some checkpoints carry along).
SKIPPED_SUFFIXES = (".attention.masked_bias", ".attention.bias", ".rotary_emb.inv_freq")

SLICE_VALUES = 1 << 22  # ~4 M values per slice: well under half a second of work, 16 MB of float32


@dataclass
class PlannedTensor:
    """One output tensor: where its data comes from and what happens to it on the way.

    `transform` may mix rows (the q/k permutation) and then sees the whole tensor; `row_local`
    transforms (Gemma's +1 on norms) and plain copies are done in slices of rows, so a large
    embedding is converted a few MB at a time and cancel is checked between slices.
    """

    name: str
    shape: tuple[int, ...]  # numpy order (row length last), as the data will be
    source: LazyTensor | None  # None for generated tensors (e.g. rope_freqs)
    transform: Transform | None = None
    generated: np.ndarray | None = None
    force_f32: bool = False  # norms, biases and other 1-D tensors stay F32
    row_local: bool = True  # transform (if any) works row by row
    rows: int | None = None  # keep only the first rows (Gemma 3 trims token_embd)

    def slices(self) -> Iterator[np.ndarray]:
        """The data in row slices (one slice when the transform needs the whole tensor)."""
        if self.source is None:
            arr = self.generated
            assert arr is not None  # a tensor without a source is a generated one
            yield self.transform(arr) if self.transform is not None else arr
            return
        n_rows = self.rows if self.rows is not None else (self.source.shape[0] if self.source.shape else 1)
        per_row = max(1, math.prod(self.source.shape[1:]))
        step = max(1, n_rows if (not self.row_local or len(self.source.shape) < 2) else SLICE_VALUES // per_row)
        for start in range(0, n_rows, step):
            arr = self.source.load_rows(start, min(n_rows, start + step))
            if not self.source.shape:
                arr = arr.reshape(())
            yield self.transform(arr) if self.transform is not None else arr


class Family:
    """Defaults shared by the text models convert_hf_to_gguf.py handles through TextModel."""

    hf_architectures: ClassVar[tuple[str, ...]] = ()
    gguf_arch: ClassVar[gguf.MODEL_ARCH]
    # hyperparameters transformers' config class fills in when config.json lacks them
    config_defaults: ClassVar[dict[str, Any]] = {}
    # keys this family's set_parameters writes as they are: null there is "missing", not a default
    needed_keys: ClassVar[tuple[str, ...]] = ()

    def __init__(self, folder: Path, config: dict[str, Any]):
        self.folder = folder
        self.config = config
        try:
            self.hp = self.hyperparameters(config)
        except KeyError as e:
            raise ConvertError(f"config.json: {e.args[0]!r} is missing") from None
        self.block_count = int(self.hp["num_hidden_layers"])
        self.rope = self.rope_parameters(self.hp)
        self.check_values()
        self._tensor_map: gguf.TensorNameMap | None = None

    @property
    def tensor_map(self) -> gguf.TensorNameMap:
        """gguf's name map, built for block_count blocks (work proportional to it: built only once
        plan() has checked num_hidden_layers against the layers the weights hold)."""
        if self._tensor_map is None:
            self._tensor_map = gguf.get_tensor_name_map(self.gguf_arch, self.block_count)
        return self._tensor_map

    # ---- hyperparameters -------------------------------------------------------------------
    def hyperparameters(self, config: dict[str, Any]) -> dict[str, Any]:
        hp = dict(config)
        if isinstance(hp.get("text_config"), dict):
            hp = {**hp, **hp["text_config"]}
        for key, value in self.config_defaults.items():
            if hp.get(key) is None and key not in config:
                hp[key] = value
        if (
            hp.get("num_key_value_heads") is None
            and "num_attention_heads" in hp
            and "num_key_value_heads" not in self.config_defaults
        ):
            hp["num_key_value_heads"] = hp["num_attention_heads"]
        for key in REQUIRED_KEYS:  # checked here already: subclasses derive head_dim from them
            if hp.get(key) is None:
                raise ConvertError(f"config.json: {key} is missing")
            check_count("config.json", key, hp[key], 1)
        return hp

    def check_values(self) -> None:
        """Every config.json value a family reads, checked once for its type and range before any
        planning: a string, a bool, 2.5 or 1e308 where a count belongs reached the tensor-name map,
        unpermute_rows or gguf's writer (tracebacks, hangs; "x" was even written as a string array)."""
        for key in self.needed_keys:
            if self.hp.get(key) is None:
                raise ConvertError(f"config.json: {key} is missing (or null)")
        for key in COUNT_KEYS:
            check_count("config.json", key, self.hp.get(key), 1)
        for key in COUNT_OR_ZERO_KEYS:
            check_count("config.json", key, self.hp.get(key), 0)
        for key in NUMBER_KEYS:
            check_number("config.json", key, self.hp.get(key))
        parts = [k for k in ("full_attention", "sliding_attention") if k in self.rope]
        for where, rope in [(f"rope_parameters.{k}", self.rope[k]) for k in parts] or [("rope_scaling", self.rope)]:
            for key in ROPE_COUNT_KEYS:
                check_count(f"config.json: {where}", key, rope.get(key), 1)
            for key in ROPE_NUMBER_KEYS:
                check_number(f"config.json: {where}", key, rope.get(key))

    def rope_parameters(self, hp: dict[str, Any]) -> dict[str, Any]:
        """RoPE settings in one dict, as transformers presents them (rope_parameters)."""
        rope = rope_object(hp, "rope_parameters") or rope_object(hp, "rope_scaling")
        if "full_attention" in rope or "sliding_attention" in rope:
            return rope
        if "rope_type" not in rope and rope.get("type") is not None:
            rope["rope_type"] = rope["type"]
        if "rope_theta" not in rope:
            rope["rope_theta"] = hp.get("rope_theta", self.config_defaults.get("rope_theta", 10000.0))
        rope.setdefault("rope_type", "default")
        for key in ("partial_rotary_factor", "original_max_position_embeddings"):
            if key not in rope and hp.get(key) is not None:
                rope[key] = hp[key]
        return rope

    # ---- metadata --------------------------------------------------------------------------
    def set_parameters(self, w: gguf.GGUFWriter, ftype: gguf.LlamaFileType) -> None:
        """TextModel.set_gguf_parameters: the keys every text model gets."""
        hp = self.hp
        w.add_block_count(self.block_count)
        if (n_ctx := _first(hp, "max_position_embeddings", "n_ctx", "n_positions", "max_length")) is not None:
            w.add_context_length(n_ctx)
        w.add_embedding_length(hp["hidden_size"])
        if (n_ff := _first(hp, "intermediate_size")) is not None:
            w.add_feed_forward_length(n_ff)
        w.add_head_count(hp["num_attention_heads"])
        if (n_kv := hp.get("num_key_value_heads")) is not None:
            w.add_head_count_kv(n_kv)
        rope = self.rope.get("full_attention", self.rope)
        rope_type, factor = rope.get("rope_type"), rope.get("factor")
        if rope_type == "linear" and factor is not None:
            w.add_rope_scaling_type(gguf.RopeScalingType.LINEAR)
            w.add_rope_scaling_factor(factor)
        elif rope_type == "yarn" and factor is not None:
            w.add_rope_scaling_type(gguf.RopeScalingType.YARN)
            w.add_rope_scaling_factor(factor)
            w.add_rope_scaling_orig_ctx_len(rope["original_max_position_embeddings"])
            if (v := rope.get("extrapolation_factor")) is not None:
                w.add_rope_scaling_yarn_ext_factor(v)
            if (v := rope.get("attention_factor", rope.get("attn_factor"))) is not None:
                w.add_rope_scaling_yarn_attn_factor(v)
            if (v := rope.get("beta_fast")) is not None:
                w.add_rope_scaling_yarn_beta_fast(v)
            if (v := rope.get("beta_slow")) is not None:
                w.add_rope_scaling_yarn_beta_slow(v)
        elif rope_type in ("su", "longrope"):
            w.add_rope_scaling_type(gguf.RopeScalingType.LONGROPE)
        if (theta := rope.get("rope_theta")) is not None:
            w.add_rope_freq_base(theta)
        if (swa_theta := self.rope.get("sliding_attention", {}).get("rope_theta")) is not None:
            w.add_rope_freq_base_swa(swa_theta)
        if (eps := hp.get("rms_norm_eps")) is not None:
            w.add_layer_norm_rms_eps(eps)
        if (eps := _first(hp, "layer_norm_eps", "layer_norm_epsilon", "norm_epsilon")) is not None:
            w.add_layer_norm_eps(eps)
        if (head_dim := hp.get("head_dim")) is not None:
            w.add_key_length(head_dim)
            w.add_value_length(head_dim)
        w.add_file_type(ftype)

    def set_vocab(self, w: gguf.GGUFWriter) -> None:
        """SentencePiece when tokenizer.model is there, BPE from tokenizer.json otherwise."""
        if vocab.tokenizer_kind(self.folder) == "spm":
            vocab.write_sentencepiece(w, self.folder, self.hp.get("vocab_size"))
        else:
            vocab.write_bpe(w, self.folder, self.hp.get("vocab_size"))

    def check_tokenizer(self) -> None:
        """Fail before writing when the tokenizer cannot be exported."""
        vocab.tokenizer_kind(self.folder)

    # ---- tensors ---------------------------------------------------------------------------
    def keep(self, name: str) -> str | None:
        """The checkpoint name to map, or None to drop the tensor (TextModel.filter_tensors)."""
        if name.endswith(SKIPPED_SUFFIXES):
            return None
        if name.startswith(("mlp", "vit.", "vpm.")) or any(
            s in name for s in ("visual.", "vision.", "audio.", "vision_", "audio_", "projector.")
        ):
            return None
        return name.replace("language_model.", "")

    def extra_tensors(self) -> list[PlannedTensor]:
        return []

    def early_keys(self, w: gguf.GGUFWriter) -> None:
        """Keys the reference adds while listing tensors, i.e. before general.type (rare)."""

    def map_name(self, name: str) -> str:
        new = self.tensor_map.get_name(key=name, try_suffixes=(".weight", ".bias"))
        if new is None:
            raise ConvertError(
                f"tensor {name!r} has no GGUF name for {self.gguf_arch.name.lower()}; "
                "is this checkpoint complete and of this architecture?"
            )
        return new

    # whether transform() works row by row (so big tensors can be converted in slices)
    row_local_transforms: ClassVar[bool] = True

    def plan_tensor(self, name: str, t: LazyTensor) -> list[PlannedTensor]:
        new = self.map_name(name)
        transform = self.transform(name, new, t)
        return [PlannedTensor(new, t.shape, t, transform, row_local=transform is None or self.row_local_transforms)]

    def transform(self, hf_name: str, gguf_name: str, t: LazyTensor) -> Transform | None:
        return None

    def check_against_tensors(self, tensors: dict[str, LazyTensor]) -> None:
        """config.json's sizes against the weights that are really there, before any work in
        proportion to them: a num_hidden_layers of 10^9 built a name map for every block (never
        finishing), 32,000 wrote a model claiming 32,000 blocks with 2 layers of tensors, and a
        vocab_size of 10^9 built a list of that many padding tokens. transformers itself makes
        exactly num_hidden_layers layers and a vocab_size-row embedding, so a checkpoint that
        differs is damaged or mislabelled."""
        layers: set[int] = set()
        embed_rows: int | None = None
        q_rows: list[tuple[str, int]] = []
        for hf_name, t in tensors.items():
            name = self.keep(hf_name)
            if name is None:
                continue
            if (m := _LAYER.search(name)) is not None:
                layers.add(int(m.group(1)))
            rows = t.shape[0] if t.shape else 1
            if name.endswith("embed_tokens.weight"):
                embed_rows = rows
            elif name.endswith("q_proj.weight"):
                q_rows.append((hf_name, rows))
        n = self.block_count
        top = max(layers, default=-1)
        if len(layers) != n or top != n - 1:  # i.e. layers != {0, ..., n - 1}, without making that set
            held = f"layers 0 to {top}" if layers else "no layers"
            gap = next((i for i in range(top) if i not in layers), None)  # at most len(layers) + 1 steps
            missing = f" (none for layer {gap})" if gap is not None else ""
            raise ConvertError(f"config.json: num_hidden_layers is {n}, but the weights hold {held}{missing}")
        vocab_size = self.hp.get("vocab_size")
        if embed_rows is None:
            raise ConvertError("the weights have no token embedding (model.embed_tokens.weight)")
        if vocab_size is not None and vocab_size != embed_rows:
            raise ConvertError(
                f"config.json: vocab_size is {vocab_size}, but the token embedding has {embed_rows} rows"
            )
        head_dim = self.hp.get("head_dim") or self.hp["hidden_size"] // self.hp["num_attention_heads"]
        for hf_name, rows in q_rows:
            if rows != self.hp["num_attention_heads"] * head_dim:
                raise ConvertError(
                    f"{printable(hf_name)}: {rows} rows, but config.json gives {self.hp['num_attention_heads']} "
                    f"heads of {head_dim} (num_attention_heads, head_dim)"
                )

    def plan(self, tensors: dict[str, LazyTensor]) -> list[PlannedTensor]:
        self.check_against_tensors(tensors)
        planned = self.extra_tensors()
        for hf_name, t in tensors.items():
            name = self.keep(hf_name)
            if name is not None:
                planned.extend(self.plan_tensor(name, t))
        for p in planned:
            p.force_f32 = len(p.shape) <= 1 or p.name.endswith("_norm.weight") or not p.name.endswith(".weight")
        seen: set[str] = set()
        for p in planned:
            if p.name in seen:
                raise ConvertError(f"two checkpoint tensors map to the same GGUF tensor {p.name!r}")
            seen.add(p.name)
        return planned


REQUIRED_KEYS = ("num_hidden_layers", "hidden_size", "num_attention_heads")
# config.json values by what they must be. Counts and lengths are written as GGUF uint32;
# the other numbers as float32, so neither may be larger than those hold.
COUNT_KEYS = (
    *REQUIRED_KEYS,
    "num_key_value_heads",
    "intermediate_size",
    "vocab_size",
    "head_dim",
    "max_position_embeddings",
    "n_ctx",
    "n_positions",
    "max_length",
    "original_max_position_embeddings",
)
COUNT_OR_ZERO_KEYS = ("sliding_window", "sliding_window_pattern")
NUMBER_KEYS = (
    "rope_theta",
    "rope_local_base_freq",
    "rms_norm_eps",
    "layer_norm_eps",
    "layer_norm_epsilon",
    "norm_epsilon",
    "partial_rotary_factor",
    "attn_logit_softcapping",
    "final_logit_softcapping",
)
ROPE_COUNT_KEYS = ("original_max_position_embeddings",)
ROPE_NUMBER_KEYS = (
    "factor",
    "rope_theta",
    "low_freq_factor",
    "high_freq_factor",
    "extrapolation_factor",
    "attention_factor",
    "attn_factor",
    "beta_fast",
    "beta_slow",
    "partial_rotary_factor",
)
MAX_COUNT = (1 << 32) - 1
FLOAT32_MAX = float(np.finfo(np.float32).max)
_LAYER = re.compile(r"(?:^|\.)layers\.(\d+)\.")


def check_count(where: str, key: str, value: Any, minimum: int) -> None:
    """A whole number from `minimum` to MAX_COUNT (not a bool, which JSON's true would be); None is absent."""
    if value is None:
        return
    if not isinstance(value, int) or isinstance(value, bool):
        raise ConvertError(f"{where}: {key} is {value!r:.60}, not a whole number")
    if not minimum <= value <= MAX_COUNT:
        raise ConvertError(f"{where}: {key} is {value}, outside {minimum} to {MAX_COUNT}")


def check_number(where: str, key: str, value: Any) -> None:
    """A finite number that fits a float32 (not a bool); None is absent."""
    if value is None:
        return
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        raise ConvertError(f"{where}: {key} is {value!r:.60}, not a number")
    if not is_float32(value):
        raise ConvertError(f"{where}: {key} is {value!r:.60}, not a finite number a GGUF float32 can hold")


def is_float32(value: Any) -> bool:
    """A number (not a bool) that a GGUF float32 holds: finite and within its range. Compared
    exactly, so an integer too large for a float (10^400 in JSON) is no OverflowError."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    if isinstance(value, float) and not math.isfinite(value):
        return False
    return abs(value) <= FLOAT32_MAX


def rope_object(hp: dict[str, Any], key: str) -> dict[str, Any]:
    """hp[key] (rope_parameters or rope_scaling) as a new dict; {} when absent or null."""
    raw = hp.get(key) or {}
    if not isinstance(raw, dict):
        raise ConvertError(f"config.json: {key} should be an object, not {raw!r:.60}")
    rope = dict(raw)
    parts = ("full_attention", "sliding_attention")
    if any(k in rope for k in parts) and not all(isinstance(rope.get(k, {}), dict) for k in parts):
        raise ConvertError(f"config.json: {key}' full_attention and sliding_attention should be objects")
    return rope


def _first(hp: dict[str, Any], *keys: str) -> Any:
    for k in keys:
        if k in hp:
            return hp[k]
    return None


def llama3_rope_factors(rope: dict[str, Any], head_dim: int) -> np.ndarray:
    """The rope_freqs tensor Llama 3.1+ checkpoints get (rope_type 'llama3'), in float32.

    The reference computes this with torch in float32, and torch divides a Python number by a
    tensor as reciprocal-then-multiply (two roundings); we do the same steps in numpy float32 so
    the bytes agree. Its pow is (nearly) correctly rounded, so we take pow in float64 and round.
    """
    f32 = np.float32
    base = rope.get("rope_theta", 10000.0)
    exponents = np.arange(0, head_dim, 2, dtype=f32) / f32(head_dim)
    freqs = (np.float64(base) ** exponents.astype(np.float64)).astype(f32)
    freqs = f32(1.0) / freqs
    factor = rope.get("factor", 8.0)
    low, high = rope.get("low_freq_factor", 1.0), rope.get("high_freq_factor", 4.0)
    old_ctx = rope.get("original_max_position_embeddings", 8192)
    low_wavelen, high_wavelen = old_ctx / low, old_ctx / high
    out = []
    for freq in freqs:
        wavelen = (f32(1.0) / freq) * f32(2 * math.pi)
        if wavelen < high_wavelen:
            out.append(1.0)
        elif wavelen > low_wavelen:
            out.append(factor)
        else:
            smooth = ((f32(1.0) / wavelen) * f32(old_ctx) - f32(low)) / f32(high - low)
            denom = (f32(1.0) - smooth) / f32(factor) + smooth
            out.append((f32(1.0) / denom) * f32(1.0))
    return np.array(out, dtype=f32)
