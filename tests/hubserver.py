"""A small fake Hugging Face Hub for the tests, on 127.0.0.1, speaking to the real huggingface_hub client.

It implements what the client (and our downloader) calls, with the real Hub's shapes:
- GET /api/models                   search: search, filter (all must match), pipeline_tag, author,
                                    num_parameters, sort (descending), limit, expand; pages with a
                                    `Link: <...cursor=N>; rel="next"` header like the Hub's.
- GET /api/models/{repo}[/revision/{rev}]   model info; `blobs=true` adds size, blobId and
                                    lfs {sha256, size, pointerSize} to every sibling.
- GET /api/whoami-v2                the token check.
- HEAD/GET /{repo}/resolve/{rev}/{file}   small files are served directly (ETag = git blob id);
                                    LFS files answer 302 to {cdn}/cdn/{sha256} with X-Repo-Commit,
                                    X-Linked-Etag and X-Linked-Size, as huggingface.co does.
- HEAD/GET /cdn/{sha256}            the bytes, with Range (206 + Content-Range) and ETag, on a
                                    second port: another origin, like the Hub's CDN.
Errors carry X-Error-Code (RepoNotFound, EntryNotFound, GatedRepo) as the client expects.
It also answers as a plain-HTTP forward proxy (absolute URLs in the request line), so HTTP_PROXY
can point at it.

Faults make the bad days reproducible: `hub.fault(name, "stall", after=N, seconds=S)` stops
sending after N bytes for S seconds, "drop" closes the connection after N bytes, "status"
answers an HTTP error, "corrupt" flips one byte of what is served; each for `times` requests.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
import socket
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlencode, urlsplit

LFS_SUFFIXES = (".gguf", ".safetensors", ".bin")
TOKEN = "hf_test_token_0123456789"


def git_blob_id(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


@dataclass
class FakeRepo:
    repo_id: str
    files: dict[str, bytes]
    sha: str = ""
    gated: str = ""  # "", "auto" or "manual"
    tags: list[str] = field(default_factory=list)
    downloads: int = 0
    likes: int = 0
    last_modified: str = "2026-01-15T10:00:00.000Z"
    pipeline_tag: str = "text-generation"
    card: dict[str, Any] = field(default_factory=dict)
    gguf: dict[str, Any] | None = None
    safetensors: dict[str, Any] | None = None
    declared_sizes: dict[str, int] = field(default_factory=dict)  # lie about sizes (disk-space test)
    extra_siblings: list[str] = field(default_factory=list)  # names listed but not served (unsafe names)

    def __post_init__(self) -> None:
        if not self.sha:
            self.sha = hashlib.sha1(self.repo_id.encode()).hexdigest()

    def is_lfs(self, name: str) -> bool:
        return name.endswith(LFS_SUFFIXES)

    def sibling(self, name: str, blobs: bool) -> dict[str, Any]:
        data = self.files.get(name, b"")
        d: dict[str, Any] = {"rfilename": name}
        if blobs:
            size = self.declared_sizes.get(name, len(data))
            if self.is_lfs(name):
                d.update(
                    size=size,
                    blobId=git_blob_id(b"pointer " + name.encode()),
                    lfs={"sha256": hashlib.sha256(data).hexdigest(), "size": size, "pointerSize": 134},
                )
            else:
                d.update(size=size, blobId=git_blob_id(data))
        return d

    def info(self, blobs: bool = False, expand: list[str] | None = None) -> dict[str, Any]:
        author = self.repo_id.split("/")[0]
        full = {
            "_id": self.sha[:24],
            "id": self.repo_id,
            "modelId": self.repo_id,
            "author": author,
            "sha": self.sha,
            "lastModified": self.last_modified,
            "createdAt": "2025-06-01T00:00:00.000Z",
            "private": False,
            "gated": self.gated or False,
            "disabled": False,
            "downloads": self.downloads,
            "likes": self.likes,
            "tags": self.tags,
            "pipeline_tag": self.pipeline_tag,
            "library_name": "gguf" if self.gguf else "transformers",
            "cardData": self.card,
            "siblings": [self.sibling(n, blobs) for n in list(self.files) + self.extra_siblings],
        }
        if self.gguf:
            full["gguf"] = self.gguf
        if self.safetensors:
            full["safetensors"] = self.safetensors
        if expand:
            keep = {"id", "_id"} | set(expand)
            return {k: v for k, v in full.items() if k in keep}
        return full


@dataclass
class Fault:
    kind: str  # stall | drop | status | corrupt
    after: int = 0
    seconds: float = 0.0
    status: int = 500
    times: int = 1


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that hangs up (a paused or killed download) is normal here, not an error."""
        import sys

        if not isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            super().handle_error(request, client_address)


