"""The live request log: one line per HTTP request, for the Server page and the terminal.

Written by the server's event loop, read by the window's thread (by sequence number, so a page
that polls gets each entry once) and printed by `quantdesk serve`.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

log = logging.getLogger("quantdesk.server.requests")


@dataclass(frozen=True)
class LogEntry:
    seq: int
    when: float  # time.time()
    client: str
    method: str
    path: str
    status: int
    duration_ms: float
    model: str = ""
    prompt_tokens: int = 0
    completion_tokens: int = 0
    note: str = ""  # an error's message, "client disconnected", ...

    def line(self) -> str:
        """'12:03:04 POST /v1/chat/completions 200 412 ms starter 23+48 tokens'"""
        stamp = time.strftime("%H:%M:%S", time.localtime(self.when))
        text = f"{stamp} {self.method} {self.path} {self.status} {self.duration_ms:.0f} ms"
        if self.model:
            text += f" {self.model}"
        if self.prompt_tokens or self.completion_tokens:
            text += f" {self.prompt_tokens}+{self.completion_tokens} tokens"
        if self.note:
            text += f" — {self.note}"
        return text


class RequestLog:
    def __init__(self, keep: int = 500) -> None:
        self._entries: deque[LogEntry] = deque(maxlen=keep)
        self._lock = threading.Lock()
        self._seq = 0
        self.listeners: list[Callable[[LogEntry], None]] = []  # called in the server's thread

    def add(self, **fields: object) -> LogEntry:
        with self._lock:
            self._seq += 1
            entry = LogEntry(seq=self._seq, when=time.time(), **fields)  # type: ignore[arg-type]
            self._entries.append(entry)
        log.info("%s", entry.line())
        for listener in self.listeners:
            listener(entry)
        return entry

    def since(self, seq: int) -> list[LogEntry]:
        """Entries after sequence number `seq` (0: all that are kept)."""
        with self._lock:
            return [e for e in self._entries if e.seq > seq]
