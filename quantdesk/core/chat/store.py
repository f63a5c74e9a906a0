"""Conversations saved in SQLite (WAL) in the data folder, written as the reply streams.

Why SQLite with WAL: every few tokens the growing reply is written in its own small transaction,
so a killed app loses at most the last few tokens and never the conversation, and readers (the
conversation list) are not blocked by the writer. One connection is shared by the UI thread and
the worker that streams a reply, guarded by a lock (check_same_thread=False).

Each conversation keeps the model file and the settings it used. Settings per model file (the
defaults a new conversation with that model starts from) live here too.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from quantdesk.core import paths

SCHEMA = """
CREATE TABLE IF NOT EXISTS conversations (
    id INTEGER PRIMARY KEY,
    title TEXT NOT NULL,
    model_path TEXT NOT NULL DEFAULT '',
    settings TEXT NOT NULL DEFAULT '{}',
    created REAL NOT NULL,
    updated REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS messages (
    id INTEGER PRIMARY KEY,
    conversation_id INTEGER NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
    role TEXT NOT NULL,
    content TEXT NOT NULL,
    stats TEXT NOT NULL DEFAULT '{}',
    complete INTEGER NOT NULL DEFAULT 1,
    created REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS messages_by_conversation ON messages(conversation_id, id);
CREATE TABLE IF NOT EXISTS model_settings (
    model_path TEXT PRIMARY KEY,
    settings TEXT NOT NULL
);
"""

UNTITLED = "New chat"


@dataclass
class StoredMessage:
    id: int
    role: str
    content: str
    stats: dict[str, Any] = field(default_factory=dict)
    complete: bool = True  # False while streaming, or if the app died mid-reply

    def as_chat(self) -> dict[str, str]:
        return {"role": self.role, "content": self.content}


@dataclass
class Conversation:
    id: int
    title: str
    model_path: str
    settings: dict[str, Any]
    created: float
    updated: float


def default_path() -> Path:
    return paths.data_dir() / "conversations.sqlite3"


class Store:
    def __init__(self, path: Path | None = None):
        self.path = Path(path) if path else default_path()
        self._lock = threading.RLock()
        self.moved_aside: Path | None = None  # an unreadable database found at start, kept here
        try:
            self._db = self._open()
        except sqlite3.DatabaseError:
            # Not a database (or damaged beyond SQLite's reach): keep the file for the user or for
            # recovery tools, and start an empty one so the app still works.
            aside = self.path.with_name(f"{self.path.name}.unreadable-{int(time.time())}")
            self.path.replace(aside)
            for suffix in ("-wal", "-shm"):
                side = self.path.with_name(self.path.name + suffix)
                if side.exists():
                    side.replace(aside.with_name(aside.name + suffix))
            self.moved_aside = aside
            self._db = self._open()

    def _open(self) -> sqlite3.Connection:
        db = sqlite3.connect(str(self.path), check_same_thread=False, isolation_level=None)
        try:
            db.row_factory = sqlite3.Row
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL: durable across app crashes
            db.execute("PRAGMA foreign_keys=ON")
            db.executescript(SCHEMA)
        except sqlite3.DatabaseError:
            db.close()
            raise
        return db

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def _write(self, sql: str, args: tuple = ()) -> sqlite3.Cursor:
        with self._lock:
            return self._db.execute(sql, args)

    def _read(self, sql: str, args: tuple = ()) -> list[sqlite3.Row]:
        with self._lock:
            return self._db.execute(sql, args).fetchall()

    # -- conversations ------------------------------------------------------------------------
    def create_conversation(
        self, model_path: str | Path = "", settings: dict[str, Any] | None = None, title: str = UNTITLED
    ) -> int:
        now = time.time()
        cur = self._write(
            "INSERT INTO conversations(title, model_path, settings, created, updated) VALUES (?,?,?,?,?)",
            (title, str(model_path), json.dumps(settings or {}), now, now),
        )
        assert cur.lastrowid is not None  # set by every successful INSERT
        return cur.lastrowid

    def conversation(self, conversation_id: int) -> Conversation | None:
        rows = self._read("SELECT * FROM conversations WHERE id=?", (conversation_id,))
        return _conversation(rows[0]) if rows else None

    def conversations(self, search: str = "") -> list[Conversation]:
        """Newest first; `search` matches titles and message text (case-insensitive)."""
        if not search.strip():
            rows = self._read("SELECT * FROM conversations ORDER BY updated DESC, id DESC")
        else:
            like = "%" + search.strip().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
            rows = self._read(
                "SELECT * FROM conversations c WHERE c.title LIKE ? ESCAPE '\\' OR EXISTS ("
                "SELECT 1 FROM messages m WHERE m.conversation_id=c.id AND m.content LIKE ? ESCAPE '\\') "
                "ORDER BY updated DESC, id DESC",
                (like, like),
            )
        return [_conversation(r) for r in rows]

    def rename(self, conversation_id: int, title: str) -> None:
        title = " ".join(title.split()) or UNTITLED
        self._write("UPDATE conversations SET title=? WHERE id=?", (title[:200], conversation_id))

    def delete(self, conversation_id: int) -> None:
        self._write("DELETE FROM conversations WHERE id=?", (conversation_id,))

    def set_conversation_model(self, conversation_id: int, model_path: str | Path, settings: dict[str, Any]) -> None:
        self._write(
            "UPDATE conversations SET model_path=?, settings=? WHERE id=?",
            (str(model_path), json.dumps(settings), conversation_id),
        )

    def _touch(self, conversation_id: int) -> None:
        self._write("UPDATE conversations SET updated=? WHERE id=?", (time.time(), conversation_id))

    # -- messages -----------------------------------------------------------------------------
    def add_message(
        self, conversation_id: int, role: str, content: str, complete: bool = True, stats: dict[str, Any] | None = None
    ) -> int:
        cur = self._write(
            "INSERT INTO messages(conversation_id, role, content, stats, complete, created) VALUES (?,?,?,?,?,?)",
            (conversation_id, role, content, json.dumps(stats or {}), int(complete), time.time()),
        )
        self._touch(conversation_id)
        if role == "user":
            conv = self.conversation(conversation_id)
            if conv is not None and conv.title == UNTITLED:
                self.rename(conversation_id, title_from(content))
        assert cur.lastrowid is not None  # set by every successful INSERT
        return cur.lastrowid

    def update_message(
        self, message_id: int, content: str, complete: bool | None = None, stats: dict[str, Any] | None = None
    ) -> None:
        sets: list[str] = ["content=?"]
        args: list[object] = [content]
        if complete is not None:
            sets.append("complete=?")
            args.append(int(complete))
        if stats is not None:
            sets.append("stats=?")
            args.append(json.dumps(stats))
        self._write(f"UPDATE messages SET {', '.join(sets)} WHERE id=?", (*args, message_id))

    def messages(self, conversation_id: int) -> list[StoredMessage]:
        rows = self._read("SELECT * FROM messages WHERE conversation_id=? ORDER BY id", (conversation_id,))
        return [
            StoredMessage(r["id"], r["role"], r["content"], _json_dict(r["stats"]), bool(r["complete"])) for r in rows
        ]

    def delete_from(self, conversation_id: int, message_id: int) -> None:
        """Drop a message and everything after it (regenerate, edit-and-continue)."""
        self._write("DELETE FROM messages WHERE conversation_id=? AND id>=?", (conversation_id, message_id))
        self._touch(conversation_id)

    def streaming_writer(
        self, message_id: int, every_s: float = 0.25, every_tokens: int = 8
    ) -> Callable[[str, int], None]:
        """A ReplyStream listener that saves the growing reply every few tokens or a quarter second."""
        last = [time.monotonic(), 0]

        def write(text: str, tokens: int) -> None:
            now = time.monotonic()
            if now - last[0] >= every_s or tokens - last[1] >= every_tokens:
                last[0], last[1] = now, tokens
                self.update_message(message_id, text, complete=False)

        return write

    # -- per-model settings -------------------------------------------------------------------
    def model_settings(self, model_path: str | Path) -> dict[str, Any] | None:
        rows = self._read("SELECT settings FROM model_settings WHERE model_path=?", (str(model_path),))
        return _json_dict(rows[0]["settings"]) if rows else None

    def save_model_settings(self, model_path: str | Path, settings: dict[str, Any]) -> None:
        self._write(
            "INSERT INTO model_settings(model_path, settings) VALUES (?,?) "
            "ON CONFLICT(model_path) DO UPDATE SET settings=excluded.settings",
            (str(model_path), json.dumps(settings)),
        )

    # -- export -------------------------------------------------------------------------------
    def export_json(self, conversation_id: int) -> str:
        conv = self.conversation(conversation_id)
        if conv is None:
            raise KeyError(conversation_id)
        data = {
            "title": conv.title,
            "model": conv.model_path,
            "settings": conv.settings,
            "created": conv.created,
            "messages": [
                {"role": m.role, "content": m.content, **({"stats": m.stats} if m.stats else {})}
                for m in self.messages(conversation_id)
            ],
        }
        return json.dumps(data, indent=2, ensure_ascii=False)

    def export_markdown(self, conversation_id: int) -> str:
        conv = self.conversation(conversation_id)
        if conv is None:
            raise KeyError(conversation_id)
        lines = [f"# {conv.title}", ""]
        if conv.model_path:
            lines += [f"Model: `{Path(conv.model_path).name}`", ""]
        names = {"user": "You", "assistant": "Assistant", "system": "System"}
        for m in self.messages(conversation_id):
            lines += [f"**{names.get(m.role, m.role)}:**", "", m.content.strip(), ""]
        return "\n".join(lines).rstrip() + "\n"


def title_from(text: str, limit: int = 48) -> str:
    """A conversation's title from its first message: the first line, cut at a word."""
    line = " ".join(text.strip().split("\n", 1)[0].split())
    if len(line) <= limit:
        return line or UNTITLED
    cut = line[:limit].rsplit(" ", 1)[0]
    return (cut or line[:limit]) + "…"


def _json_dict(text: str | None) -> dict[str, Any]:
    """A JSON object column; anything unreadable counts as empty rather than breaking the chat list."""
    try:
        value = json.loads(text or "{}")
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _conversation(r: sqlite3.Row) -> Conversation:
    return Conversation(r["id"], r["title"], r["model_path"], _json_dict(r["settings"]), r["created"], r["updated"])