class FakeHub:
    def __init__(self) -> None:
        self.repos: dict[str, FakeRepo] = {}
        self.faults: dict[str, list[Fault]] = {}
        self.requests: list[dict[str, Any]] = []
        self.page_size = 1000
        self.stopping = threading.Event()
        self._lock = threading.Lock()
        hub = self

        class Handler(_Handler):
            server_hub = hub

        # Two servers, as on the real Hub: the API and /resolve on one origin, the file bytes on a
        # CDN at another origin (so the client drops the Authorization header on the redirect).
        self.servers = [_QuietServer(("127.0.0.1", 0), Handler) for _ in range(2)]
        self.url = f"http://127.0.0.1:{self.servers[0].server_address[1]}"
        self.cdn_url = f"http://127.0.0.1:{self.servers[1].server_address[1]}"
        self._threads = [
            threading.Thread(target=s.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True) for s in self.servers
        ]

    def start(self) -> FakeHub:
        for t in self._threads:
            t.start()
        return self

    def stop(self) -> None:
        self.stopping.set()
        for server in self.servers:
            server.shutdown()
            server.server_close()

    def add(self, repo: FakeRepo) -> FakeRepo:
        self.repos[repo.repo_id] = repo
        return repo

    def fault(self, filename: str, kind: str, **kw: Any) -> None:
        self.faults.setdefault(filename, []).append(Fault(kind, **kw))

    def take_fault(self, filename: str) -> Fault | None:
        with self._lock:
            for f in self.faults.get(filename, []):
                if f.times > 0:
                    f.times -= 1
                    return f
        return None

    def blob(self, sha256: str) -> tuple[str, bytes] | None:
        for repo in self.repos.values():
            for name, data in repo.files.items():
                if repo.is_lfs(name) and hashlib.sha256(data).hexdigest() == sha256:
                    return name, data
        return None

    def ranges(self, filename_part: str) -> list[str | None]:
        """The Range headers of the GETs that served a file's bytes (to see a resume happen)."""
        return [
            r["range"]
            for r in self.requests
            if r["method"] == "GET" and r["served"] and filename_part in r.get("file", "")
        ]


