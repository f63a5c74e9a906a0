"""Which type each tensor of a model gets for a file type such as Q4_K_M: the quantization plan.

The rules are llama.cpp's (src/llama-quant.cpp, as vendored in llama-cpp-python 0.3.36), written
again here so the plan is known before a single byte is written: the Quantize page shows the
output size of every level from it, the run checks free disk space against it, and the writer
lays out the GGUF header from it. Tests compare every plan with the one llama_model_quantize makes.

Why the rules look the way they do (a summary; the code below is the precise version):
- Some tensors are never quantized (1-D tensors, norms, MoE routers, position embeddings ...).
- A "mix" file type bumps the tensors that hurt most when squeezed: attn_v and ffn_down in the
  first and last eighth of the layers and every third layer between (use_more_bits), the output
  head (Q6_K), attn_output for the 3-bit mixes.
- A K-quant needs rows of a multiple of 256 values; when a row does not divide, the tensor falls
  back to a legacy type of about the same size (Q4_K -> Q5_0, Q6_K -> Q8_0 ...), else to F16.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

import gguf
import numpy as np

from quantdesk.core.errors import QuantdeskError, printable
from quantdesk.core.gguf.index import GGUFIndex, whole_number

T = gguf.GGMLQuantizationType

UNQUANTIZED = (T.F32, T.F16, T.BF16)


class PlanError(QuantdeskError):
    """The plan cannot be made (bad option, a type we cannot write, a shape no type fits)."""


@dataclass(frozen=True)
class FileType:
    """One level the user can pick: its llama.cpp ftype number, base tensor type and trade-off."""

    name: str
    ftype: int  # general.file_type, LLAMA_FTYPE_MOSTLY_* in llama.h
    base: T  # the type most tensors get
    tradeoff: str  # one line for the level list


FILE_TYPES: dict[str, FileType] = {
    ft.name: ft
    for ft in (
        FileType("Q2_K", 10, T.Q2_K, "Smallest; clearly worse answers. Only when nothing else fits."),
        FileType("Q3_K_S", 11, T.Q3_K, "Very small; noticeable quality loss."),
        FileType("Q3_K_M", 12, T.Q3_K, "Small; some quality loss, fine for tight memory."),
        FileType("Q3_K_L", 13, T.Q3_K, "Small; the best of the 3-bit levels."),
        FileType("Q4_0", 2, T.Q4_0, "Legacy 4-bit; Q4_K_M is better at the same size."),
        FileType("Q4_1", 3, T.Q4_1, "Legacy 4-bit with offsets; Q4_K_M is usually better."),
        FileType("Q5_0", 8, T.Q5_0, "Legacy 5-bit; Q5_K_M is better at the same size."),
        FileType("Q5_1", 9, T.Q5_1, "Legacy 5-bit with offsets; Q5_K_M is usually better."),
        FileType("Q4_K_S", 14, T.Q4_K, "Compact 4-bit; a little below Q4_K_M."),
        FileType("Q4_K_M", 15, T.Q4_K, "The usual choice: small, fast, close to the original."),
        FileType("Q5_K_S", 16, T.Q5_K, "5-bit; very close to the original."),
        FileType("Q5_K_M", 17, T.Q5_K, "5-bit with bumps; hard to tell from the original."),
        FileType("Q6_K", 18, T.Q6_K, "Near-lossless; about 40% of the F16 size."),
        FileType("Q8_0", 7, T.Q8_0, "Practically lossless; half the F16 size."),
        FileType("IQ4_NL", 25, T.IQ4_NL, "Non-linear 4-bit; good with an importance matrix."),
        FileType("IQ4_XS", 30, T.IQ4_XS, "Smallest 4-bit; best with an importance matrix."),
        FileType("F16", 1, T.F16, "Unquantized half precision: the reference, largest."),
        FileType("BF16", 32, T.BF16, "Unquantized bfloat16: the reference, largest."),
    )
}


def parse_ggml_type(name: str) -> T:
    """'q8_0' or 'Q8_0' -> GGMLQuantizationType.Q8_0, as llama-quantize reads type names."""
    try:
        # Spelled out: mypy reads T[...] on the alias as a type application, not an enum lookup.
        return gguf.GGMLQuantizationType[name.strip().upper()]
    except KeyError:
        raise PlanError(f"unknown tensor type {name!r}") from None


def file_type(name: str) -> FileType:
    """'q4_k_m' -> the FileType; the aliases Q3_K, Q4_K, Q5_K mean the _M level, as in llama-quantize."""
    key = name.strip().upper()
    key = {"Q3_K": "Q3_K_M", "Q4_K": "Q4_K_M", "Q5_K": "Q5_K_M"}.get(key, key)
    if key not in FILE_TYPES:
        raise PlanError(f"unknown level {name!r}; choose one of: {', '.join(FILE_TYPES)}")
    return FILE_TYPES[key]


def block_size(t: T) -> int:
    return gguf.GGML_QUANT_SIZES[t][0]


def row_bytes(t: T, n: int) -> int:
    """Bytes one row of n values takes in type t (n a multiple of the block size)."""
    blk, size = gguf.GGML_QUANT_SIZES[t]
    return n // blk * size


@dataclass
class PlanOptions:
    """What llama-quantize's switches change in the plan."""

    output_tensor_type: T | None = None
    token_embedding_type: T | None = None
    tensor_types: Sequence[tuple[str, T]] = ()  # (regex, type), first match wins, like --tensor-type
    pure: bool = False
    allow_requantize: bool = False
    has_imatrix: bool = False  # some rules differ when an importance matrix is given


