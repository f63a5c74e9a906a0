"""What each input kind does with a case, inside the child process: the same calls the app and
the CLI make with such a file, and what came of it.

Each `run_*` gets the case's folder (src: the seed's files, one of them mutated; out: an empty
output folder) and returns a Report. The contract under test (quantdesk.core.errors): anything
wrong with the input is a QuantdeskError (or an OSError) whose text is one printable line; any
other exception escapes to the child's wrapper and is classified "traceback". Outputs that were
written must read back with our own reader.
"""

from __future__ import annotations

import contextlib
import io
import json
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class Report:
    ok: bool = True  # the main operation succeeded (else it refused, with a message)
    messages: list[tuple[str, str]] = field(default_factory=list)  # (where raised, text)
    expected_out: list[str] = field(default_factory=list)  # what out/ must hold afterwards
    unreadable: str | None = None  # why an output did not read back

    def refused(self, e: BaseException, text: str | None = None) -> None:
        from quantdesk.core.errors import user_message

        message = text if text is not None else user_message(e)
        assert message is not None
        self.messages.append((where(e), message))


def where(e: BaseException) -> str:
    """The innermost frame of the project that raised e ("quantdesk/core/gguf/index.py:_parse")."""
    frames = traceback.extract_tb(e.__traceback__)
    ours = [f for f in frames if "/quantdesk/" in f.filename or "/tools/fuzz/" in f.filename] or frames
    if not ours:
        return "?"
    f = ours[-1]
    path = f.filename
    for marker in ("/quantdesk/", "/tools/fuzz/"):
        if marker in path:
            path = marker.strip("/") + "/" + path.split(marker, 1)[1]
    return f"{path}:{f.name}"


def _readable(path: Path) -> str | None:
    from quantdesk.core.gguf.index import GGUFError, read_index

    try:
        idx = read_index(path)
    except GGUFError as e:
        return str(e)
    if not idx.tensors:
        return "no tensors"
    return None


def _cli(args: list[str], report: Report) -> str:
    """`quantdesk ARGS` in this process: one line on stderr and exit 2 for a refusal, and stdout
    without anything a terminal would act on. Returns stdout."""
    from quantdesk.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = main(args)
    if rc == 2:
        report.messages.append((f"cli {args[0]}", err.getvalue().removesuffix("\n").removeprefix("quantdesk: ")))
    elif rc != 0 or err.getvalue():
        report.messages.append((f"cli {args[0]} exit {rc}", err.getvalue() + "\n(unexpected)"))
    for line in out.getvalue().splitlines():
        if "\x1b" in line or not line.isprintable():
            report.messages.append((f"cli {args[0]} output", line))
    return out.getvalue()


def _quantize(src: Path, out: Path, params: dict[str, Any], report: Report, imatrix: Path | None = None) -> None:
    from quantdesk.core.errors import QuantdeskError
    from quantdesk.core.quantize.run import QuantizeRequest, quantize_file

    request = QuantizeRequest(
        src,
        out / "q.gguf",
        params.get("level", "Q8_0"),
        threads=1,
        imatrix=imatrix,
        allow_requantize=params.get("allow_requantize", True),
    )
    try:
        quantize_file(request)
    except (QuantdeskError, OSError) as e:
        report.ok = False
        report.refused(e)
        return
    report.expected_out = ["q.gguf", "q.gguf.card.json"]
    report.unreadable = _readable(out / "q.gguf")


def run_gguf(src: Path, out: Path, target: str, params: dict[str, Any]) -> Report:
    """`quantdesk info` (text and --json), the Quantize page's level list, and a quantize."""
    from quantdesk.core.errors import QuantdeskError
    from quantdesk.core.quantize.run import summarize_source

    report = Report()
    path = src / target
    _cli(["info", str(path)], report)
    text = _cli(["info", "--json", str(path)], report)
    if text:
        json.loads(text)  # --json must print JSON
    try:
        summarize_source(path)
    except (QuantdeskError, OSError) as e:
        report.refused(e)
    _quantize(path, out, params, report)
    return report


def run_imatrix(src: Path, out: Path, target: str, params: dict[str, Any]) -> Report:
    """Reading the imatrix, then quantizing the seed model with it."""
    from quantdesk.core.errors import QuantdeskError
    from quantdesk.core.quantize.imatrix import load_imatrix

    report = Report()
    try:
        load_imatrix(src / target)
    except (QuantdeskError, OSError) as e:
        report.refused(e)
    _quantize(src / "model.gguf", out, {**params, "level": params.get("level", "Q4_K_M")}, report, src / target)
    return report


