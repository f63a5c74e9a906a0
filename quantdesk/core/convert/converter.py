"""Turning a Hugging Face checkpoint folder into a GGUF file, as one cancellable job.

Order of work, so that bad input never leaves anything behind:
1. prepare(): read config.json, pick the architecture family, index the safetensors (headers
   only), refuse unsupported dtypes, check the tokenizer, plan every output tensor and build all
   metadata. Nothing is written yet.
2. write(): the file is written under a temporary name in the destination folder (quantdesk.core.
   quant_writer.AtomicOutput) one tensor at a time, each read, transformed and converted on its
   own, so memory stays bounded by the largest tensor. It gets its name only when complete.
For a quantized level (Q4_K_M, ...) a temporary F16 GGUF is written first, in the destination
folder, handed to quantdesk.core.quantize.run, and removed whatever happens.
"""

from __future__ import annotations

import json
import math
import os
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gguf
import numpy as np

from quantdesk.core.convert.errors import ConvertError
from quantdesk.core.convert.family import Family, PlannedTensor
from quantdesk.core.convert.gemma import Gemma2Family, Gemma3Family
from quantdesk.core.convert.llama import LlamaFamily, MistralFamily
from quantdesk.core.convert.phi3 import Phi3Family
from quantdesk.core.convert.qwen import Qwen2Family, Qwen3Family
from quantdesk.core.convert.safetensors_file import check_dtypes, index_checkpoint
from quantdesk.core.errors import printable
from quantdesk.core.jobs import CancelToken, Job, Progress, ProgressCallback

FAMILIES: list[type[Family]] = [
    LlamaFamily,
    MistralFamily,
    Qwen2Family,
    Qwen3Family,
    Gemma2Family,
    Gemma3Family,
    Phi3Family,
]
ARCHITECTURES: dict[str, type[Family]] = {a: f for f in FAMILIES for a in f.hf_architectures}

FLOAT_OUTTYPES = {
    "f32": (gguf.LlamaFileType.ALL_F32, gguf.GGMLQuantizationType.F32),
    "f16": (gguf.LlamaFileType.MOSTLY_F16, gguf.GGMLQuantizationType.F16),
    "bf16": (gguf.LlamaFileType.MOSTLY_BF16, gguf.GGMLQuantizationType.BF16),
}


MAX_DIMS = 4  # GGML_MAX_DIMS


def supported_architectures() -> list[str]:
    return sorted(ARCHITECTURES)


def is_checkpoint(folder: Path) -> bool:
    """A folder that looks like a Hugging Face checkpoint (for the Library to offer Quantize)."""
    folder = Path(folder)
    return (folder / "config.json").is_file() and (
        (folder / "model.safetensors").is_file() or (folder / "model.safetensors.index.json").is_file()
    )


@dataclass
class CheckpointInfo:
    """What the Library shows for a checkpoint folder, and whether Quantize can be offered."""

    folder: Path
    architecture: str | None  # as config.json names it, e.g. "LlamaForCausalLM"
    gguf_architecture: str | None  # what the GGUF will say, e.g. "llama"; None if unsupported
    parameters: int
    dtypes: list[str]  # safetensors dtypes present, e.g. ["BF16"]
    size_bytes: int  # of the weights
    problem: str | None  # why it cannot be converted (one line), or None

    @property
    def convertible(self) -> bool:
        return self.problem is None


def describe_checkpoint(folder: Path) -> CheckpointInfo:
    """Headers only (fast, no weights read); never raises for bad input, says why in `problem`."""
    folder = Path(folder)
    arch: str | None = None
    gguf_arch: str | None = None
    params, size, dtypes = 0, 0, []
    try:
        config = read_config(folder)
        archs = config.get("architectures")
        arch = archs[0] if isinstance(archs, list) and archs else None
        family = family_for(folder, config)
        gguf_arch = gguf.MODEL_ARCH_NAMES[family.gguf_arch]
        tensors = index_checkpoint(folder)
        params = sum(math.prod(t.shape) for t in tensors.values())
        size = sum(t.nbytes for t in tensors.values())
        dtypes = sorted({t.dtype for t in tensors.values()})
        check_dtypes(tensors)
        family.check_tokenizer()
    except ConvertError as e:
        return CheckpointInfo(folder, arch, gguf_arch, params, dtypes, size, str(e))
    return CheckpointInfo(folder, arch, gguf_arch, params, dtypes, size, None)


