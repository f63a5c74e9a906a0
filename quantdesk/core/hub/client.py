"""The Hugging Face Hub, seen from Quantdesk: search, a repo's files grouped the way people think
of them, and whether each of them fits this machine.

Everything goes through the real `huggingface_hub` client (HfApi, hf_hub_url, its shared HTTP
session and headers), so HF_TOKEN, the saved token, proxies from the usual environment variables
and HF_ENDPOINT behave as they do for every other Hugging Face tool. The endpoint is read on every
call rather than once at import (huggingface_hub freezes HF_ENDPOINT when it is imported), which
is what lets the tests point us at a fake Hub on 127.0.0.1.

Errors from the client are turned into `HubError` with one plain sentence (`explain`), because
the UI and the CLI show the message as is.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path, PurePosixPath
from typing import Any

import httpx2
from huggingface_hub import HfApi, constants, hf_hub_url
from huggingface_hub import errors as hf_errors
from huggingface_hub.utils import build_hf_headers, get_session, hf_raise_for_status

from quantdesk import __version__
from quantdesk.core import renames
from quantdesk.core.errors import QuantdeskError
from quantdesk.core.fit import FitEstimate, Machine, ModelSize, Verdict, default_gpu_layers, estimate

# Metadata requests are small: a Hub that does not answer within this is reported, not waited on.
API_TIMEOUT_S = 30.0


class HubError(QuantdeskError):
    """Talking to the Hub failed; the message says why and what to do, in one line."""


class GatedRepoError(HubError):
    """The repo needs its licence accepted on the Hub and a token with access."""


# --------------------------------------------------------------------------------------------
# Endpoint, token, errors


def endpoint() -> str:
    """HF_ENDPOINT as it is *now* (huggingface_hub only reads it once, at import)."""
    return os.environ.get("HF_ENDPOINT", constants.ENDPOINT).rstrip("/")


def api() -> HfApi:
    return HfApi(endpoint=endpoint(), library_name="quantdesk", library_version=__version__)


def headers(token: str | None = None) -> dict[str, str]:
    """Headers for a Hub request: user agent, and the token (HF_TOKEN, else the saved one)."""
    return build_hf_headers(token=token, library_name="quantdesk", library_version=__version__)


def web_url(repo_id: str) -> str:
    return f"{endpoint()}/{repo_id}"


def explain(e: BaseException, what: str = "") -> HubError:
    """Turn whatever the client raised into a HubError saying what happened and what to do."""
    if isinstance(e, HubError):
        return e
    subject = f"{what}: " if what else ""
    if isinstance(e, hf_errors.GatedRepoError):
        repo = getattr(e, "repo_id", None) or what
        return GatedRepoError(
            f"{subject}this model is gated. Open {web_url(repo) if repo else 'its page on the Hub'}, accept its "
            "terms, then add a Hub access token (Discover → Hub token…, or the HF_TOKEN environment variable) "
            "and try again."
        )
    if isinstance(e, hf_errors.RepositoryNotFoundError):
        return HubError(f"{subject}no such model on the Hub (or it is private: enter a Hub token with access)")
    if isinstance(e, hf_errors.RevisionNotFoundError):
        return HubError(f"{subject}that revision does not exist on the Hub")
    if isinstance(e, hf_errors.EntryNotFoundError):
        return HubError(f"{subject}that file is not in the repository")
    if isinstance(e, hf_errors.OfflineModeIsEnabled):
        return HubError(f"{subject}offline mode is on (HF_HUB_OFFLINE is set); unset it to reach the Hub")
    if isinstance(e, hf_errors.HfHubHTTPError):
        status = e.response.status_code if getattr(e, "response", None) is not None else None
        if status == 401:
            return HubError(f"{subject}the Hub refused the access token (HTTP 401); enter a valid token")
        if status == 403:
            return HubError(f"{subject}access denied (HTTP 403); your token may lack permission for this model")
        if status == 429:
            return HubError(f"{subject}the Hub is rate-limiting requests (HTTP 429); wait a minute and try again")
        if status is not None and status >= 500:
            return HubError(f"{subject}the Hub answered with a server error (HTTP {status}); try again later")
        return HubError(f"{subject}the Hub answered with an error (HTTP {status})")
    if isinstance(e, httpx2.TimeoutException):
        return HubError(f"{subject}the Hub did not answer in time; check your connection (or proxy) and try again")
    if isinstance(e, httpx2.ConnectError):
        return HubError(f"{subject}cannot connect to {endpoint()}; check your internet connection or proxy settings")
    if isinstance(e, (httpx2.RemoteProtocolError, httpx2.ReadError)):
        return HubError(f"{subject}the connection to the Hub was dropped; try again")
    if isinstance(e, httpx2.TransportError):
        return HubError(f"{subject}network error talking to the Hub ({type(e).__name__}); try again")
    if isinstance(e, ValueError) and "json" in str(e).lower():
        return HubError(f"{subject}the Hub sent an answer that is not valid JSON")
    return HubError(f"{subject}{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}".rstrip(": "))


def token_source() -> str:
    """Where the token in use comes from: 'HF_TOKEN', 'saved', or '' when there is none."""
    if os.environ.get("HF_TOKEN") or os.environ.get("HUGGING_FACE_HUB_TOKEN"):
        return "HF_TOKEN"
    path = Path(constants.HF_TOKEN_PATH)
    return "saved" if path.is_file() and path.read_text(encoding="utf-8").strip() else ""


def save_token(token: str) -> str:
    """Check a token against the configured Hub, then store it where huggingface_hub looks for it.

    We write huggingface_hub's own token file (HF_HOME/token) rather than call `login()`, because
    `login()` validates against the endpoint frozen at import and would ignore HF_ENDPOINT.
    Returns the user name the token belongs to.
    """
    token = token.strip()
    if not token:
        raise HubError("the token is empty")
    try:
        who = api().whoami(token=token)
    except Exception as e:  # noqa: BLE001 - every failure becomes one sentence
        err = explain(e, "token check")
        if "HTTP 401" in str(err) or "no such model" in str(err):
            raise HubError("the Hub did not accept this token; copy it again from your Hub settings") from None
        raise err from None
    renames.write_text(constants.HF_TOKEN_PATH, token, mode=0o600)
    return str(who.get("name", "?"))


def forget_token() -> None:
    Path(constants.HF_TOKEN_PATH).unlink(missing_ok=True)


# --------------------------------------------------------------------------------------------
# Search

SORTS = {  # what people call it -> what HfApi.list_models calls it
    "downloads": "downloads",
    "likes": "likes",
    "trending": "trending_score",
    "updated": "last_modified",
}

_EXPAND = [
    "author",
    "downloads",
    "likes",
    "lastModified",
    "gated",
    "tags",
    "pipeline_tag",
    "library_name",
    "safetensors",
    "gguf",
]


@dataclass(frozen=True)
class SearchQuery:
    text: str = ""
    gguf: bool = False
    safetensors: bool = False
    text_generation: bool = False
    architecture: str = ""  # a Hub tag such as "llama", "qwen2", "mistral"
    min_params_b: float | None = None  # size range, billions of parameters
    max_params_b: float | None = None
    sort: str = "downloads"
    page_size: int = 30


@dataclass(frozen=True)
class ModelSummary:
    """One search result, as the results table shows it."""

    repo_id: str
    author: str
    name: str
    downloads: int = 0
    likes: int = 0
    last_modified: datetime | None = None
    license: str = ""
    gated: str = ""  # "" (open), "auto" or "manual"
    pipeline_tag: str = ""
    tags: tuple[str, ...] = ()
    parameters: int | None = None

    def as_dict(self) -> dict[str, Any]:
        d = dict(self.__dict__)
        d["last_modified"] = self.last_modified.isoformat() if self.last_modified else None
        d["tags"] = list(self.tags)
        return d


@dataclass(frozen=True)
class SearchPage:
    results: list[ModelSummary]
    page: int
    has_more: bool


def _license_from(tags: Iterable[str], card: Any = None) -> str:
    for t in tags:
        if t.startswith("license:"):
            return t.split(":", 1)[1]
    lic = getattr(card, "license", None) if card is not None else None
    return str(lic) if lic else ""


def _params_from(info: Any) -> int | None:
    st = getattr(info, "safetensors", None)
    if st and st.get("total"):
        return int(st["total"])
    gg = getattr(info, "gguf", None)
    if isinstance(gg, dict) and gg.get("total"):
        return int(gg["total"])
    return None


def _summary(info: Any) -> ModelSummary:
    repo_id = info.id
    author, _, name = repo_id.rpartition("/")
    tags = tuple(info.tags or ())
    gated = info.gated
    return ModelSummary(
        repo_id=repo_id,
        author=info.author or author,
        name=name,
        downloads=int(info.downloads or 0),
        likes=int(info.likes or 0),
        last_modified=info.last_modified,
        license=_license_from(tags, getattr(info, "card_data", None)),
        gated="" if not gated else str(gated),
        pipeline_tag=info.pipeline_tag or "",
        tags=tags,
        parameters=_params_from(info),
    )


def _num_parameters(q: SearchQuery) -> str | None:
    parts = []
    if q.min_params_b:
        parts.append(f"min:{q.min_params_b:g}B")
    if q.max_params_b:
        parts.append(f"max:{q.max_params_b:g}B")
    return ",".join(parts) or None


def search(q: SearchQuery, page: int = 0) -> SearchPage:
    """One page of results. Pages are fetched by asking for the first (page+1)*size results and
    keeping the last page: list_models exposes no cursor, and people rarely go past page three."""
    if q.sort not in SORTS:
        raise HubError(f"unknown sort {q.sort!r}; choose one of {', '.join(SORTS)}")
    filters = [tag for flag, tag in ((q.gguf, "gguf"), (q.safetensors, "safetensors")) if flag]
    if q.architecture.strip():
        filters.append(q.architecture.strip().lower())
    start = page * q.page_size
    try:
        items = list(
            api().list_models(
                search=q.text.strip() or None,
                filter=filters or None,
                pipeline_tag="text-generation" if q.text_generation else None,
                num_parameters=_num_parameters(q),
                sort=SORTS[q.sort],  # type: ignore[arg-type]
                limit=start + q.page_size + 1,  # one extra tells whether there is a next page
                expand=_EXPAND,  # type: ignore[arg-type]
            )
        )
    except Exception as e:  # noqa: BLE001
        raise explain(e, "search") from None
    results = [_summary(m) for m in items[start : start + q.page_size]]
    return SearchPage(results=results, page=page, has_more=len(items) > start + q.page_size)


# --------------------------------------------------------------------------------------------
# One repo: details and files


@dataclass(frozen=True)
class RemoteFile:
    """A file in a Hub repo. `sha256` is the LFS hash (large files); small files carry the git
    blob id instead, which is a SHA-1 of the content and checkable just the same."""

    path: str
    size: int
    sha256: str | None = None
    blob_id: str | None = None


@dataclass(frozen=True)
class RepoDetails:
    repo_id: str
    sha: str  # the commit every file is downloaded from, so a multi-file job is consistent
    files: tuple[RemoteFile, ...]
    gated: str = ""
    license: str = ""
    tags: tuple[str, ...] = ()
    pipeline_tag: str = ""
    downloads: int = 0
    likes: int = 0
    last_modified: datetime | None = None
    parameters: int | None = None
    architecture: str = ""
    context_length: int | None = None
    base_models: tuple[str, ...] = ()


def repo_details(repo_id: str, revision: str | None = None) -> RepoDetails:
    """model_info with file metadata (sizes and LFS sha256), in our own terms."""
    repo_id = repo_id.strip().strip("/")
    if repo_id.count("/") > 1 or not repo_id:
        raise HubError(f"{repo_id!r} is not a model id; it looks like author/name")
    try:
        info = api().model_info(repo_id, revision=revision, files_metadata=True, timeout=API_TIMEOUT_S)
    except Exception as e:  # noqa: BLE001
        raise explain(e, repo_id) from None
    files = []
    for s in info.siblings or []:
        size = s.lfs.size if s.lfs else s.size
        files.append(
            RemoteFile(
                path=s.rfilename,
                size=int(size or 0),
                sha256=(s.lfs.sha256 if s.lfs else None),
                blob_id=s.blob_id,
            )
        )
    tags = tuple(info.tags or ())
    gg = info.gguf if isinstance(info.gguf, dict) else {}
    card = info.card_data
    base = getattr(card, "base_model", None) if card is not None else None
    if isinstance(base, str):
        base = [base]
    return RepoDetails(
        repo_id=info.id,
        sha=info.sha or (revision or "main"),
        files=tuple(files),
        gated="" if not info.gated else str(info.gated),
        license=_license_from(tags, card),
        tags=tags,
        pipeline_tag=info.pipeline_tag or "",
        downloads=int(info.downloads or 0),
        likes=int(info.likes or 0),
        last_modified=info.last_modified,
        parameters=_params_from(info),
        architecture=str(gg.get("architecture") or ""),
        context_length=int(gg["context_length"]) if gg.get("context_length") else None,
        base_models=tuple(str(b) for b in (base or ())),
    )


def file_url(repo_id: str, filename: str, revision: str) -> str:
    return hf_hub_url(repo_id, filename, revision=revision, endpoint=endpoint())


def fetch_text(repo_id: str, filename: str, revision: str = "main", limit: int = 2_000_000) -> str:
    """A small text file of a repo (README.md, config.json) without touching any cache."""
    url = file_url(repo_id, filename, revision)
    try:
        r = get_session().get(url, headers=headers(), timeout=API_TIMEOUT_S)
        hf_raise_for_status(r)
    except Exception as e:  # noqa: BLE001
        raise explain(e, f"{repo_id}/{filename}") from None
    return r.content[:limit].decode("utf-8", "replace")


def readme(repo_id: str, revision: str = "main") -> str:
    """The model card's Markdown without its YAML header ('' when the repo has none)."""
    try:
        text = fetch_text(repo_id, "README.md", revision)
    except HubError:
        return ""
    if text.startswith("---"):
        end = text.find("\n---", 3)
        if end != -1:
            text = text[end + 4 :].lstrip("\n")
    return text