class _Handler(BaseHTTPRequestHandler):
    server_hub: FakeHub
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # keep test output quiet
        pass

    # -- plumbing ---------------------------------------------------------------------------
    def _log(self, **extra: Any) -> None:
        self._entry = {
            "method": self.command,
            "path": self.path,
            "range": self.headers.get("Range"),
            "auth": self.headers.get("Authorization"),
            "served": False,
            "proxied": self.path.startswith("http://"),
            **extra,
        }
        self.server_hub.requests.append(self._entry)

    def _send(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        hdrs = {"Content-Length": str(len(body))}
        hdrs.update(headers or {})
        for k, v in hdrs.items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD" and body:
            self.wfile.write(body)

    def _json(self, obj: Any, status: int = 200, headers: dict[str, str] | None = None) -> None:
        self._send(status, json.dumps(obj).encode(), {"Content-Type": "application/json", **(headers or {})})

    def _error(self, status: int, code: str, message: str) -> None:
        self._json({"error": message}, status, {"X-Error-Code": code, "X-Error-Message": message})

    def _authorized(self) -> bool:
        return self.headers.get("Authorization") == f"Bearer {TOKEN}"

    def do_HEAD(self) -> None:
        self._route()

    def do_GET(self) -> None:
        self._route()

    def _route(self) -> None:
        url = urlsplit(self.path)
        path = unquote(url.path)
        query = parse_qs(url.query)
        try:
            if path == "/api/models":
                return self._search(query)
            if path == "/api/whoami-v2":
                self._log()
                if self._authorized():
                    return self._json(
                        {
                            "type": "user",
                            "name": "tester",
                            "auth": {"accessToken": {"displayName": "test", "role": "read"}},
                        }
                    )
                return self._json(
                    {"error": "Invalid credentials in Authorization header"},
                    401,
                    {"X-Error-Message": "Invalid credentials in Authorization header"},
                )
            m = re.match(r"^/api/models/([^/]+/[^/]+)(?:/revision/([^/]+))?$", path)
            if m:
                return self._model_info(m.group(1), m.group(2), query)
            m = re.match(r"^/cdn/([0-9a-f]{64})$", path)
            if m:
                return self._cdn(m.group(1))
            m = re.match(r"^/([^/]+/[^/]+)/resolve/([^/]+)/(.+)$", path)
            if m:
                return self._resolve(m.group(1), m.group(2), m.group(3))
            self._log()
            self._error(404, "NotFound", "Not found")
        except (BrokenPipeError, ConnectionResetError):
            pass

    # -- API ----------------------------------------------------------------------------------
    def _search(self, q: dict[str, list[str]]) -> None:
        hub = self.server_hub
        self._log()
        repos = list(hub.repos.values())
        text = (q.get("search") or [""])[0].lower()
        if text:
            repos = [r for r in repos if text in r.repo_id.lower()]
        for tag in q.get("filter", []):
            repos = [r for r in repos if tag in r.tags]
        if q.get("pipeline_tag"):
            repos = [r for r in repos if r.pipeline_tag == q["pipeline_tag"][0]]
        if q.get("author"):
            repos = [r for r in repos if r.repo_id.split("/")[0] == q["author"][0]]
        if q.get("num_parameters"):
            lo, hi = 0.0, float("inf")
            for part in q["num_parameters"][0].split(","):
                k, _, v = part.partition(":")
                n = float(v.rstrip("B")) * 1e9
                lo, hi = (n, hi) if k == "min" else (lo, n)
            repos = [r for r in repos if lo <= ((r.gguf or r.safetensors or {}).get("total") or 0) <= hi]
        sort = (q.get("sort") or [""])[0]
        key = {
            "downloads": lambda r: r.downloads,
            "likes": lambda r: r.likes,
            "lastModified": lambda r: r.last_modified,
            "trendingScore": lambda r: r.likes + r.downloads,
        }.get(sort)
        if key:
            repos.sort(key=key, reverse=True)
        limit = int((q.get("limit") or [str(hub.page_size)])[0])
        size = min(limit, hub.page_size)
        cursor = int((q.get("cursor") or ["0"])[0])
        page = repos[cursor : cursor + size]
        headers = {}
        if cursor + size < len(repos):
            nq = {k: v for k, v in q.items() if k != "cursor"}
            nq["cursor"] = [str(cursor + size)]
            headers["Link"] = f'<{hub.url}/api/models?{urlencode(nq, doseq=True)}>; rel="next"'
        expand = q.get("expand")
        self._json([r.info(expand=expand) for r in page], headers=headers)

    def _model_info(self, repo_id: str, revision: str | None, q: dict[str, list[str]]) -> None:
        hub = self.server_hub
        self._log()
        fault = hub.take_fault("api:" + repo_id)
        if fault and fault.kind == "status":
            return self._error(fault.status, "ServerError", "Internal Error")
        repo = hub.repos.get(repo_id)
        if repo is None:
            return self._error(404, "RepoNotFound", "Repository not found")
        if revision not in (None, "main", repo.sha):
            return self._error(404, "RevisionNotFound", "Invalid rev id")
        self._json(repo.info(blobs=(q.get("blobs") or [""])[0].lower() == "true"))

    # -- files --------------------------------------------------------------------------------
    def _resolve(self, repo_id: str, revision: str, filename: str) -> None:
        hub = self.server_hub
        self._log(file=filename)
        repo = hub.repos.get(repo_id)
        if repo is None:
            return self._error(404, "RepoNotFound", "Repository not found")
        if revision not in ("main", repo.sha):
            return self._error(404, "RevisionNotFound", "Invalid rev id")
        if repo.gated and not self._authorized():
            return self._error(401, "GatedRepo", "Access to this model is restricted")
        if filename not in repo.files:
            return self._error(404, "EntryNotFound", "Entry not found")
        data = repo.files[filename]
        common = {"X-Repo-Commit": repo.sha, "Accept-Ranges": "bytes"}
        if repo.is_lfs(filename):
            sha = hashlib.sha256(data).hexdigest()
            return self._send(
                302,
                b"",
                {
                    **common,
                    "Location": f"{hub.cdn_url}/cdn/{sha}",
                    "ETag": f'"{git_blob_id(data)}"',
                    "X-Linked-Etag": f'"{sha}"',
                    "X-Linked-Size": str(len(data)),
                },
            )
        self._serve(filename, data, {**common, "ETag": f'"{git_blob_id(data)}"'})

    def _cdn(self, sha256: str) -> None:
        found = self.server_hub.blob(sha256)
        self._log(file=found[0] if found else "")
        if found is None:
            return self._send(404, b"NoSuchKey")
        self._serve(found[0], found[1], {"ETag": f'"{sha256}"', "Accept-Ranges": "bytes"})

    def _serve(self, filename: str, data: bytes, headers: dict[str, str]) -> None:
        hub = self.server_hub
        self._entry["served"] = True
        fault = hub.take_fault(filename) if self.command == "GET" else None
        if fault and fault.kind == "status":
            return self._send(fault.status, b"Internal Error")
        start, status = 0, 200
        rng = self.headers.get("Range")
        if rng:
            m = re.match(r"bytes=(\d+)-$", rng)
            if not m or int(m.group(1)) >= len(data):
                return self._send(416, b"", {"Content-Range": f"bytes */{len(data)}"})
            start, status = int(m.group(1)), 206
            headers = {**headers, "Content-Range": f"bytes {start}-{len(data) - 1}/{len(data)}"}
        body = data[start:]
        if fault and fault.kind == "corrupt" and body:
            body = bytes([body[0] ^ 0xFF]) + body[1:]
        if self.command == "HEAD":
            return self._send(status, b"", {**headers, "Content-Length": str(len(body))})
        self.send_response(status)
        for k, v in {**headers, "Content-Length": str(len(body))}.items():
            self.send_header(k, v)
        self.end_headers()
        cut = fault.after if fault and fault.kind in ("stall", "drop") else None
        if cut is None:
            self.wfile.write(body)
            return
        self.wfile.write(body[:cut])
        self.wfile.flush()
        if fault.kind == "drop":
            self.connection.shutdown(socket.SHUT_RDWR)
            self.close_connection = True
            return
        deadline = time.monotonic() + fault.seconds
        while time.monotonic() < deadline and not hub.stopping.is_set():
            time.sleep(0.02)
        with contextlib.suppress(OSError):
            self.wfile.write(body[cut:])


# --------------------------------------------------------------------------------------------
# Real small files to serve


def tiny_gguf(
    path: Path,
    name: str = "Tiny",
    file_type: int = 15,
    n_embd: int = 64,
    n_layers: int = 2,
    extra_kv: dict[str, Any] | None = None,
) -> bytes:
    """A small but valid llama-architecture GGUF (F32 tensors), labelled with `file_type`."""
    import gguf
    import numpy as np

    w = gguf.GGUFWriter(path, "llama")
    w.add_name(name)
    w.add_file_type(file_type)
    w.add_context_length(2048)
    w.add_embedding_length(n_embd)
    w.add_block_count(n_layers)
    w.add_head_count(4)
    w.add_head_count_kv(2)
    w.add_feed_forward_length(n_embd * 2)
    for k, v in (extra_kv or {}).items():
        w.add_uint32(k, v)
    rng = np.random.default_rng(len(name) + file_type)
    w.add_tensor("token_embd.weight", rng.standard_normal((256, n_embd), dtype=np.float32))
    for i in range(n_layers):
        w.add_tensor(f"blk.{i}.attn_q.weight", rng.standard_normal((n_embd, n_embd), dtype=np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path.read_bytes()


def tiny_checkpoint() -> dict[str, bytes]:
    """config.json + model.safetensors + tokenizer.json of a 2-layer llama."""
    import numpy as np
    from safetensors.numpy import save

    config = {
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "hidden_size": 64,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "intermediate_size": 128,
        "vocab_size": 256,
        "max_position_embeddings": 2048,
    }
    rng = np.random.default_rng(7)
    weights = save(
        {
            "model.embed_tokens.weight": rng.standard_normal((256, 64), dtype=np.float32),
            "model.layers.0.self_attn.q_proj.weight": rng.standard_normal((64, 64), dtype=np.float32),
        }
    )
    return {
        "config.json": json.dumps(config).encode(),
        "model.safetensors": weights,
        "tokenizer.json": b'{"version": "1.0", "model": {"type": "BPE"}}',
    }


def standard_hub(tmp: Path) -> FakeHub:
    """The hub most tests use: a GGUF repo with three quant levels (one split in two), a
    safetensors checkpoint, a gated repo and a few more to search through."""
    hub = FakeHub()
    tmp.mkdir(parents=True, exist_ok=True)
    q4 = tiny_gguf(tmp / "q4.gguf", "Tiny Q4", 15, n_embd=96)
    q8 = tiny_gguf(tmp / "q8.gguf", "Tiny Q8", 7, n_embd=128)
    f16a = tiny_gguf(tmp / "f16a.gguf", "Tiny F16 part 1", 1, n_embd=64, extra_kv={"split.count": 2})
    f16b = tiny_gguf(tmp / "f16b.gguf", "Tiny F16 part 2", 1, n_embd=64, extra_kv={"split.count": 2})
    readme = b"---\nlicense: apache-2.0\n---\n# Tiny GGUF\n\nA **tiny** model for tests.\n"
    hub.add(
        FakeRepo(
            "acme/Tiny-GGUF",
            {
                "README.md": readme,
                "Tiny-Q4_K_M.gguf": q4,
                "Tiny-Q8_0.gguf": q8,
                "F16/Tiny-F16-00001-of-00002.gguf": f16a,
                "F16/Tiny-F16-00002-of-00002.gguf": f16b,
            },
            tags=["gguf", "llama", "text-generation", "license:apache-2.0"],
            downloads=5000,
            likes=40,
            card={"license": "apache-2.0", "base_model": "acme/Tiny"},
            gguf={"total": 60_000, "architecture": "llama", "context_length": 2048},
        )
    )
    hub.add(
        FakeRepo(
            "acme/Tiny",
            {"README.md": b"# Tiny\n\nThe checkpoint.\n", **tiny_checkpoint()},
            tags=["safetensors", "llama", "text-generation", "license:mit"],
            downloads=900,
            likes=75,
            last_modified="2026-03-01T00:00:00.000Z",
            card={"license": "mit"},
            safetensors={"parameters": {"F32": 20480}, "total": 20480},
        )
    )
    hub.add(
        FakeRepo(
            "bigco/Locked-GGUF",
            {"README.md": b"# Locked\n", "Locked-Q4_K_M.gguf": q4},
            gated="manual",
            tags=["gguf", "llama", "license:other"],
            downloads=100,
            likes=3,
            gguf={"total": 60_000, "architecture": "llama", "context_length": 2048},
        )
    )
    for i in range(5):
        hub.add(
            FakeRepo(
                f"someone/Other-{i}-GGUF",
                {"README.md": b"# other\n"},
                tags=["gguf", "qwen2"],
                downloads=10 + i,
                likes=i,
                gguf={"total": (i + 1) * 10**9},
            )
        )
    return hub


# --------------------------------------------------------------------------------------------
# The fixture (tests/conftest.py makes it available to every test module)

import pytest  # noqa: E402


@pytest.fixture
def fake_hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """The standard fake Hub, running, with HF_ENDPOINT pointing at it and every other Hugging Face
    location (token file, cache) inside the test's own folder, so nothing reaches the real Hub or
    the user's real token."""
    from huggingface_hub import constants

    hub = standard_hub(tmp_path / "hub-files").start()
    monkeypatch.setenv("HF_ENDPOINT", hub.url)
    for var in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_HUB_OFFLINE"):
        monkeypatch.delenv(var, raising=False)
    hf_home = tmp_path / "hf-home"
    monkeypatch.setenv("HF_HOME", str(hf_home))
    monkeypatch.setenv("HF_HUB_CACHE", str(hf_home / "hub"))
    monkeypatch.setattr(constants, "HF_TOKEN_PATH", str(hf_home / "token"))
    monkeypatch.setattr(constants, "HF_STORED_TOKENS_PATH", str(hf_home / "stored_tokens"))
    monkeypatch.setenv("HOME", str(tmp_path / "user-home"))  # no real LM Studio folder in the Library
    monkeypatch.setenv("USERPROFILE", str(tmp_path / "user-home"))  # Path.home() on Windows
    try:
        yield hub
    finally:
        hub.stop()