@dataclass
class ConvertRequest:
    source: Path  # the checkpoint folder
    output: Path
    outtype: str = "f16"  # f32, f16, bf16, or a quantization level such as Q4_K_M
    overwrite: bool = False

    def __post_init__(self) -> None:
        self.source, self.output = Path(self.source), Path(self.output)


@dataclass
class ConvertResult:
    output: Path
    architecture: str  # the GGUF architecture written, e.g. "llama"
    outtype: str
    n_tensors: int
    output_bytes: int


@dataclass
class Prepared:
    request: ConvertRequest
    family: Family
    tensors: list[PlannedTensor]
    writer: gguf.GGUFWriter
    qtypes: list[gguf.GGMLQuantizationType] = field(default_factory=list)
    nbytes: list[int] = field(default_factory=list)  # output bytes of each tensor


def read_config(folder: Path) -> dict[str, Any]:
    path = folder / "config.json"
    if not folder.is_dir():
        raise ConvertError(f"{folder}: not a folder")
    if not path.is_file():
        raise ConvertError(f"{folder.name}: no config.json (not a Hugging Face checkpoint folder?)")
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, RecursionError) as e:
        raise ConvertError(f"config.json: not valid JSON ({type(e).__name__})") from None
    except OSError as e:
        raise ConvertError(f"config.json: cannot read ({e.strerror})") from None
    if not isinstance(config, dict):
        raise ConvertError("config.json: not a JSON object")
    return config


def family_for(folder: Path, config: dict[str, Any]) -> Family:
    archs = config.get("architectures") or []
    arch = archs[0] if isinstance(archs, list) and archs else None
    text = config.get("text_config")
    if isinstance(text, dict) and isinstance(text.get("architectures"), list) and text["architectures"]:
        arch = text["architectures"][0]
    if not isinstance(arch, str) or arch not in ARCHITECTURES:  # config.json may hold anything
        raise ConvertError(
            f"architecture {printable(arch or '(none given)')} is not supported; "
            f"supported: {', '.join(supported_architectures())}"
        )
    return ARCHITECTURES[arch](folder, config)


def _output_qtype(p: PlannedTensor, default: gguf.GGMLQuantizationType) -> gguf.GGMLQuantizationType:
    return gguf.GGMLQuantizationType.F32 if p.force_f32 else default


def prepare(request: ConvertRequest, float_outtype: str | None = None) -> Prepared:
    """Every check and all metadata, before a byte is written."""
    outtype = (float_outtype or request.outtype).lower()
    if outtype not in FLOAT_OUTTYPES:
        raise ConvertError(f"unknown output type {request.outtype!r}")
    ftype, default_qtype = FLOAT_OUTTYPES[outtype]
    folder = request.source
    config = read_config(folder)
    family = family_for(folder, config)
    family.check_tokenizer()
    source_tensors = index_checkpoint(folder)
    check_dtypes(source_tensors)
    planned = family.plan(source_tensors)

    w = gguf.GGUFWriter(path=None, arch=gguf.MODEL_ARCH_NAMES[family.gguf_arch])
    family.early_keys(w)
    qtypes, sizes = [], []
    dtype: np.dtype[Any]
    for p in planned:
        if len(p.shape) > MAX_DIMS:
            # GGUF (ggml) tensors have at most 4 dimensions: our own reader and llama.cpp refuse such
            # a file, and nothing we could not read back may be written
            source = p.source.name if p.source is not None else p.name
            raise ConvertError(
                f"tensor {source!r} has {len(p.shape)} dimensions {list(p.shape)}; a GGUF tensor has at most {MAX_DIMS}"
            )
        qtype = _output_qtype(p, default_qtype)
        if qtype == gguf.GGMLQuantizationType.F32:
            nbytes, dtype, shape = 4 * math.prod(p.shape), np.dtype(np.float32), p.shape
        elif qtype == gguf.GGMLQuantizationType.F16:
            nbytes, dtype, shape = 2 * math.prod(p.shape), np.dtype(np.float16), p.shape
        else:  # BF16 is written as raw uint8 bytes, two per value
            shape = (*p.shape[:-1], p.shape[-1] * 2)
            nbytes, dtype = math.prod(shape), np.dtype(np.uint8)
        w.add_tensor_info(p.name, shape, dtype, nbytes, raw_dtype=qtype)
        qtypes.append(qtype)
        sizes.append(nbytes)

    w.add_type(gguf.GGUFType.MODEL)
    _set_general_metadata(w, folder)
    try:
        family.set_parameters(w, ftype)
    except KeyError as e:
        raise ConvertError(f"config.json: {e.args[0]!r} is missing") from None
    w.add_quantization_version(gguf.GGML_QUANT_VERSION)
    try:
        family.set_vocab(w)
    except (KeyError, TypeError, ValueError, AttributeError, IndexError) as e:
        # tokenizer files are JSON anyone can write: a list where an object belongs, an id that is
        # not a number ... (the reference stops with a traceback)
        raise ConvertError(f"the tokenizer files are malformed ({type(e).__name__}: {e})"[:200]) from None
    _check_metadata(w)
    return Prepared(request, family, planned, w, qtypes, sizes)