def run_checkpoint(src: Path, out: Path, target: str, params: dict[str, Any]) -> Report:
    """The Library's description (which never raises for bad input), then a conversion."""
    from quantdesk.core.convert import ConvertRequest, convert, describe_checkpoint
    from quantdesk.core.errors import QuantdeskError

    report = Report()
    info = describe_checkpoint(src)
    if info.problem is not None:
        report.messages.append(("describe_checkpoint", info.problem))
    outtype = params.get("outtype", "f16")
    try:
        convert(ConvertRequest(src, out / "m.gguf", outtype))
    except (QuantdeskError, OSError) as e:
        report.ok = False
        report.refused(e)
        return report
    report.expected_out = ["m.gguf"] + (["m.gguf.card.json"] if outtype.lower() not in ("f16", "bf16", "f32") else [])
    report.unreadable = _readable(out / "m.gguf")
    return report


MESSAGES = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "Hello\nthere"},
    {"role": "assistant", "content": "Hi."},
    {"role": "user", "content": "Again"},
]


def run_chat_template(src: Path, out: Path, target: str, params: dict[str, Any]) -> Report:
    """A template from a file rendered as the chat engine renders it; the engine turns the
    template's own errors (jinja2.TemplateError, and ValueError/TypeError from raise_exception)
    into a ChatError quoting them, so those are refusals whose text must still be one line."""
    import jinja2

    from quantdesk.core.chat.templates import render

    report = Report()
    source = (src / target).read_text(encoding="utf-8", errors="replace")
    try:
        render(source, MESSAGES, bos_token="<s>", eos_token="</s>")
    except (jinja2.TemplateError, ValueError, TypeError) as e:
        report.ok = False
        report.refused(e, f"the model's chat template failed on this conversation ({type(e).__name__}: {e})")
    return report


class _FakeHubApi:
    """HfApi's two calls, answering with the case's JSON the way huggingface_hub parses the Hub's."""

    def __init__(self, src: Path):
        self.src = src

    def model_info(self, repo_id: str, **kwargs: Any) -> Any:
        from huggingface_hub.hf_api import ModelInfo

        return ModelInfo(**json.loads((self.src / "model_info.json").read_text(encoding="utf-8")))

    def list_models(self, **kwargs: Any) -> Any:
        from huggingface_hub.hf_api import ModelInfo

        for item in json.loads((self.src / "list_models.json").read_text(encoding="utf-8")):
            yield ModelInfo(**item)


def run_hub(src: Path, out: Path, target: str, params: dict[str, Any]) -> Report:
    """A model's page (details, file groups, shape from its config.json) and a search page."""
    from quantdesk.core.hub import client

    report = Report()
    client.api = lambda: _FakeHubApi(src)  # type: ignore[assignment]
    client.fetch_text = lambda repo, name, rev="main", limit=0: (src / "config.json").read_text(encoding="utf-8")  # type: ignore[assignment]
    try:
        details = client.repo_details("someone/Tiny-Model-GGUF")
        groups = client.group_files(details.files)
        client.model_shape(details, groups)
    except client.HubError as e:
        report.ok = False
        report.refused(e)
    try:
        client.search(client.SearchQuery())
    except client.HubError as e:
        report.refused(e)
    return report


def run_server(src: Path, out: Path, target: str, params: dict[str, Any]) -> Report:
    """A request body as the server reads it (transport.read_json's rules) and parses it."""
    from quantdesk.server import anthropic_api, openai_api
    from quantdesk.server.errors import ApiError, bad_request

    report = Report()
    raw = (src / target).read_bytes()
    parse = {"messages": anthropic_api.parse_messages, "responses": openai_api.parse_responses}.get(
        target.removesuffix(".json"), openai_api.parse_chat
    )
    try:
        try:
            body = json.loads(raw)
        except (ValueError, UnicodeDecodeError) as e:
            raise bad_request(f"We could not parse the JSON body of your request ({e}).", code="invalid_json") from None
        if not isinstance(body, dict):
            raise bad_request("the request body must be a JSON object", code="invalid_json")
        parse(body)
    except ApiError as e:
        if e.status >= 500:
            raise
        report.ok = False
        report.refused(e, e.message)
    return report


RUNNERS = {
    "gguf": run_gguf,
    "imatrix_gguf": run_imatrix,
    "imatrix_dat": run_imatrix,
    "safetensors": run_checkpoint,
    "config": run_checkpoint,
    "tokenizer": run_checkpoint,
    "chat_template": run_chat_template,
    "hub": run_hub,
    "server": run_server,
}