@dataclass(frozen=True)
class ModelParams:
    """The few hyper-parameters the rules look at, read from the GGUF metadata."""

    arch: str
    n_layer: int
    n_head: int
    n_head_kv: int
    n_expert: int

    @property
    def n_gqa(self) -> int:
        return self.n_head // self.n_head_kv if self.n_head_kv else 0

    @property
    def is_70b(self) -> bool:
        # llama.cpp names a Llama with 80 layers and grouped-query attention "70B" and gives its
        # attn_v more bits; it decides the size class from the layer count the same way.
        return self.arch == "llama" and self.n_layer == 80 and self.n_head != self.n_head_kv


def _first_int(index: GGUFIndex, key: str, default: int) -> int:
    """A count from the metadata. llama.cpp refuses a model whose count is not a whole number
    (a string, a float ...), so a plan for it is refused too, with the key named."""
    value = index.get(key)
    if value is None:
        return default
    if isinstance(value, list):  # per-layer arrays: llama.cpp's n_gqa() looks at layer 0
        if not value:
            return default
        value = value[0]
    n = whole_number(value)
    if n is None or n < 0:
        raise PlanError(f"the metadata key {key} is {value!r}, not a count; the model is damaged")
    return n


def model_params(index: GGUFIndex) -> ModelParams:
    arch = str(index.get("general.architecture", "unknown"))
    n_head = _first_int(index, f"{arch}.attention.head_count", 0)
    return ModelParams(
        arch=arch,
        n_layer=_first_int(index, f"{arch}.block_count", 0),
        n_head=n_head,
        n_head_kv=_first_int(index, f"{arch}.attention.head_count_kv", n_head),
        n_expert=_first_int(index, f"{arch}.expert_count", 0),
    )


@dataclass
class TensorPlan:
    """One tensor: where it is in the source and what it becomes."""

    name: str
    shape: tuple[int, ...]  # GGUF order: shape[0] is the row length
    src_type: T
    dst_type: T
    src_offset: int  # absolute offset of the data in the source file
    src_nbytes: int
    dst_nbytes: int

    @property
    def converts(self) -> bool:
        """False when the bytes are copied as they are."""
        return self.src_type != self.dst_type

    @property
    def n_elements(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64))