def _check_metadata(w: gguf.GGUFWriter) -> None:
    """Every key must pack as its GGUF type before the file is started: config.json may hold a
    string where a number belongs ("rope_theta": "big"), which gguf's writer finds only mid-write."""
    for kv_data in w.kv_data:
        for key, val in kv_data.items():
            try:
                w._pack_val(val.value, val.type, add_vtype=True, sub_type=val.sub_type)
            except (struct.error, TypeError, ValueError, OverflowError):
                raise ConvertError(
                    f"the checkpoint's config files give {key} the value {val.value!r:.60}, "
                    f"which is not a valid {val.type.name.lower()}"
                ) from None


def _set_general_metadata(w: gguf.GGUFWriter, folder: Path) -> None:
    """general.* keys from the model card, config and folder name, with gguf's own Metadata."""
    total, shared, expert, expert_count = w.get_total_parameter_count()
    gen_file = folder / "generation_config.json"
    gen: Any = None
    if gen_file.is_file():
        try:
            gen = json.loads(gen_file.read_text(encoding="utf-8"))
        except (ValueError, RecursionError, OSError):
            gen = None  # unreadable: left out, as when there is none
        if gen is not None and not isinstance(gen, dict):  # gguf's Metadata and we call .get on it
            raise ConvertError("generation_config.json: not a JSON object")
    try:
        meta = gguf.Metadata.load(None, folder, None, total)
    except Exception as e:  # a model card gguf cannot parse (YAML, JSON) is the user's file, not our bug
        problem = " ".join(str(e).split())  # YAML errors span lines; the message is one
        raise ConvertError(
            f"cannot read the model card or config for general metadata ({type(e).__name__}: {problem})"[:200]
        ) from None
    if meta.sampling_penalty_repeat is None and isinstance(gen, dict):
        # the reference's gguf-py also reads transformers' name for the repeat penalty
        meta.sampling_penalty_repeat = gen.get("penalty_repeat", gen.get("repetition_penalty"))
    if meta.name is None:
        meta.name = folder.name
    if meta.size_label is None and total > 0:
        meta.size_label = gguf.size_label(total, shared, expert, expert_count)
    meta.set_gguf_meta_model(w)


def convert_slice(data: np.ndarray, qtype: gguf.GGMLQuantizationType) -> np.ndarray:
    """One slice of rows in the output type (rounding exactly as the reference's numpy/gguf path)."""
    if qtype == gguf.GGMLQuantizationType.F32:
        return np.ascontiguousarray(data, dtype=np.float32)
    if qtype == gguf.GGMLQuantizationType.F16:
        with np.errstate(over="ignore"):  # a value beyond F16's range becomes Inf, refused by write()
            return np.ascontiguousarray(data, dtype=np.float16)
    return gguf.quants.quantize(np.ascontiguousarray(data), qtype)


def _check_finite(p: PlannedTensor, part: np.ndarray, blob: np.ndarray, qtype: gguf.GGMLQuantizationType) -> None:
    """Refuse NaN and Inf weights (llama-quantize refuses the file later anyway, and a chat with
    it only gives garbage), and values too large for F16, which would become Inf."""
    from quantdesk.core.quantize.run import first_nonfinite_byte

    if first_nonfinite_byte(blob, qtype) is None:
        return
    source = p.source.name if p.source is not None else p.name
    if not np.isfinite(part).all():
        raise ConvertError(f"tensor {source!r} holds NaN or Inf values; the checkpoint is damaged")
    raise ConvertError(f"tensor {source!r} holds values too large for {qtype.name}; convert to bf16 or f32 instead")