# --------------------------------------------------------------------------------------------
# Grouping files the way people think of them

# Quant names as llama.cpp, unsloth and friends write them in file names (longest first).
_QUANT_RE = re.compile(
    r"(?<![A-Za-z0-9])((?:UD-)?(?:I?Q[1-8](?:_[0-9A-Z]{1,4}){0,3}|TQ[12]_0|MXFP4(?:_MOE)?|B?F16|F32))(?![A-Za-z0-9])",
    re.IGNORECASE,
)
_SHARD_RE = re.compile(r"-(\d{5})-of-(\d{5})(?=\.gguf$)", re.IGNORECASE)
CHECKPOINT_EXTRAS = (".json", ".model", ".tiktoken", ".txt", ".jinja")

# The levels worth recommending: below Q4_K_M quality drops quickly, above Q6_K size grows for
# differences few people can measure.
RECOMMENDED_RANGE = ("Q4_K_M", "Q4_K_L", "Q5_K_S", "Q5_K_M", "Q5_K_L", "Q6_K", "Q6_K_L")


def quant_from_name(filename: str) -> str | None:
    """'Llama-3-8B-Instruct-Q4_K_M.gguf' -> 'Q4_K_M' (None when the name does not say)."""
    stem = _SHARD_RE.sub("", Path(filename).name)
    stem = re.sub(r"\.gguf$", "", stem, flags=re.IGNORECASE)
    found = _QUANT_RE.findall(stem)
    return found[-1].upper() if found else None