@dataclass
class Plan:
    file_type: FileType
    tensors: list[TensorPlan] = field(default_factory=list)
    n_fallback: int = 0

    @property
    def data_bytes(self) -> int:
        """Tensor data of the output, padded to 32 bytes each as the writer lays it out."""
        return sum(-(-t.dst_nbytes // 32) * 32 for t in self.tensors)

    @property
    def n_weights(self) -> int:
        return sum(t.n_elements for t in self.tensors)

    @property
    def bits_per_weight(self) -> float:
        return 8.0 * sum(t.dst_nbytes for t in self.tensors) / max(1, self.n_weights)


# --- the rules ------------------------------------------------------------------------------

# Name pieces that keep a tensor in its source type (small, or sensitive, or not a matmul weight).
_NEVER_QUANTIZED = (
    "_norm.weight",
    "ffn_gate_inp.weight",
    "ffn_gate_tid2eid.weight",
    "altup",
    "laurel",
    "per_layer_model_proj",
    "ssm_conv1d",
    "shortconv.conv.weight",
    "indexer.k_proj.weight",
    "indexer.q_proj.weight",
    "time_mix_first.weight",
    "time_mix_w0.weight",
    "time_mix_w1.weight",
    "time_mix_w2.weight",
    "time_mix_v0.weight",
    "time_mix_v1.weight",
    "time_mix_v2.weight",
    "time_mix_a0.weight",
    "time_mix_a1.weight",
    "time_mix_a2.weight",
    "time_mix_g1.weight",
    "time_mix_g2.weight",
    "time_mix_decay_w1.weight",
    "time_mix_decay_w2.weight",
    "time_mix_lerp_fused.weight",
    "attn_rel_b.weight",
    ".position_embd",
    "sam.pos_embd",
    "sam.neck.",
    "sam.net_",
    ".rel_pos",
    ".patch_embd",
    ".patch_merger",
    "a.rvq.codebook",
    "mm.a.code_embd",
)


def allows_quantization(name: str, n_dims: int) -> bool:
    """Only 2-D and 3-D matmul weights are quantized; everything else keeps its type."""
    if n_dims < 2 or not name.endswith("weight"):
        return False
    if name in ("position_embd.weight", "token_types.weight"):
        return False
    return not any(piece in name for piece in _NEVER_QUANTIZED)


def category(name: str) -> str:
    """The broad role of a tensor, by name, in llama.cpp's order of checks."""
    if name == "output.weight":
        return "output"
    if name in ("token_embd.weight", "per_layer_token_embd.weight"):
        return "token_embd"
    for piece, cat in (
        ("attn_qkv.weight", "attn_qkv"),
        ("attn_kv_b.weight", "attn_kv_b"),
        ("attn_v.weight", "attn_v"),
        ("attn_k.weight", "attn_k"),
        ("attn_q.weight", "attn_q"),
        ("attn_output.weight", "attn_output"),
        ("ffn_up", "ffn_up"),
        ("ffn_gate", "ffn_gate"),
        ("ffn_down", "ffn_down"),
    ):
        if piece in name:
            return cat
    return "other"


def use_more_bits(i_layer: int, n_layer: int) -> bool:
    """The layers that get a bigger type in the _M mixes: first and last eighth, every third between."""
    return i_layer < n_layer // 8 or i_layer >= 7 * n_layer // 8 or (i_layer - n_layer // 8) % 3 == 2


_FALLBACK = {T.Q2_K: T.Q4_0, T.Q3_K: T.Q4_0, T.Q4_K: T.Q5_0, T.Q5_K: T.Q5_1, T.Q6_K: T.Q8_0, T.IQ4_XS: T.IQ4_NL}


class _Rules:
    """llama.cpp's per-tensor choice, with the counters it keeps while walking the tensors in order."""

    def __init__(self, ft: FileType, params: ModelParams, opts: PlanOptions, names: Sequence[str]):
        self.ft, self.p, self.opts = ft, params, opts
        cats = [category(n) for n in names]
        self.n_attention_wv = sum(c in ("attn_v", "attn_qkv", "attn_kv_b") for c in cats)
        self.tied_embeddings = "output" not in cats
        self.n_layer = params.n_layer
        self.i_attention_wv = 0
        self.i_ffn_down = 0
        self.n_fallback = 0
        self.patterns = [(re.compile(rx), t) for rx, t in opts.tensor_types]

    def _layer(self, counter: int, name: str) -> int:
        """The layer index: the running count, or for MoE models (experts interleaved) the name."""
        if self.p.n_expert > 1:
            m = re.match(r"blk\.(\d+)\.", name)
            if not m or int(m.group(1)) >= self.n_layer:
                raise PlanError(f"cannot tell the layer of tensor {printable(name)}")
            return int(m.group(1))
        return counter

    def choose(self, name: str, shape: tuple[int, ...], src: T) -> T:
        """The type for one tensor; call in file order (the counters depend on it)."""
        if not allows_quantization(name, len(shape)):
            return src
        cat = category(name)
        o = self.opts
        if o.token_embedding_type is not None and cat == "token_embd":
            return o.token_embedding_type
        if o.output_tensor_type is not None and cat == "output":
            return o.output_tensor_type
        new = self.ft.base
        if new in UNQUANTIZED:
            return new
        manual = False
        for rx, t in self.patterns:
            if rx.search(name):
                new, manual = t, True
                break
        if not manual and not o.pure:
            new = self._mix(name, shape, cat, new)
        return self._fallback(name, shape, new)

    def _fallback(self, name: str, shape: tuple[int, ...], t: T) -> T:
        ncols = shape[0]
        if ncols % block_size(t) == 0:
            return t
        self.n_fallback += 1
        if t not in _FALLBACK:
            # a 32-value block type has no smaller block to step down to: F16, as llama.cpp does
            if block_size(t) <= 32:
                return T.F16
            raise PlanError(
                f"{printable(name)}: rows of {ncols} values do not fit type {t.name} and there is no fallback"
            )
        t = _FALLBACK[t]
        return t if ncols % block_size(t) == 0 else T.F16

    def _mix(self, name: str, shape: tuple[int, ...], cat: str, new: T) -> T:
        ft, p = self.ft.name, self.p
        if cat == "output" or (self.tied_embeddings and cat == "token_embd"):
            if self.opts.output_tensor_type is not None:
                return self.opts.output_tensor_type
            if p.arch == "falcon" or shape[0] % block_size(new) != 0:
                return T.Q8_0
            return new if new == T.Q8_0 else T.Q6_K
        if cat == "token_embd":
            if self.opts.token_embedding_type is not None:
                return self.opts.token_embedding_type
            return new
        if cat in ("attn_v", "attn_qkv", "attn_kv_b"):
            if ft == "Q2_K":
                new = T.Q4_K if p.n_gqa >= 4 else T.Q3_K
            elif ft == "Q3_K_M":
                new = T.Q5_K if self.i_attention_wv < 2 else T.Q4_K
            elif ft == "Q3_K_L" or ft in ("IQ4_NL", "IQ4_XS") and p.n_gqa >= 4:
                new = T.Q5_K
            elif ft in ("Q4_K_M", "Q5_K_M") and use_more_bits(self.i_attention_wv, self.n_attention_wv):
                new = T.Q6_K
            elif ft == "Q4_K_S" and self.i_attention_wv < 4:
                new = T.Q5_K
            if p.is_70b and new in (T.Q3_K, T.Q4_K):
                new = T.Q5_K
            if p.n_expert == 8:
                new = T.Q8_0
            self.i_attention_wv += 1
            return new
        if cat == "attn_k":
            return T.Q8_0 if p.n_expert == 8 else new
        if cat == "ffn_down":
            i, n = self._layer(self.i_ffn_down, name), self.n_layer
            falcon = p.arch == "falcon"
            if ft == "Q2_K":
                new = T.Q3_K
            elif ft == "Q3_K_M":
                new = T.Q5_K if i < n // 16 else (T.Q4_K if not falcon or use_more_bits(i, n) else T.Q3_K)
            elif ft == "Q3_K_L":
                new = T.Q4_K if falcon else T.Q5_K
            elif ft == "Q4_K_M":
                if falcon:
                    new = T.Q6_K if i < n // 16 else (T.Q5_K if use_more_bits(i, n) else T.Q4_K)
                elif use_more_bits(i, n):
                    new = T.Q6_K
            elif i < n // 8 and ft in ("IQ4_NL", "IQ4_XS") and not self.opts.has_imatrix:
                new = T.Q5_K
            elif ft == "Q5_K_M" and use_more_bits(i, n):
                new = T.Q6_K
            elif ft == "Q4_K_S" and not falcon and i < n // 8:
                new = T.Q5_K
            elif ft in ("Q4_0", "Q5_0") and self.opts.has_imatrix and i < n // 8:
                # with an imatrix, the first few ffn_down get the offset variant, as llama.cpp does
                new = T.Q4_1 if ft == "Q4_0" else T.Q5_1
            self.i_ffn_down += 1
            return new
        if cat == "attn_output":
            if p.arch != "falcon":
                if p.n_expert == 8:
                    if ft in ("Q2_K", "Q3_K_S", "Q3_K_M", "IQ4_NL", "Q4_K_S", "Q4_K_M", "IQ4_XS"):
                        new = T.Q5_K
                else:
                    new = {"Q2_K": T.Q3_K, "Q3_K_M": T.Q4_K, "Q3_K_L": T.Q5_K}.get(ft, new)
            elif ft == "Q3_K_L":
                new = T.Q4_K
            return new
        # llama.cpp also has rules for attn_qkv alone (Q4_K_M -> Q5_K ...), but it checks the
        # attn_v family first, which includes attn_qkv, so those rules never apply; neither here.
        return new


def _layer_of(name: str) -> int:
    m = re.match(r"blk\.(\d+)\.", name)
    return int(m.group(1)) if m else -1


def output_order(names: Sequence[str]) -> list[int]:
    """llama-quantize writes tensors sorted by layer (non-layer tensors first), then by name."""
    return sorted(range(len(names)), key=lambda i: (_layer_of(names[i]), names[i].encode()))


def ggml_shape(shape: tuple[int, ...]) -> tuple[int, ...]:
    """The shape as llama.cpp sees and writes it: trailing dimensions of 1 dropped (a [256, 1]
    tensor is 1-D to ggml, so it is not quantized and is written with one dimension)."""
    dims = list(shape) or [1]
    while len(dims) > 1 and dims[-1] == 1:
        dims.pop()
    return tuple(dims)


def make_plan(index: GGUFIndex, ft: FileType | str, opts: PlanOptions | None = None) -> Plan:
    """The per-tensor plan for this model at this level, in the order the output lists them.

    Raises PlanError for what the user must change (e.g. a quantized source without
    allow_requantize), before anything is written."""
    if isinstance(ft, str):
        ft = file_type(ft)
    opts = opts or PlanOptions()
    src = [index.tensors[i] for i in output_order([t.name for t in index.tensors])]
    rules = _Rules(ft, model_params(index), opts, [t.name for t in src])
    plan = Plan(file_type=ft)
    for t in src:
        if t.n_elements == 0:
            raise PlanError(f"{printable(t.name)}: the tensor is empty (shape {list(t.shape)}); the model is damaged")
        shape = ggml_shape(t.shape)
        dst = rules.choose(t.name, shape, t.type)
        if dst != t.type and t.type not in UNQUANTIZED and not opts.allow_requantize:
            raise PlanError(
                f"the source is already quantized ({printable(t.name)} is {t.type.name}); "
                "requantizing loses quality; allow it explicitly (--allow-requantize) to go on"
            )
        n_rows = int(np.prod(shape[1:], dtype=np.int64)) if len(shape) > 1 else 1
        if shape[0] % block_size(dst):
            raise PlanError(f"{printable(t.name)}: rows of {shape[0]} values do not fit type {dst.name}")
        plan.tensors.append(
            TensorPlan(
                name=t.name,
                shape=shape,
                src_type=t.type,
                dst_type=dst,
                src_offset=t.offset,
                src_nbytes=t.nbytes,
                dst_nbytes=t.nbytes if dst == t.type else n_rows * row_bytes(dst, shape[0]),
            )
        )
    plan.n_fallback = rules.n_fallback
    return plan
