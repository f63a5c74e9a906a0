"""Running cases: one forked child per case, with a time and a memory limit; the outcome
classified; a minimal reproducer saved for each new finding; saved reproducers replayed.

Why fork: the parent imports numpy, gguf, llama.cpp and the app once (seconds), and a forked
child starts with all of it in a few milliseconds. The parent never runs a case itself (no
OpenMP pool, no threads to inherit), and OPENBLAS/OMP threads are pinned to 1 before imports.

Classes, the first that applies:
  crash            the child died from a signal (SIGSEGV, SIGBUS, SIGABRT ...) or without a result
  hang             it ran past the time limit, or hit the memory limit (MemoryError)
  traceback        an exception outside the error contract (not a QuantdeskError or OSError)
  changed source   an input file's bytes changed
  leftover         a file left in the output, source or data folder that should not be there
  unreadable output  something was written that our own reader refuses
  multi-line message  a message (or `quantdesk info` output) with a newline or a control character
  clean            refused, with a one-line message
  ok               done, and the output reads back
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import re
import resource
import shutil
import signal
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from tools.fuzz import mutate
from tools.fuzz.seeds import Seed

CLASSES = (
    "crash",
    "hang",
    "traceback",
    "changed source",
    "leftover",
    "unreadable output",
    "multi-line message",
    "clean",
    "ok",
)
GOOD = ("clean", "ok")
BINARY_KINDS = ("gguf", "imatrix_gguf", "imatrix_dat")
JSON_KINDS = ("config", "tokenizer", "hub", "server")
HOME_FILES = {"hash-cache.json", "settings.json"}  # what a case may leave in the data folder
CONFIG_KEYS = [
    "num_hidden_layers", "hidden_size", "num_attention_heads", "num_key_value_heads", "intermediate_size",
    "vocab_size", "head_dim", "max_position_embeddings", "rope_theta", "rope_scaling", "rope_parameters",
    "rms_norm_eps", "tie_word_embeddings", "architectures", "text_config", "sliding_window",
    "original_max_position_embeddings", "partial_rotary_factor", "long_factor", "short_factor", "factor",
    "rope_type", "full_attention", "sliding_attention", "final_logit_softcapping", "bos_token_id",
]  # fmt: skip
TOKENIZER_KEYS = [
    "added_tokens_decoder", "added_tokens", "content", "special", "model", "type", "vocab", "merges",
    "post_processor", "normalizer", "chat_template", "bos_token", "eos_token", "add_bos_token",
    "tokenizer_class", "add_prefix_space", "processors", "single", "pair", "byte_fallback", "repetition_penalty",
]  # fmt: skip
OTHER_KEYS = [
    "siblings", "lfs", "rfilename", "size", "gguf", "safetensors", "cardData", "base_model", "gated", "tags",
    "messages", "tools", "tool_choice", "response_format", "json_schema", "schema", "properties", "items",
    "required", "enum", "anyOf", "$ref", "stream", "max_tokens", "stop", "logprobs", "input", "system",
]  # fmt: skip
TEMPLATE_FRAGMENTS = [
    "{{", "}}", "{%", "%}", "{#", "{% for m in messages %}", "{% endfor %}", "{% if x %}", "{% endif %}",
    "{{ m['content'] }}", "{{ messages[0]['content'] }}", "{{ messages[99] }}",
    "{{ raise_exception('no\\n\\x1b[2J') }}",
    "{{ bos_token }}", "{{ 1/0 }}", "{{ x.y.z }}", "{{ messages | tojson }}", "{{ range(100000) | list | length }}",
    "{% macro f() %}{{ f() }}{% endmacro %}{{ f() }}", "{{ ''.__class__.__mro__ }}", "{% set ns = namespace(a=1) %}",
    "{{ 'ab' * 3 }}", "{{ messages | length }}", "{{ add_generation_prompt }}", "{{ loop.index }}", "\x00", "\n",
]  # fmt: skip


@dataclass
class Case:
    kind: str
    seed: str
    target: str
    params: dict[str, Any] = field(default_factory=dict)
    json: list[Any] = field(default_factory=list)
    bytes: list[Any] = field(default_factory=list)
    text: list[Any] = field(default_factory=list)

    def ops(self) -> list[tuple[str, int]]:
        return [(name, i) for name in ("json", "bytes", "text") for i in range(len(getattr(self, name)))]

    def without(self, name: str, i: int) -> Case:
        ops = list(getattr(self, name))
        del ops[i]
        return Case(**{**asdict(self), name: ops})


@dataclass
class Result:
    cls: str
    signature: str
    detail: str
    seconds: float


class Fuzzer:
    def __init__(self, seeds: list[Seed], workroot: Path, timeout: float, memory_mb: int):
        self.seeds = {(s.kind, s.name, s.target): s for s in seeds}
        self.by_kind: dict[str, list[Seed]] = {}
        for s in seeds:
            self.by_kind.setdefault(s.kind, []).append(s)
        self.workroot = workroot
        workroot.mkdir(parents=True, exist_ok=True)
        self.timeout = timeout
        self.memory_limit = _address_space() + memory_mb * 2**20
        self._content: dict[tuple[str, str], bytes] = {}
        self.n = 0

    # ---- making cases ---------------------------------------------------------------------
    def seed_bytes(self, seed: Seed) -> bytes:
        key = (seed.name, seed.target)
        if key not in self._content:
            path = seed.folder / seed.target
            self._content[key] = path.read_bytes() if path.is_file() else b"{}"
        return self._content[key]

    def generate(self, rng: random.Random, kind: str) -> Case:
        seed = rng.choice(self.by_kind[kind])
        data = self.seed_bytes(seed)
        n = rng.choice((1, 1, 1, 2, 2, 3, 4, 6, 8))
        case = Case(kind, seed.name, seed.target, self._params(rng, kind))
        if kind in BINARY_KINDS:  # fewer at once: most binary mutations are fatal to the layout
            n = rng.choice((1, 1, 1, 1, 2, 2, 3, 5))
            case.bytes = mutate.byte_ops(rng, data, seed.fields, seed.hot, n, seed.lengths)
        elif kind == "safetensors":
            header, _ = _split_safetensors(data)
            if rng.random() < 0.75:
                case.json = mutate.json_ops(rng, header, n, ["dtype", "shape", "data_offsets", "__metadata__"])
            if rng.random() < 0.4:
                case.bytes = mutate.byte_ops(rng, data, seed.fields, seed.hot, rng.choice((1, 2)), seed.lengths)
        elif kind in JSON_KINDS:
            keys = {"config": CONFIG_KEYS, "tokenizer": TOKENIZER_KEYS}.get(kind, OTHER_KEYS)
            case.json = mutate.json_ops(rng, json.loads(data), n, keys)
            if rng.random() < 0.12:
                text = self.materialize_bytes(case)
                if rng.random() < 0.3:
                    depth = rng.choice((50, 1000, 100_000))
                    case.bytes = [["nest", rng.randrange(len(text) + 1), depth, rng.choice("[{")]]
                else:
                    case.bytes = mutate.byte_ops(rng, text, [], 0, 1)
        elif kind == "chat_template":
            case.text = mutate.text_ops(rng, data.decode(), n, TEMPLATE_FRAGMENTS)
        return case

    @staticmethod
    def _params(rng: random.Random, kind: str) -> dict[str, Any]:
        if kind == "gguf":
            return {"level": rng.choice(("Q8_0", "Q4_K_M", "Q4_0", "F16", "IQ4_NL")), "allow_requantize": True}
        if kind in ("imatrix_gguf", "imatrix_dat"):
            return {"level": rng.choice(("Q4_K_M", "IQ4_XS", "Q4_0"))}
        if kind in ("safetensors", "config", "tokenizer"):
            return {"outtype": rng.choice(("f16",) * 6 + ("bf16", "f32", "Q8_0"))}
        return {}

    def materialize_bytes(self, case: Case) -> bytes:
        seed = self.seeds[(case.kind, case.seed, case.target)]
        data = self.seed_bytes(seed)
        if case.kind == "safetensors":
            if case.json:
                header, payload = _split_safetensors(data)
                text = json.dumps(mutate.apply_json(header, case.json)).encode()
                text += b" " * (-len(text) % 8)
                data = len(text).to_bytes(8, "little") + text + payload
            return mutate.apply_bytes(data, case.bytes)
        if case.kind in JSON_KINDS:
            data = json.dumps(mutate.apply_json(json.loads(data), case.json)).encode()
            return mutate.apply_bytes(data, case.bytes)
        if case.kind == "chat_template":
            return mutate.apply_text(data.decode(), case.text).encode("utf-8", "surrogatepass")
        return mutate.apply_bytes(data, case.bytes)

    # ---- running one ----------------------------------------------------------------------
    def run(self, case: Case) -> Result:
        self.n += 1
        root = self.workroot / f"case-{self.n}"
        src, out, home = root / "src", root / "out", root / "home"
        seed = self.seeds[(case.kind, case.seed, case.target)]
        shutil.copytree(seed.folder, src)
        out.mkdir()
        home.mkdir()
        (src / case.target).write_bytes(self.materialize_bytes(case))
        before = _snapshot(src)
        started = time.monotonic()
        pid = os.fork()
        if pid == 0:  # the child: never returns
            _child(case, root, src, out, home, self.memory_limit)
        status, timed_out = _wait(pid, started + self.timeout)
        seconds = time.monotonic() - started
        try:
            return self._classify(case, root, src, out, home, before, status, timed_out, seconds)
        finally:
            shutil.rmtree(root, ignore_errors=True)

    def _classify(
        self,
        case: Case,
        root: Path,
        src: Path,
        out: Path,
        home: Path,
        before: dict[str, str],
        status: int,
        timed_out: bool,
        seconds: float,
    ) -> Result:
        k = case.kind
        if timed_out:
            return Result("hang", f"{k}:timeout", f"no result after {self.timeout:g} s", seconds)
        if os.WIFSIGNALED(status):
            name = signal.Signals(os.WTERMSIG(status)).name
            return Result("crash", f"{k}:{name}", f"killed by {name}", seconds)
        result_file = root / "result.json"
        if os.WEXITSTATUS(status) != 0 or not result_file.is_file():
            log = (root / "log.txt").read_text(errors="replace")[-300:] if (root / "log.txt").is_file() else ""
            return Result("crash", f"{k}:exit{os.WEXITSTATUS(status)}", log, seconds)
        r = json.loads(result_file.read_text(encoding="utf-8"))
        if r["outcome"] == "traceback":
            cls = "hang" if r["type"] == "MemoryError" else "traceback"
            return Result(cls, f"{k}:{r['type']}:{r['where']}", r["text"][:300], seconds)
        after = _snapshot(src)
        changed = sorted(n for n in before if n in after and before[n] != after[n])
        if changed or sorted(before) != sorted(a for a in after if a in before):
            return Result("changed source", f"{k}:changed", f"changed: {changed}", seconds)
        extra = sorted(set(after) - set(before))
        extra += [f"out/{n}" for n in sorted(os.listdir(out)) if n not in r["expected_out"]]
        extra += [f"out/-{n}" for n in r["expected_out"] if not (out / n).is_file()]
        extra += [f"home/{n}" for n in sorted(os.listdir(home)) if n not in HOME_FILES]
        if extra:
            pattern = ",".join(sorted({re.sub(r"\d+|[0-9a-f]{8}", "N", e) for e in extra}))
            return Result("leftover", f"{k}:{pattern}", f"left: {extra}", seconds)
        if r["unreadable"]:
            return Result("unreadable output", f"{k}:{r['unreadable'][:40]}", r["unreadable"], seconds)
        for at, message in r["messages"]:
            if not message or not message.isprintable():
                return Result("multi-line message", f"{k}:{at}", repr(message)[:300], seconds)
        return Result("ok" if r["ok"] else "clean", f"{k}:{r['ok']}", "", seconds)

    # ---- shrinking ------------------------------------------------------------------------
    def minimize(self, case: Case, result: Result, budget_s: float = 60.0) -> Case:
        """Drop operations one at a time while the same finding (class and signature) stays."""
        deadline = time.monotonic() + budget_s
        progress = True
        while progress and time.monotonic() < deadline:
            progress = False
            for name, i in reversed(case.ops()):
                if time.monotonic() > deadline:
                    break
                smaller = case.without(name, i)
                try:
                    r = self.run(smaller)
                except (ValueError, KeyError, IndexError, TypeError):
                    continue  # the smaller list of operations no longer applies to the seed
                if (r.cls, r.signature) == (result.cls, result.signature):
                    case, progress = smaller, True
        return case


def _split_safetensors(data: bytes) -> tuple[Any, bytes]:
    n = int.from_bytes(data[:8], "little")
    return json.loads(data[8 : 8 + n]), data[8 + n :]


def _snapshot(folder: Path) -> dict[str, str]:
    out = {}
    for p in sorted(folder.rglob("*")):
        if p.is_file():
            out[str(p.relative_to(folder))] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def _address_space() -> int:
    """This process's virtual size now: the child may grow by the memory limit beyond it."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmSize:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 4 << 30