def shard_info(filename: str) -> tuple[int, int] | None:
    """'x-00002-of-00003.gguf' -> (2, 3)."""
    m = _SHARD_RE.search(filename)
    return (int(m.group(1)), int(m.group(2))) if m else None


@dataclass(frozen=True)
class FileGroup:
    """What a person picks: one quant level (all its shards), or one whole checkpoint."""

    label: str  # "Q4_K_M", "safetensors checkpoint", or the file name when nothing better
    kind: str  # "gguf" | "checkpoint" | "projector"
    files: tuple[RemoteFile, ...]
    quant: str | None = None
    shards: int = 1
    complete: bool = True  # every shard of a split file is present

    @property
    def size(self) -> int:
        return sum(f.size for f in self.files)

    @property
    def paths(self) -> list[str]:
        return [f.path for f in self.files]


def _quant_rank(q: str | None) -> float:
    """Bits per weight, roughly, to order levels from small to large."""
    if not q:
        return 99.0
    q = q.upper().removeprefix("UD-")
    if q in ("F32",):
        return 32
    if q in ("F16", "BF16"):
        return 16
    m = re.match(r"I?Q(\d)", q) or re.match(r"TQ(\d)", q)
    base = float(m.group(1)) if m else 4.0
    suffix = q.split("_", 1)[1] if "_" in q else ""
    return base + {
        "XXS": 0.0,
        "XS": 0.1,
        "S": 0.2,
        "K_S": 0.3,
        "0": 0.35,
        "NL": 0.4,
        "M": 0.45,
        "K_M": 0.5,
        "1": 0.55,
        "K_L": 0.6,
        "K_XL": 0.7,
        "L": 0.6,
    }.get(suffix, 0.4)