def planned_bytes(prepared: Prepared) -> int:
    """Roughly the size of the file (tensor data plus a generous allowance for metadata)."""
    return sum(ti.nbytes for t in prepared.writer.tensors for ti in t.values()) + (16 << 20)


def _replaces_checkpoint_file(output: Path, folder: Path) -> bool:
    """True when writing `output` would replace a file the checkpoint is made of (weights, config,
    tokenizer, model card), by its own name, a symlink or a hard link. A GGUF beside them is not."""
    try:
        return output.exists() and any(
            f.is_file() and not f.name.lower().endswith(".gguf") and os.path.samefile(f, output)
            for f in folder.iterdir()
        )
    except OSError:
        return False


def check_destination(output: Path, overwrite: bool, needed: int, source: Path | None = None) -> None:
    from quantdesk.core.quantize.run import free_bytes
    from quantdesk.core.units import human_bytes

    if not output.parent.is_dir():
        raise ConvertError(f"{output.parent}: no such folder")
    try:
        output.exists()
    except OSError as e:  # e.g. a name longer than the file system allows
        raise ConvertError(f"{output.name}: {e.strerror or e}") from None
    if source is not None and _replaces_checkpoint_file(output, source):
        raise ConvertError(f"{output.name}: the output would replace a file of the checkpoint; choose another name")
    if output.exists() and not overwrite:
        raise ConvertError(f"{output} already exists")
    if output.is_dir():
        raise ConvertError(f"{output} is a folder")
    if not os.access(output.parent, os.W_OK):  # also a read-only file system
        raise ConvertError(f"{output.parent}: no permission to write here")
    free = free_bytes(output.parent)
    if free < needed:
        raise ConvertError(
            f"not enough disk space in {output.parent}: {human_bytes(needed)} needed, {human_bytes(free)} free"
        )


def _source_share(p: PlannedTensor, written: int, expected: int) -> int:
    """Source bytes of `p` accounted for once `written` of its `expected` output bytes are out."""
    return 0 if p.source is None or not expected else p.source.nbytes * written // expected


def write(
    prepared: Prepared, report: ProgressCallback, cancel: CancelToken, stage: str = "Converting"
) -> ConvertResult:
    """Write the planned GGUF to request.output atomically; nothing is left there on failure."""
    from quantdesk.core.quantize.writer import AtomicOutput

    req, w = prepared.request, prepared.writer
    total = sum(p.source.nbytes if p.source is not None else 0 for p in prepared.tensors) or 1
    check_destination(req.output, req.overwrite, planned_bytes(prepared), req.source)
    try:
        out = AtomicOutput(req.output, overwrite=req.overwrite)
    except OSError as e:
        raise ConvertError(f"cannot write in {req.output.parent}: {e.strerror or e}") from None
    try:
        # gguf annotates fout as BufferedWriter, but only writes, tells and flushes: any binary file does
        # (and os.fdopen gives a BufferedWriter at runtime; typeshed only says BinaryIO).
        w.fout = [out.file]  # type: ignore[list-item]
        w.state = gguf.gguf_writer.WriterState.EMPTY
        w.write_header_to_file()
        w.write_kv_data_to_file()
        w.write_ti_data_to_file()
        done = 0
        n = len(prepared.tensors)
        f = out.file
        for i, (p, qtype) in enumerate(zip(prepared.tensors, prepared.qtypes, strict=True)):
            label = f"{stage} {p.name} ({i + 1}/{n})"
            expected = prepared.nbytes[i]
            w.write_padding(f, f.tell())  # each tensor starts aligned, as its offset says
            written = 0
            for part in p.slices():
                cancel.check()
                report(Progress(done + _source_share(p, written, expected), total, "B", label, stage))
                blob = convert_slice(part, qtype)
                _check_finite(p, part, blob, qtype)
                f.write(blob.data.cast("B"))  # no copy of the slice
                written += blob.nbytes
            if written != expected:
                raise ConvertError(f"tensor {p.name}: wrote {written} bytes, expected {expected}")
            w.write_padding(f, written)
            done += p.source.nbytes if p.source is not None else 0
        report(Progress(total, total, "B", "Writing to disk", stage))
        cancel.check()
        out.commit()
    except OSError as e:  # a full disk or a vanished folder: the user's to fix, in one line
        out.abort()
        raise ConvertError(f"writing {req.output.name} failed: {e.strerror or e}") from None
    except BaseException:
        out.abort()
        raise
    finally:
        w.fout = None
    return ConvertResult(
        req.output,
        gguf.MODEL_ARCH_NAMES[prepared.family.gguf_arch],
        req.outtype,
        len(prepared.tensors),
        req.output.stat().st_size,
    )


