"""Conversations in SQLite: saved as they grow, searchable, exportable, and safe from a killed app."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from quantdesk.core.chat.store import UNTITLED, Store, title_from


def test_conversation_life_cycle(tmp_path):
    store = Store(tmp_path / "c.sqlite3")
    assert store._read("PRAGMA journal_mode")[0][0] == "wal"
    cid = store.create_conversation("/models/a.gguf", {"temperature": 0.2})
    assert store.conversation(cid).title == UNTITLED
    u = store.add_message(cid, "user", "How do I bake bread at home?\nI have flour.")
    a = store.add_message(cid, "assistant", "", complete=False)
    assert store.conversation(cid).title == "How do I bake bread at home?"
    store.update_message(a, "Mix flour, water", complete=False)
    store.update_message(a, "Mix flour, water, yeast.", complete=True, stats={"tokens": 6})
    msgs = store.messages(cid)
    assert [(m.role, m.content, m.complete) for m in msgs] == [
        ("user", "How do I bake bread at home?\nI have flour.", True),
        ("assistant", "Mix flour, water, yeast.", True),
    ]
    assert msgs[1].stats == {"tokens": 6}

    other = store.create_conversation("/models/b.gguf")
    store.add_message(other, "user", "Tell me about cats")
    assert [c.id for c in store.conversations()] == [other, cid]  # newest first
    assert [c.id for c in store.conversations("yeast")] == [cid]  # message text matches
    assert [c.id for c in store.conversations("CATS")] == [other]  # titles too, any case
    assert store.conversations("100%") == []  # LIKE wildcards are literal

    store.rename(cid, "  Bread   ")
    assert store.conversation(cid).title == "Bread"
    store.delete_from(cid, a)
    assert [m.id for m in store.messages(cid)] == [u]
    store.delete(other)
    assert store.conversation(other) is None and store.messages(other) == []


def test_exports_and_model_settings(tmp_path):
    store = Store(tmp_path / "c.sqlite3")
    cid = store.create_conversation("/models/a.gguf", {"seed": 1}, title="Greeting")
    store.add_message(cid, "user", "Hi")
    store.add_message(cid, "assistant", "Hello! ```py\nprint(1)\n```", stats={"tokens": 3})
    md = store.export_markdown(cid)
    assert md.startswith("# Greeting\n") and "**You:**\n\nHi" in md and "print(1)" in md and "`a.gguf`" in md
    data = json.loads(store.export_json(cid))
    assert data["title"] == "Greeting" and data["settings"] == {"seed": 1}
    assert [m["role"] for m in data["messages"]] == ["user", "assistant"]
    assert store.model_settings("/models/a.gguf") is None
    store.save_model_settings("/models/a.gguf", {"temperature": 0.1})
    store.save_model_settings("/models/a.gguf", {"temperature": 0.3})
    assert store.model_settings("/models/a.gguf") == {"temperature": 0.3}


def test_title_from():
    assert title_from("  short  ") == "short"
    assert title_from("word " * 30).endswith("…") and len(title_from("word " * 30)) <= 49
    assert title_from("") == UNTITLED


STREAMER = textwrap.dedent("""
    import sys
    from quantdesk.core.chat.engine import ChatEngine, ChatSettings, ReplyStream
    from quantdesk.core.chat.store import Store
    store = Store(sys.argv[1])
    cid = store.create_conversation(sys.argv[2])
    store.add_message(cid, "user", "Write a long story about a dragon.")
    mid = store.add_message(cid, "assistant", "", complete=False)
    settings = ChatSettings(temperature=0.0, max_tokens=2000, context_length=2048, threads=1)
    engine = ChatEngine()
    engine.load(sys.argv[2], settings)
    stream = ReplyStream()
    stream.listeners.append(store.streaming_writer(mid, every_s=0.25, every_tokens=4))
    stream.listeners.append(lambda text, n: (print("STREAMING", flush=True) if n == 40 else None))
    engine.generate([{"role": "user", "content": "Write a long story about a dragon."}], settings, stream)
    print("FINISHED", flush=True)
""")


def test_killed_app_keeps_the_conversation_and_most_of_the_reply(tmp_path, starter_model):
    db = tmp_path / "c.sqlite3"
    root = Path(__file__).resolve().parents[2]
    proc = subprocess.Popen(
        [sys.executable, "-c", STREAMER, str(db), str(starter_model)],
        cwd=root,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env={**os.environ, "PYTHONPATH": str(root)},
    )
    try:
        line = proc.stdout.readline()
        assert line.strip() == "STREAMING", "the reply did not start streaming"
        time.sleep(0.3)
        proc.kill()  # SIGKILL / TerminateProcess: no clean-up, no atexit, like a crash or a power cut
    finally:
        proc.wait(10)
    store = Store(db)
    conv = store.conversations()[0]
    user, reply = store.messages(conv.id)
    assert user.content.startswith("Write a long story")
    assert not reply.complete, "the reply was still streaming when the app died"
    assert len(reply.content) > 40, "the text streamed so far was saved"


def test_unreadable_database_is_kept_aside_and_a_new_one_started(tmp_path):
    db = tmp_path / "c.sqlite3"
    db.write_bytes(b"this is not a database at all" * 100)
    store = Store(db)
    assert store.moved_aside is not None and store.moved_aside.read_bytes().startswith(b"this is not")
    cid = store.create_conversation()
    assert store.conversation(cid) is not None