def group_files(files: Iterable[RemoteFile]) -> list[FileGroup]:
    """GGUF files by quant level (shards together), safetensors checkpoints as one entry each."""
    files = list(files)
    groups: list[FileGroup] = []
    gguf_sets: dict[str, list[RemoteFile]] = {}
    for f in files:
        if f.path.lower().endswith(".gguf"):
            key = _SHARD_RE.sub("", f.path)
            gguf_sets.setdefault(key, []).append(f)
    for key, members in gguf_sets.items():
        members.sort(key=lambda f: f.path)
        name = PurePosixPath(key).name  # Hub paths use '/' on every system
        shards = shard_info(members[0].path)
        n = shards[1] if shards else 1
        if "mmproj" in name.lower():
            kind, label = "projector", f"vision projector ({quant_from_name(name) or name})"
        else:
            kind, label = "gguf", quant_from_name(name) or name
        groups.append(
            FileGroup(
                label=label,
                kind=kind,
                files=tuple(members),
                quant=quant_from_name(name),
                shards=n,
                complete=len(members) == n,
            )
        )
    # Label clashes (two files both "Q4_K_M" in different folders): show the file name instead.
    counts: dict[str, int] = {}
    for g in groups:
        counts[g.label] = counts.get(g.label, 0) + 1
    groups = [
        g
        if counts[g.label] == 1
        else FileGroup(
            label=PurePosixPath(_SHARD_RE.sub("", g.files[0].path)).name,
            kind=g.kind,
            files=g.files,
            quant=g.quant,
            shards=g.shards,
            complete=g.complete,
        )
        for g in groups
    ]
    groups.sort(key=lambda g: (g.kind != "gguf", _quant_rank(g.quant), g.label))
    # A checkpoint: the *.safetensors in one folder plus the small files that describe them.
    folders: dict[str, list[RemoteFile]] = {}
    for f in files:
        if f.path.endswith(".safetensors"):
            folders.setdefault(str(PurePosixPath(f.path).parent), []).append(f)  # 'a/b', also on Windows
    for folder, weights in sorted(folders.items()):
        extras = [
            f
            for f in files
            if str(PurePosixPath(f.path).parent) == folder
            and f.path.endswith(CHECKPOINT_EXTRAS)
            and not f.path.endswith(".safetensors")
        ]
        label = "safetensors checkpoint" if folder == "." else f"safetensors checkpoint ({folder})"
        groups.append(
            FileGroup(label=label, kind="checkpoint", files=tuple(sorted(weights + extras, key=lambda f: f.path)))
        )
    return groups