def convert(
    request: ConvertRequest, report: ProgressCallback | None = None, cancel: CancelToken | None = None
) -> ConvertResult:
    """Convert in the calling thread (scripts, tests): F32/F16/BF16 directly, other levels via F16."""
    report = report or (lambda p: None)
    cancel = cancel or CancelToken()
    if request.outtype.lower() in FLOAT_OUTTYPES:
        report(Progress(0, 0, "B", "Reading the checkpoint", "Converting"))
        return write(prepare(request), report, cancel)
    return _convert_quantized(request, report, cancel)


def _convert_quantized(request: ConvertRequest, report: ProgressCallback, cancel: CancelToken) -> ConvertResult:
    from quantdesk.core.quantize.plan import file_type
    from quantdesk.core.quantize.run import QuantizeError, QuantizeRequest, quantize_file
    from quantdesk.core.quantize.writer import temp_name_for

    try:
        file_type(request.outtype)
    except Exception:
        raise ConvertError(
            f"unknown output type {request.outtype!r}; use f32, f16, bf16 or a level such as Q4_K_M"
        ) from None
    check_destination(request.output, request.overwrite, 0, request.source)
    report(Progress(0, 0, "B", "Reading the checkpoint", "Converting"))
    prepared = prepare(request, float_outtype="f16")
    # room for the F16 intermediate and the quantized result side by side (the result is smaller)
    check_destination(request.output, request.overwrite, 2 * planned_bytes(prepared), request.source)
    # The intermediate sits beside the output (same disk), hidden, and is always removed; if the
    # process is killed, its name lets the next output written to that folder remove it.
    temp = temp_name_for(request.output.with_name(request.output.name + ".f16"))
    inner = ConvertRequest(request.source, temp, "f16", overwrite=True)
    prepared.request = inner
    try:
        try:
            write(prepared, report, cancel)
        except ConvertError as e:  # name the user's output, not our hidden intermediate
            raise ConvertError(str(e).replace(temp.name, f"the F16 intermediate of {request.output.name}")) from None
        try:
            result = quantize_file(
                QuantizeRequest(source=temp, output=request.output, level=request.outtype, overwrite=request.overwrite),
                report,
                cancel,
            )
        except QuantizeError as e:
            raise ConvertError(str(e)) from None
        except OSError as e:  # a full disk while quantizing: the user's to fix, in one line
            raise ConvertError(f"writing {request.output.name} failed: {e.strerror or e}") from None
    finally:
        try:
            temp.unlink(missing_ok=True)
        except OSError:
            pass  # e.g. a read-only folder, where it was never made; a later output sweeps a leftover
    _card_names_the_checkpoint(request)
    return ConvertResult(
        request.output,
        gguf.MODEL_ARCH_NAMES[prepared.family.gguf_arch],
        request.outtype,
        result.n_tensors,
        result.output_bytes,
    )


def _card_names_the_checkpoint(request: ConvertRequest) -> None:
    """The quantizer's card names its source, our deleted intermediate: name the checkpoint instead."""
    from quantdesk.core.model_card import ModelCard, read_card, write_card

    card = read_card(request.output)
    if not card:
        return
    card["source"] = str(request.source)
    card["options"] = {
        **(card.get("options") or {}),
        "converted_from": "safetensors checkpoint",
        "source_sha256_of": "the intermediate F16 GGUF",
    }
    try:
        write_card(ModelCard(**card), request.output)
    except (OSError, TypeError):
        pass  # the model is fine; a less precise card is not worth failing for


def convert_job(request: ConvertRequest) -> Job[ConvertResult]:
    """The job the CLI and the app run. Stages: "Converting", then "Quantizing" for quant levels."""
    level = request.outtype.upper() if request.outtype.lower() not in FLOAT_OUTTYPES else request.outtype.upper()
    return Job(f"Convert {request.source.name} to {level}", lambda report, cancel: convert(request, report, cancel))
