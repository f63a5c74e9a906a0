"""Mutations, as lists of small JSON-able operations, so that a case can be stored, replayed and
shrunk (the minimizer drops operations one at a time while the finding stays the same).

Three families, chosen by the input kind:
- bytes: flip a bit, write an interesting integer of 1/2/4/8 bytes (at a known field of the
  format when the seed says where its fields are: GGUF counts, types, lengths, offsets), insert,
  delete, duplicate, truncate;
- json: set a value found by a path to a hostile one (wrong type, 0, -1, 2^32, 1e308, a long or
  escape-laden string, deep nesting), delete or add a key, duplicate a list item;
- text: insert fragments from a dictionary (Jinja syntax for chat templates), delete, duplicate.
Everything takes a random.Random, so a seed gives the same cases on every machine.
"""

from __future__ import annotations

import json
import math
import random
from typing import Any

Op = list[Any]  # ["kind", args...]: JSON-able

INTERESTING_INTS = [
    0, 1, 2, 3, 4, 5, 7, 8, 15, 16, 31, 32, 33, 63, 64, 127, 128, 255, 256, 257, 1023, 1024, 4095, 4096,
    65535, 65536, 2**31 - 1, 2**31, 2**32 - 1, 2**32, 2**53, 2**63 - 1, 2**63, 2**64 - 1,
]  # fmt: skip
HOSTILE_STRINGS = ["", "x", "\n", "a\nb", "\x1b[2J\x1b]0;pwned\x07", "\u202e", "../../etc", "a" * 300, "NaN", "-1"]
HOSTILE_VALUES: list[Any] = [
    None, True, False, 0, 1, -1, 2, 0.5, 2.5, -0.0, 1e308, -1e308, 1e-320, float("inf"), float("nan"),
    2**31, 2**32, 2**53 + 1, 2**63, 2**64, 10**9, 10**30, 32_000, [], [1], [[1]], [None], {}, {"a": 1},
    *HOSTILE_STRINGS,
]  # fmt: skip
NEW_KEYS = ["", "type", "id", "content", "name", "model", "vocab", "text_config", "rope_scaling", "__metadata__"]


# ---- bytes ------------------------------------------------------------------------------------


def byte_ops(
    rng: random.Random,
    data: bytes,
    fields: list[tuple[int, int]],
    hot: int,
    n: int,
    lengths: list[tuple[int, int]] | None = None,
) -> list[Op]:
    """n operations for `data`. fields: (offset, width) of the format's value fields, lengths: of
    its counts, lengths and type tags (changing one breaks the layout, so less often); hot: the
    length of the header, where most mutations go (tensor data rarely matters to a reader)."""
    ops: list[Op] = []
    size = max(1, len(data))
    hot = max(1, min(hot or size, size))

    def offset() -> int:
        return rng.randrange(hot) if rng.random() < 0.85 else rng.randrange(size)

    for _ in range(n):
        r = rng.random()
        if (fields or lengths) and r < 0.5:
            pool = fields if fields and (not lengths or rng.random() < 0.7) else (lengths or [])
            at, width = rng.choice(pool)
            value = rng.choice(INTERESTING_INTS) if rng.random() < 0.8 else rng.getrandbits(8 * width)
            if rng.random() < 0.2:
                value = max(0, value + rng.choice((-1, 1)))
            ops.append(["int", at, width, value % (1 << (8 * width))])
        elif r < 0.6:
            ops.append(["flip", offset(), rng.randrange(8)])
        elif r < 0.7:
            width = rng.choice((1, 2, 4, 8))
            ops.append(["int", offset(), width, rng.choice(INTERESTING_INTS) % (1 << (8 * width))])
        elif r < 0.78:
            ops.append(["insert", offset(), rng.randbytes(rng.choice((1, 4, 8, 17))).hex()])
        elif r < 0.86:
            ops.append(["delete", offset(), rng.choice((1, 4, 8, 64))])
        elif r < 0.93:
            ops.append(["dup", offset(), rng.choice((8, 32, 200)), offset()])
        else:
            ops.append(["truncate", offset() if rng.random() < 0.7 else rng.randrange(size)])
    return ops


def apply_bytes(data: bytes, ops: list[Op]) -> bytes:
    buf = bytearray(data)
    for op in ops:
        kind = op[0]
        if kind == "flip":
            if op[1] < len(buf):
                buf[op[1]] ^= 1 << op[2]
        elif kind == "int":
            at, width, value = op[1], op[2], op[3]
            buf[at : at + width] = value.to_bytes(width, "little")[: max(0, len(buf) - at)]
        elif kind == "insert":
            buf[op[1] : op[1]] = bytes.fromhex(op[2])
        elif kind == "delete":
            del buf[op[1] : op[1] + op[2]]
        elif kind == "dup":
            chunk = buf[op[1] : op[1] + op[2]]
            buf[op[3] : op[3]] = chunk
        elif kind == "truncate":
            del buf[op[1] :]
        elif kind == "nest":  # deep nesting, for JSON text: n opening and closing brackets at a point
            buf[op[1] : op[1]] = (op[3] * op[2] + {"[": "]", "{": "}"}.get(op[3], "") * op[2]).encode()
    return bytes(buf)