# --------------------------------------------------------------------------------------------
# Will it fit? The one fit model (quantdesk.core.fit) answers; the Hub only supplies the shape.


def shape_from_config(config: dict[str, Any]) -> ModelSize | None:
    """A transformers config.json -> the model's ModelSize without weights (each file has its own
    size: ModelSize.with_weights), or None when the config lacks the numbers."""
    cfg = config.get("text_config", config) if isinstance(config.get("text_config"), dict) else config
    try:
        layers = int(cfg["num_hidden_layers"])
        heads = int(cfg["num_attention_heads"])
        hidden = int(cfg["hidden_size"])
    except (KeyError, TypeError, ValueError):
        return None
    kv_heads = int(cfg.get("num_key_value_heads") or heads)
    head_dim = int(cfg.get("head_dim") or hidden // max(heads, 1))
    ctx = cfg.get("max_position_embeddings")
    return ModelSize(0, layers, 2 * kv_heads * head_dim, int(ctx) if ctx else None)


def estimate_shape(parameters: int | None, weights_bytes: int, bits_per_weight: float) -> ModelSize:
    """When no config is at hand: modern GQA models keep about 16 KB of KV cache per billion
    parameters per token (Llama-3-8B: 128 KB/token); we err on the large side."""
    params = parameters or int(weights_bytes * 8 / max(bits_per_weight, 1.0))
    per_token = max(8192, int(params * 1.6e-5))  # bytes per token of context (f16 K and V)
    # One "layer" holding the whole cache, so the arithmetic is the same as for known models.
    return ModelSize(0, n_layers=1, kv_dims=per_token // 2, estimated=True)


def model_shape(details: RepoDetails, groups: list[FileGroup]) -> ModelSize:
    """The best shape we can get cheaply: the repo's config.json, else its base model's, else an
    estimate from the parameter count. Network failures just fall back to the estimate."""
    names = {f.path for f in details.files}
    candidates = [(details.repo_id, details.sha)] if "config.json" in names else []
    candidates += [(b, "main") for b in details.base_models[:1]]
    for repo, rev in candidates:
        try:
            shape = shape_from_config(json.loads(fetch_text(repo, "config.json", rev)))
        except (HubError, ValueError):
            continue
        if shape:
            return shape
    ggufs = [g for g in groups if g.kind == "gguf"]
    ref = min(ggufs, key=lambda g: abs(_quant_rank(g.quant) - 4.5)) if ggufs else None
    if ref is not None:
        return estimate_shape(details.parameters, ref.size, _quant_rank(ref.quant) + 0.5)
    weights = sum(g.size for g in groups if g.kind == "checkpoint")
    return estimate_shape(details.parameters, weights, 16)


@dataclass(frozen=True)
class GroupFit:
    group: FileGroup
    fit: FitEstimate
    recommended: bool = False


def assess(
    groups: list[FileGroup],
    shape: ModelSize,
    context: int,
    machine: Machine | None = None,
    gpu_layers: int | None = None,
) -> list[GroupFit]:
    """A verdict for every group, and the recommended one: the largest level that fits with room
    to spare, preferring Q4_K_M..Q6_K (the sweet spot) over bigger files. gpu_layers None: the
    offload every page assumes (quantdesk.core.fit.default_gpu_layers)."""
    machine = machine or Machine.now()
    layers = default_gpu_layers(machine) if gpu_layers is None else gpu_layers
    out = [GroupFit(g, estimate(shape.with_weights(g.size), context, machine, layers)) for g in groups]
    fitting = [x for x in out if x.group.kind == "gguf" and x.group.complete and x.fit.verdict is Verdict.FITS]
    sweet = [x for x in fitting if (x.group.quant or "").removeprefix("UD-") in RECOMMENDED_RANGE]
    pool = sweet or [x for x in fitting if _quant_rank(x.group.quant) < 8.5] or fitting
    if pool:
        best = max(pool, key=lambda x: x.group.size)
        out = [GroupFit(x.group, x.fit, recommended=x is best) for x in out]
    return out


@dataclass
class RepoView:
    """Everything the model page shows, fetched in one job."""

    details: RepoDetails
    readme: str
    groups: list[FileGroup]
    shape: ModelSize
    other_files: list[RemoteFile] = field(default_factory=list)


def load_repo_view(repo_id: str) -> RepoView:
    details = repo_details(repo_id)
    groups = group_files(details.files)
    grouped = {p for g in groups for p in g.paths}
    others = [f for f in details.files if f.path not in grouped]
    return RepoView(
        details=details,
        readme=readme(repo_id, details.sha),
        groups=groups,
        shape=model_shape(details, groups),
        other_files=others,
    )
