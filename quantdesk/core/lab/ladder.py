"""The quant ladder: what each quantization level of a model costs, measured on this machine.

A ladder takes one source model (ideally its F16/BF16 GGUF) and a list of levels. Each level is
quantized from the source with our own quantizer (kept in the Lab's cache, so a second run is
quick), then the source and every level read the same evaluation text through llama.cpp:

- perplexity: exp of the mean negative log-likelihood of each next token. The text is cut into
  chunks of `context` tokens and only the second half of each chunk is scored, so every scored
  token has at least context/2 tokens before it (what llama.cpp's perplexity tool does).
- KL divergence from the source: how far each level's next-token distribution moved from the
  source's, in nats, averaged over the scored tokens (and its 99th percentile: a level can be
  fine on average and badly wrong on a few tokens).
- top-token agreement: the share of scored tokens where the level's most likely next token is
  the source's.
- speed: tokens per second reading a chunk of the text (prompt processing) and generating,
  timed with the model loaded as Chat loads it.

The source's log-probabilities are kept (as float16) while the levels run, so only one model is
in memory at a time. Results are saved as JSON in the data folder's lab/ and listed by the Lab.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import tempfile
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from quantdesk.core import paths, renames
from quantdesk.core.errors import QuantdeskError
from quantdesk.core.gguf.index import read_index
from quantdesk.core.gguf.reader import GGUFError, file_type_name
from quantdesk.core.jobs import CancelToken, Job, Progress, ProgressCallback
from quantdesk.core.quantize.plan import PlanError, file_type
from quantdesk.core.resources import read_resource_text, resource

if TYPE_CHECKING:  # llama_cpp is imported when a ladder runs, not at startup
    from llama_cpp import Llama

# The evaluation text shipped with the app (original prose on varied topics, about 3,000 tokens).
BUILTIN_TEXT = ("lab", "eval_text.txt")  # in quantdesk/resources/

DEFAULT_LEVELS = ("Q8_0", "Q6_K", "Q5_K_M", "Q4_K_M", "Q3_K_M", "Q2_K")
DEFAULT_TOKENS = 1024
DEFAULT_CONTEXT = 512
GENERATE_PROMPT = "The history of the printing press"


class LabError(QuantdeskError):
    """A ladder cannot run as asked; the message is one line for the user."""


@dataclass
class LadderRequest:
    source: Path  # the reference model: a GGUF, ideally F16/BF16/F32
    levels: list[str] = field(default_factory=lambda: list(DEFAULT_LEVELS))  # quantized from source
    tokens: int = DEFAULT_TOKENS  # evaluation tokens read by every model (whole chunks of `context`)
    context: int = DEFAULT_CONTEXT  # chunk length; the second half of each chunk is scored
    threads: int | None = None  # None: what llama.cpp and the quantizer pick
    gpu_layers: int = 0  # layers offloaded to a GPU while measuring (0: CPU only)
    generate_tokens: int = 32  # tokens generated for the generation-speed figure
    imatrix: Path | None = None  # used when quantizing the levels
    text: str | None = None  # evaluation text; None: the built-in one


@dataclass
class LevelResult:
    level: str  # "Q4_K_M", or the source's own type for the source row, e.g. "F16"
    path: str
    is_source: bool
    file_bytes: int
    bits_per_weight: float  # tensor data bits per weight, as llama.cpp reports it
    perplexity: float
    kl_mean: float  # nats; 0 for the source
    kl_p99: float
    top1_agreement: float  # 0..1; 1 for the source
    prompt_tps: float  # tokens per second reading the text
    generate_tps: float  # tokens per second generating


@dataclass
class LadderResult:
    model: str  # the source file's name
    source: str
    created: str  # ISO 8601, UTC
    tokens_scored: int
    context: int
    chunks: int
    threads: int | None
    gpu_layers: int
    levels: list[LevelResult]  # the source first, then by size, largest first
    path: str | None = None  # where it is saved (set by save_result / load_result)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d.pop("path")
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> LadderResult:
        levels = [LevelResult(**lv) for lv in d["levels"]]
        return cls(**{**{k: v for k, v in d.items() if k != "levels"}, "levels": levels})


# Mean KL divergence (nats) below which a level reads as close to the original, a small loss, a
# noticeable loss; above the last, a large loss. From how llama.cpp's users read it: Q8_0 is
# typically near 0.001, Q4_K_M a few hundredths, Q2_K several tenths.
CLOSE_KL, SMALL_KL, NOTICEABLE_KL = 0.01, 0.1, 0.3


def quality_words(row: LevelResult) -> str:
    """The KL divergence in words people can act on (the CLI and the Lab page say the same)."""
    if row.is_source:
        return "the original"
    if row.kl_mean < CLOSE_KL:
        return "close to the original"
    if row.kl_mean < SMALL_KL:
        return "small loss"
    if row.kl_mean < NOTICEABLE_KL:
        return "noticeable loss"
    return "large loss"


# --- the evaluation text ------------------------------------------------------------------------


def builtin_text() -> str:
    try:
        return read_resource_text(*BUILTIN_TEXT)
    except OSError as e:
        raise LabError(
            f"the built-in evaluation text is missing ({resource(*BUILTIN_TEXT)}): reinstall Quantdesk"
        ) from e


def chunks_of(tokens: list[int], context: int, wanted_tokens: int, bos: int | None) -> list[list[int]]:
    """Whole chunks of `context` tokens, as many as `wanted_tokens` asks for and the text holds.

    Each chunk starts with the BOS token where the model uses one (it replaces the chunk's first
    text token, as in llama.cpp's perplexity tool), so every chunk reads like a fresh document."""
    n = min(max(1, wanted_tokens // context), len(tokens) // context)
    out = []
    for c in range(n):
        chunk = list(tokens[c * context : (c + 1) * context])
        if bos is not None:
            chunk[0] = bos
        out.append(chunk)
    return out


# --- the metrics (numpy only: tested on their own) ----------------------------------------------


def log_softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise log-probabilities, float32, computed stably (max subtracted, logsumexp in float64)."""
    x = np.asarray(logits, dtype=np.float32)
    m = x.max(axis=-1, keepdims=True)
    shifted = x - m
    lse = np.log(np.exp(shifted.astype(np.float64)).sum(axis=-1, keepdims=True)).astype(np.float32)
    return shifted - lse


@dataclass
class ChunkScores:
    """What one model's log-probabilities say over the scored positions of one chunk."""

    nll: np.ndarray  # -log p(actual next token), per position
    kl: np.ndarray | None  # KL(reference || this model), per position; None without a reference
    same_top: np.ndarray | None  # bool per position: the same most likely token as the reference


def score_chunk(logp: np.ndarray, next_tokens: np.ndarray, ref_logp: np.ndarray | None) -> ChunkScores:
    """Per-position scores from log-probabilities `logp` (positions x vocab) of the model being
    measured and, when given, the reference's (`ref_logp`, the same shape)."""
    nll = -logp[np.arange(len(next_tokens)), next_tokens].astype(np.float64)
    if ref_logp is None:
        return ChunkScores(nll, None, None)
    ref = np.asarray(ref_logp, dtype=np.float32)
    kl = (np.exp(ref.astype(np.float64)) * (ref - logp)).sum(axis=-1)
    return ChunkScores(nll, np.maximum(kl, 0.0), ref.argmax(axis=-1) == logp.argmax(axis=-1))


def perplexity(nll: np.ndarray) -> float:
    return float(math.exp(float(np.mean(nll)))) if len(nll) else float("nan")


# --- measuring one model --------------------------------------------------------------------------


@dataclass
class Measurement:
    perplexity: float
    kl_mean: float
    kl_p99: float
    top1_agreement: float
    prompt_tps: float
    generate_tps: float
    tokens_scored: int


EVAL_SLICE = 128  # tokens per llama.cpp call: the cancel is checked between slices


def _load(path: Path, request: LadderRequest, logits_all: bool) -> Llama:
    """The model as llama.cpp runs it: with every position's logits for the quality pass, and as
    Chat loads it (the same thread count, logits for the last position only) for the speed pass."""
    import llama_cpp

    from quantdesk.core.chat.engine import ChatSettings

    threads = ChatSettings(threads=request.threads or 0).resolved_threads()
    try:
        return llama_cpp.Llama(
            model_path=str(path),
            n_ctx=request.context,
            n_batch=request.context,
            logits_all=logits_all,
            n_gpu_layers=request.gpu_layers,
            n_threads=threads,
            n_threads_batch=threads,
            verbose=False,
        )
    except (ValueError, RuntimeError, OSError) as e:
        raise LabError(f"{path.name}: llama.cpp could not load it ({e})") from None


def _read(llm: Llama, chunk: list[int], cancel: CancelToken) -> float:
    """Feed one chunk from an empty context, a slice at a time (the cancel is checked between
    slices); returns the seconds llama.cpp took."""
    llm.reset()
    spent = 0.0
    for a in range(0, len(chunk), EVAL_SLICE):
        started = time.perf_counter()
        llm.eval(chunk[a : a + EVAL_SLICE])
        spent += time.perf_counter() - started
        cancel.check()
    return spent


def measure(
    path: Path,
    chunks: list[list[int]],
    request: LadderRequest,
    reference: np.ndarray | None,
    keep: np.ndarray | None,
    report: ProgressCallback,
    cancel: CancelToken,
    label: str,
) -> Measurement:
    """Read every chunk through the model at `path` and score the second half of each, then time it.

    `reference` holds the source's log-probabilities (chunks x positions x vocab) to compare with;
    `keep`, when given, receives this model's (that is how the source's are recorded).

    Speed is timed in a second pass, loaded the way Chat loads a model: the quality pass asks
    llama.cpp for the next-token distribution at every position, which costs a vocabulary-sized
    matrix product per token that normal use does not pay."""
    context = request.context
    first = context // 2
    steps = len(chunks) + 2
    stage = f"Measuring {label}"
    nll: list[np.ndarray] = []
    kl: list[np.ndarray] = []
    same: list[np.ndarray] = []
    llm = _load(path, request, logits_all=True)
    try:
        for c, chunk in enumerate(chunks):
            cancel.check()
            report(Progress(c, steps, "", f"{label}: reading chunk {c + 1} of {len(chunks)}", stage))
            _read(llm, chunk, cancel)
            logp = log_softmax(llm.scores[first : context - 1])
            if reference is not None and logp.shape[-1] != reference.shape[-1]:
                raise LabError(f"{path.name} has another vocabulary than the source: it cannot be compared")
            if keep is not None:
                keep[c] = logp
            s = score_chunk(logp, np.asarray(chunk[first + 1 : context]), None if reference is None else reference[c])
            nll.append(s.nll)
            if s.kl is not None:
                assert s.same_top is not None  # score_chunk sets both with a reference, neither without
                kl.append(s.kl)
                same.append(s.same_top)
    finally:
        llm.close()
    cancel.check()
    report(Progress(len(chunks), steps, "", f"{label}: timing", stage))
    llm = _load(path, request, logits_all=False)
    try:
        _read(llm, chunks[0][:EVAL_SLICE], cancel)  # warm-up: first-use costs are not the model's speed
        read_s = _read(llm, chunks[0], cancel)
        report(Progress(len(chunks) + 1, steps, "", f"{label}: timing generation", stage))
        generate_tps = _generation_speed(llm, request, cancel)
    finally:
        llm.close()
    all_nll = np.concatenate(nll)
    all_kl = np.concatenate(kl) if kl else np.zeros(len(all_nll))
    all_same = np.concatenate(same) if same else np.ones(len(all_nll), dtype=bool)
    return Measurement(
        perplexity=perplexity(all_nll),
        kl_mean=float(all_kl.mean()),
        kl_p99=float(np.percentile(all_kl, 99)),
        top1_agreement=float(all_same.mean()),
        prompt_tps=context / read_s if read_s > 0 else 0.0,
        generate_tps=generate_tps,
        tokens_scored=len(all_nll),
    )


def _generation_speed(llm: Llama, request: LadderRequest, cancel: CancelToken) -> float:
    """Tokens per second generating greedily after a short prompt (choosing the token is not timed)."""
    if request.generate_tokens <= 0:
        return 0.0
    llm.reset()
    llm.eval(llm.tokenize(GENERATE_PROMPT.encode("utf-8"), add_bos=True))
    budget = min(request.generate_tokens, request.context - llm.n_tokens)
    spent = 0.0
    for _ in range(budget):
        cancel.check()
        token = int(np.argmax(llm.scores[llm.n_tokens - 1]))
        started = time.perf_counter()
        llm.eval([token])
        spent += time.perf_counter() - started
    return budget / spent if spent > 0 else 0.0


# --- the ladder -------------------------------------------------------------------------------------


def lab_dir() -> Path:
    return paths.data_dir() / "lab"


def cache_dir() -> Path:
    """Where the levels made for ladders are kept, so that running a ladder again is quick."""
    return lab_dir() / "cache"


def cache_bytes() -> int:
    """Disk space the cached levels take (a ladder of a 7B model leaves tens of GB)."""
    folder = cache_dir()
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) if folder.is_dir() else 0


def clear_cache() -> int:
    """Delete the cached levels (saved runs keep their figures); returns the bytes freed. A file
    that cannot be deleted (open in Chat, on Windows) stays and is not counted."""
    freed = 0
    folder = cache_dir()
    if not folder.is_dir():
        return 0
    for p in sorted(folder.rglob("*"), key=lambda q: len(q.parts), reverse=True):
        try:
            if p.is_dir():
                p.rmdir()
            else:
                size = p.stat().st_size
                p.unlink()
                freed += size
        except OSError:
            continue
    return freed


def _tensor_stats(path: Path) -> tuple[int, float, str]:
    """(file size, tensor bits per weight, the file's own main type name) of a GGUF."""
    try:
        index = read_index(path)
    except GGUFError as e:
        raise LabError(str(e)) from None
    n = sum(t.n_elements for t in index.tensors) or 1
    bits = 8 * sum(t.nbytes for t in index.tensors) / n
    ftype = index.get("general.file_type")
    return index.size, bits, file_type_name(ftype) if ftype is not None else "source"


def _level_file(request: LadderRequest, level: str) -> Path:
    """The cached level: named after the source and keyed by its size, date and imatrix, so that a
    changed source (or another imatrix) gets new levels instead of stale ones."""
    st = request.source.stat()
    key = f"{request.source.resolve()}|{st.st_size}|{st.st_mtime_ns}|{request.imatrix or ''}"
    digest = hashlib.sha1(key.encode("utf-8")).hexdigest()[:10]
    return cache_dir() / f"{request.source.stem}-{digest}" / f"{request.source.stem}-{level}.gguf"


def _check(request: LadderRequest) -> None:
    if not request.source.is_file():
        raise LabError(f"{request.source}: no such file")
    if not request.levels:
        raise LabError("pick at least one level to compare with the source")
    for level in request.levels:
        try:
            file_type(level)
        except PlanError:
            raise LabError(f"unknown level {level!r}") from None
    if len(set(request.levels)) != len(request.levels):
        raise LabError("each level can be compared once")
    if request.context < 16 or request.context % 2:
        raise LabError("the context must be an even number of at least 16 tokens")
    if request.tokens < request.context:
        raise LabError(
            f"evaluate at least one chunk: tokens ({request.tokens}) must be at least the context ({request.context})"
        )


def _make_level(request: LadderRequest, level: str, report: ProgressCallback, cancel: CancelToken) -> Path:
    from quantdesk.core.quantize.run import QuantizeError, QuantizeRequest, quantize_file

    out = _level_file(request, level)
    if out.exists():
        return out
    out.parent.mkdir(parents=True, exist_ok=True)

    def relabel(p: Progress) -> None:
        report(Progress(p.done, p.total, p.unit, p.message, f"Quantizing {level}"))

    try:
        quantize_file(
            QuantizeRequest(
                request.source, out, level, threads=request.threads, imatrix=request.imatrix, allow_requantize=True
            ),
            relabel,
            cancel,
        )
    except QuantizeError as e:
        raise LabError(f"{level}: {e}") from None
    return out


def evaluation_tokens(request: LadderRequest) -> tuple[list[int], int | None, int]:
    """The evaluation text as the source's tokens, its BOS token if it uses one, and the size of
    its vocabulary (the width of every row of next-token probabilities)."""
    import llama_cpp

    try:
        vocab = llama_cpp.Llama(str(request.source), vocab_only=True, verbose=False)
    except (ValueError, RuntimeError, OSError) as e:
        raise LabError(f"{request.source.name}: llama.cpp could not load it ({e})") from None
    try:
        text = request.text if request.text is not None else builtin_text()
        tokens = vocab.tokenize(text.encode("utf-8"), add_bos=False)
        with_bos = vocab.tokenize(b"", add_bos=True)
        n_vocab = vocab.n_vocab()
    finally:
        vocab.close()
    if len(tokens) < request.context:
        raise LabError(f"the evaluation text has {len(tokens)} tokens, fewer than one chunk of {request.context}")
    return tokens, (with_bos[0] if with_bos else None), n_vocab


def run_ladder(request: LadderRequest, report: ProgressCallback, cancel: CancelToken) -> LadderResult:
    """Quantize every level (or take it from the cache), measure the source and each level, save."""
    request.source = Path(request.source)
    _check(request)
    levels = [(level, _make_level(request, level, report, cancel)) for level in request.levels]
    tokens, bos, n_vocab = evaluation_tokens(request)
    chunks = chunks_of(tokens, request.context, request.tokens, bos)
    first = request.context // 2
    positions = request.context - 1 - first

    size, bits, own_type = _tensor_stats(request.source)
    rows: list[LevelResult] = []
    # The source's log-probabilities, kept on disk (a temporary file, gone when closed) rather than
    # in memory: 1,024 tokens of a 150,000-token vocabulary are 300 MB.
    with tempfile.TemporaryFile(dir=lab_dir() if lab_dir().is_dir() else None) as backing:
        reference = np.memmap(backing, dtype=np.float32, mode="w+", shape=(len(chunks), positions, n_vocab))
        try:
            label = f"{own_type} (source)"
            m = measure(request.source, chunks, request, None, reference, report, cancel, label)
            rows.append(_row(own_type, request.source, True, size, bits, m))
            for level, path in levels:
                lsize, lbits, _ = _tensor_stats(path)
                m = measure(path, chunks, request, reference, None, report, cancel, level)
                rows.append(_row(level, path, False, lsize, lbits, m))
        finally:
            del reference  # unmapped now, unless an exception's traceback still holds it (then with it)
    rows[1:] = sorted(rows[1:], key=lambda r: -r.file_bytes)
    result = LadderResult(
        model=request.source.name,
        source=str(request.source),
        created=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        tokens_scored=len(chunks) * positions,
        context=request.context,
        chunks=len(chunks),
        threads=request.threads,
        gpu_layers=request.gpu_layers,
        levels=rows,
    )
    save_result(result)
    report(Progress(1, 1, "", f"Measured {len(rows) - 1} levels of {request.source.name}", "Done"))
    return result


def _row(level: str, path: Path, is_source: bool, size: int, bits: float, m: Measurement) -> LevelResult:
    return LevelResult(
        level=level,
        path=str(path),
        is_source=is_source,
        file_bytes=size,
        bits_per_weight=round(bits, 3),
        perplexity=m.perplexity,
        kl_mean=m.kl_mean,
        kl_p99=m.kl_p99,
        top1_agreement=m.top1_agreement,
        prompt_tps=m.prompt_tps,
        generate_tps=m.generate_tps,
    )


def ladder_job(request: LadderRequest) -> Job[LadderResult]:
    return Job(f"Lab: {Path(request.source).name}", lambda report, cancel: run_ladder(request, report, cancel))


# --- saved results ----------------------------------------------------------------------------------


def save_result(result: LadderResult) -> Path:
    stamp = re.sub(r"[^0-9]", "", result.created)[:14]
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", Path(result.model).stem)[:80]
    path = lab_dir() / f"{stamp}-{name}.json"
    n = 1
    while path.exists():
        n += 1
        path = lab_dir() / f"{stamp}-{name}-{n}.json"
    renames.write_text(path, json.dumps(result.to_dict(), indent=2) + "\n")
    result.path = str(path)
    return path


def load_result(path: str | Path) -> LadderResult:
    try:
        result = LadderResult.from_dict(json.loads(Path(path).read_text(encoding="utf-8")))
    except (OSError, ValueError, TypeError, KeyError) as e:
        raise LabError(f"{Path(path).name}: not a saved Lab run ({e})") from None
    result.path = str(path)
    return result


def list_results() -> list[LadderResult]:
    """Saved runs, newest first; unreadable files are skipped."""
    out = []
    for p in sorted(lab_dir().glob("*.json"), reverse=True):
        try:
            out.append(load_result(p))
        except LabError:
            continue
    return out


def delete_result(result: LadderResult) -> None:
    """Forget a saved run (the cached level files stay: another run may use them)."""
    if result.path:
        Path(result.path).unlink(missing_ok=True)