# ---- json -------------------------------------------------------------------------------------


def _paths(obj: Any, rng: random.Random) -> list[Any]:
    """A random path into obj (a list of keys and indices), descending with some probability."""
    path: list[Any] = []
    while True:
        if isinstance(obj, dict) and obj and rng.random() < 0.75:
            key = rng.choice(list(obj))
            path.append(key)
            obj = obj[key]
        elif isinstance(obj, list) and obj and rng.random() < 0.75:
            i = rng.randrange(len(obj)) if rng.random() < 0.7 else 0
            path.append(i)
            obj = obj[i]
        else:
            return path


def _get(obj: Any, path: list[Any]) -> Any:
    for p in path:
        obj = obj[p]
    return obj


def _neighbour(rng: random.Random, value: Any) -> Any:
    """A value near the current one: the most likely to pass the first checks and fail later."""
    if isinstance(value, bool):
        return not value
    if isinstance(value, int):
        as_float = float(value) if abs(value) < 1e300 else 1e300
        return rng.choice([0, -value, value + 1, value - 1, value * 2, value * 1000, as_float, str(value)])
    if isinstance(value, float):
        return rng.choice([0.0, -value, value * 1e30, int(value) if math.isfinite(value) else 0, str(value)])
    if isinstance(value, str):
        return rng.choice([value + rng.choice(HOSTILE_STRINGS), value[: len(value) // 2], [value], value * 50])
    if isinstance(value, list):
        return rng.choice([value[:-1], value + value[-1:], [value], value[::-1], {"0": value}])
    if isinstance(value, dict):
        return rng.choice([list(value.values()), [value], {k: None for k in value}])
    return rng.choice(HOSTILE_VALUES)


def json_ops(rng: random.Random, obj: Any, n: int, keys: list[str]) -> list[Op]:
    """n structural operations on a parsed JSON document. keys: names worth adding (the ones the
    readers look for), besides a few generic ones."""
    ops: list[Op] = []
    for _ in range(n):
        path = _paths(obj, rng)
        try:
            current = _get(obj, path)
        except (KeyError, IndexError, TypeError):
            continue
        r = rng.random()
        if r < 0.35:
            ops.append(["set", path, rng.choice(HOSTILE_VALUES)])
        elif r < 0.6:
            ops.append(["set", path, _neighbour(rng, current)])
        elif r < 0.7 and path:
            ops.append(["del", path])
        elif r < 0.85 and isinstance(current, dict):
            ops.append(["set", [*path, rng.choice(keys + NEW_KEYS)], rng.choice(HOSTILE_VALUES)])
        elif isinstance(current, list) and current:
            ops.append(["set", path, current + [rng.choice(current)] * rng.choice((1, 100))])
        else:
            ops.append(["set", path, _neighbour(rng, current)])
        try:  # later operations see the document as it is now
            obj = apply_json(obj, ops[-1:])
        except (KeyError, IndexError, TypeError):
            ops.pop()
    return ops


def apply_json(obj: Any, ops: list[Op]) -> Any:
    obj = json.loads(json.dumps(obj))  # a copy
    for op in ops:
        path = op[1]
        if not path:
            if op[0] == "set":
                obj = json.loads(json.dumps(op[2]))
            continue
        parent = _get(obj, path[:-1]) if len(path) > 1 else obj
        key = path[-1]
        if isinstance(parent, list) and not isinstance(key, int):
            continue
        if isinstance(parent, dict) and not isinstance(key, str):
            continue
        if not isinstance(parent, (dict, list)):
            continue
        if op[0] == "set":
            if isinstance(parent, list) and key >= len(parent):
                continue
            parent[key] = json.loads(json.dumps(op[2]))
        elif op[0] == "del":
            if isinstance(parent, list):
                if key < len(parent):
                    del parent[key]
            else:
                parent.pop(key, None)
    return obj


def text_ops(rng: random.Random, text: str, n: int, fragments: list[str]) -> list[Op]:
    ops: list[Op] = []
    size = max(1, len(text))
    for _ in range(n):
        r = rng.random()
        if r < 0.6:
            ops.append(["tinsert", rng.randrange(size + 1), rng.choice(fragments)])
        elif r < 0.8:
            ops.append(["tdelete", rng.randrange(size), rng.choice((1, 2, 5, 20))])
        else:
            ops.append(["tdup", rng.randrange(size), rng.choice((5, 30)), rng.randrange(size)])
    return ops


def apply_text(text: str, ops: list[Op]) -> str:
    for op in ops:
        if op[0] == "tinsert":
            text = text[: op[1]] + op[2] + text[op[1] :]
        elif op[0] == "tdelete":
            text = text[: op[1]] + text[op[1] + op[2] :]
        elif op[0] == "tdup":
            text = text[: op[3]] + text[op[1] : op[1] + op[2]] + text[op[3] :]
    return text
