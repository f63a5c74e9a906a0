"""Replies as formatted text: Markdown prose through Qt's own parser, code blocks highlighted.

A reply is split into prose and fenced code blocks. Prose goes through QTextCursor.insertMarkdown
(CommonMark + GitHub tables/lists); each code block becomes a shaded one-cell table with the code
coloured by Pygments. A fence that is still open (the reply is streaming) is shown as code up to
the end of the text, so code does not flicker between prose and code while it arrives.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass
from functools import lru_cache

from PySide6.QtGui import QTextCursor, QTextDocument

from quantdesk.ui import theme

_FENCE = re.compile(r"^[ \t]*(```|~~~)[ \t]*([\w+#.-]*)[^\n]*$", re.MULTILINE)


@dataclass
class Segment:
    kind: str  # "prose" or "code"
    text: str
    language: str = ""


def split(text: str) -> list[Segment]:
    """Prose and fenced code, in order; an unclosed fence runs to the end."""
    out: list[Segment] = []
    pos = 0
    while True:
        start = _FENCE.search(text, pos)
        if start is None:
            if text[pos:].strip():
                out.append(Segment("prose", text[pos:]))
            return out
        if text[pos : start.start()].strip():
            out.append(Segment("prose", text[pos : start.start()]))
        fence, lang = start.group(1), start.group(2)
        body_start = start.end() + 1
        end = re.compile(rf"^[ \t]*{re.escape(fence)}[ \t]*$", re.MULTILINE).search(text, body_start)
        if end is None:
            out.append(Segment("code", text[body_start:], lang))
            return out
        out.append(Segment("code", text[body_start : end.start()].rstrip("\n"), lang))
        pos = end.end() + 1


# Pygments token type (by its top-level name) -> a tone; the look stays calm: few colours.
_LIGHT_TOKENS = {
    "Keyword": "#8a3ffc",
    "Name.Builtin": "#0f62fe",
    "Name.Function": "#0f62fe",
    "Name.Class": "#0f62fe",
    "Literal.String": "#198038",
    "Literal.Number": "#b45309",
    "Comment": "#6f6f78",
    "Operator": "#5a5a66",
    "Name.Decorator": "#b45309",
}
_DARK_TOKENS = {
    "Keyword": "#c5a3ff",
    "Name.Builtin": "#82b1ff",
    "Name.Function": "#82b1ff",
    "Name.Class": "#82b1ff",
    "Literal.String": "#8fd694",
    "Literal.Number": "#f0b36a",
    "Comment": "#8c8c96",
    "Operator": "#b0b0ba",
    "Name.Decorator": "#f0b36a",
}


def _token_color(ttype, table: dict[str, str]) -> str:
    """The colour of the most specific entry in `table` that `ttype` (e.g. Keyword.Constant) falls under."""
    while ttype is not None and len(ttype):
        color = table.get(".".join(ttype))
        if color:
            return color
        ttype = ttype.parent
    return ""


@lru_cache(maxsize=32)
def _lexer(language: str):
    """A Pygments lexer for a fence's language name, or None (lexers are costly to build)."""
    try:
        from pygments.lexers import get_lexer_by_name
        from pygments.util import ClassNotFound
    except ImportError:
        return None
    try:
        return get_lexer_by_name(language) if language else None
    except ClassNotFound:
        return None


@lru_cache(maxsize=64)
def highlight(code: str, language: str, dark: bool = False) -> str:
    """Code as HTML spans coloured by Pygments (escaped plain text for an unknown language).

    Cached: while a reply streams, every finished code block is re-rendered on each update and
    comes straight from here; only the block still growing is highlighted again.
    """
    lexer = _lexer(language.lower())
    if lexer is None:
        return html.escape(code)
    table = _DARK_TOKENS if dark else _LIGHT_TOKENS
    parts = []
    for ttype, value in lexer.get_tokens(code):
        color = _token_color(ttype, table)
        text = html.escape(value)
        parts.append(f'<span style="color:{color}">{text}</span>' if color else text)
    return "".join(parts).rstrip("\n")


def render_into(doc: QTextDocument, text: str) -> None:
    """Replace `doc`'s content with `text` rendered as Markdown with highlighted code."""
    doc.clear()
    cursor = QTextCursor(doc)
    c = theme.colors()
    first = True
    for seg in split(text):
        if not first:
            cursor.insertBlock()
        first = False
        if seg.kind == "prose":
            cursor.insertMarkdown(seg.text.strip("\n"))
        else:
            label = (
                f'<div style="color:{c["muted"]}; font-size:11px">{html.escape(seg.language)}</div>'
                if seg.language
                else ""
            )
            cursor.insertHtml(
                f'<table width="100%" cellpadding="8" cellspacing="0" style="background-color:{c["code_bg"]}; '
                f'border-color:{c["border"]}" border="0"><tr><td>{label}'
                '<pre style="font-family: monospace; font-size: 12px; margin:0">'
                f"{highlight(seg.text, seg.language, theme.is_dark())}</pre>"
                f"</td></tr></table>"
            )
            cursor.movePosition(QTextCursor.MoveOperation.End)