def _wait(pid: int, deadline: float) -> tuple[int, bool]:
    delay = 0.001
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return status, False
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            return os.waitpid(pid, 0)[1], True
        time.sleep(delay)
        delay = min(0.02, delay * 2)


def _child(case: Case, root: Path, src: Path, out: Path, home: Path, memory_limit: int) -> None:
    """Run the case and write result.json; os._exit so nothing of the parent's runs on exit."""
    code = 0
    try:
        resource.setrlimit(resource.RLIMIT_AS, (memory_limit, memory_limit))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        log = os.open(root / "log.txt", os.O_WRONLY | os.O_CREAT, 0o644)
        os.dup2(log, 1)
        os.dup2(log, 2)
        os.environ["QUANTDESK_HOME"] = str(home)
        os.chdir(root)
        from tools.fuzz import targets

        try:
            report = targets.RUNNERS[case.kind](src, out, case.target, case.params)
            result: dict[str, Any] = {
                "outcome": "done",
                "ok": report.ok,
                "messages": report.messages,
                "expected_out": report.expected_out,
                "unreadable": report.unreadable,
            }
        except BaseException as e:  # noqa: BLE001 - every escape is a finding
            text = f"{type(e).__name__}: {e}"
            result = {"outcome": "traceback", "type": type(e).__name__, "where": targets.where(e), "text": text}
        (root / "result.json").write_text(json.dumps(result), encoding="utf-8")
    except BaseException:  # noqa: BLE001 - e.g. MemoryError while writing the result
        code = 70
    finally:
        sys.stdout.flush()
        os._exit(code)


# ---- reproducers ------------------------------------------------------------------------------


def reproducer_name(result: Result) -> str:
    slug = result.cls.replace(" ", "-")
    return f"{slug}-{hashlib.sha256(result.signature.encode()).hexdigest()[:10]}.json"


def save_reproducer(folder: Path, case: Case, result: Result) -> Path:
    path = folder / case.kind / reproducer_name(result)
    path.parent.mkdir(parents=True, exist_ok=True)
    record = {
        "case": asdict(case),
        "found": {"class": result.cls, "signature": result.signature, "detail": result.detail},
    }
    path.write_text(json.dumps(record, indent=1) + "\n", encoding="utf-8")
    return path


def load_reproducers(folder: Path) -> list[tuple[Path, Case, dict[str, Any]]]:
    out = []
    for path in sorted(folder.glob("*/*.json")):
        record = json.loads(path.read_text(encoding="utf-8"))
        out.append((path, Case(**record["case"]), record))
    return out
