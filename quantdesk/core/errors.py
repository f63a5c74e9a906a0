"""The one error contract: every problem a user can act on is a QuantdeskError.

Its `str()` is written for the user: what went wrong, in their words, and where it helps the one
thing to do about it ("model.gguf is not a GGUF file (it starts with b'PK\\x03\\x04')"). It may be a
clause that a face puts after its own words ("Not quantized: ..."), so it starts in lower case
unless it starts with a name. Every domain error (GGUFError, QuantizeError, HubError, ...) derives
from it, so the faces need no list of error types:

- the CLI's `main` prints `quantdesk: <message>` on one line and exits with status 2;
- the window shows it with `ErrorBanner.show_failure`, without a traceback in the main view.

An OSError is the user's business too (a full disk, a folder they cannot write to):
`describe_os_error` turns one into such a sentence. Anything else reaching a face is our bug:
`user_message` returns None for it, and the face says "internal error" and keeps the details.
"""

from __future__ import annotations

import errno


class QuantdeskError(Exception):
    """A problem the user can understand and act on; `str()` is the sentence shown to them."""


class UsageError(QuantdeskError):
    """An option, argument or request that cannot work as given (a bad flag, a missing file name)."""


# errno -> what it means to someone saving or reading a model. {name} is the file, when known.
_OS_REASONS: dict[int, str] = {
    errno.ENOSPC: "the disk is full{at}: free some space and try again",
    errno.EACCES: "permission denied{at}: pick a file or folder you may use",
    errno.EPERM: "the system does not allow this{at}: pick a file or folder you may use",
    errno.EROFS: "the disk is read-only{at}: pick a folder on another disk",
    errno.ENAMETOOLONG: "the name is too long for this disk{at}: pick a shorter name or folder",
    errno.ENOENT: "no such file or folder{at}",
    errno.EISDIR: "that is a folder, not a file{at}",
    errno.ENOTDIR: "a part of the path is a file, not a folder{at}",
    errno.EEXIST: "that name is already taken{at}",
    errno.EMFILE: "too many files are open in Quantdesk; close some chats or jobs and try again",
    errno.ENFILE: "too many files are open on this computer; close some programs and try again",
    errno.EIO: "the disk reported a read or write error{at}: the disk or the file may be damaged",
    errno.ENOMEM: "there is not enough memory for this; close other programs and try again",
    errno.EFBIG: "{os}{at}: this disk, or a limit set for this program, allows no file this large",
}
_OPTIONAL = {"EDQUOT": "ENOSPC"}  # not on every system: mapped to a sibling above
for _name, _sibling in _OPTIONAL.items():
    if hasattr(errno, _name):
        _OS_REASONS[getattr(errno, _name)] = _OS_REASONS[getattr(errno, _sibling)]
_WINDOWS_DISK_FULL = (39, 112)  # ERROR_HANDLE_DISK_FULL, ERROR_DISK_FULL: not always mapped to ENOSPC


def is_disk_full(e: BaseException) -> bool:
    """True for the OS saying there is no room left (ENOSPC, a quota, Windows' disk-full codes)."""
    if not isinstance(e, OSError):
        return False
    return _OS_REASONS.get(e.errno or -1) is _OS_REASONS[errno.ENOSPC] or (
        getattr(e, "winerror", None) in _WINDOWS_DISK_FULL
    )


def describe_os_error(e: OSError) -> str:
    """An OSError as a sentence for the user: "the disk is full (writing /x/y.gguf): free some space..."."""
    at = f" ({e.filename})" if e.filename else ""
    if is_disk_full(e):
        return _OS_REASONS[errno.ENOSPC].format(at=at, os=e.strerror)
    reason = _OS_REASONS.get(e.errno or -1)
    if reason is not None:
        return reason.format(at=at, os=e.strerror or "the system refused")
    if isinstance(e, (TimeoutError, ConnectionError)):
        return f"the connection failed ({e.strerror or type(e).__name__}){at}"
    return f"{e.strerror or e or type(e).__name__}{at}".strip()


def user_message(e: BaseException) -> str | None:
    """The sentence to show for `e`, or None when it is not the user's problem (our bug)."""
    if isinstance(e, QuantdeskError):
        return str(e)
    if isinstance(e, OSError):
        return describe_os_error(e)
    return None


def explain(e: BaseException) -> str:
    """What to say of any exception: the user's sentence, or for our bug that it is one."""
    message = user_message(e)
    return message if message is not None else f"an internal error ({type(e).__name__}: {e})"


def printable(text: object) -> str:
    """Text from a file (a tensor or entry name, a model's name, a file name) as it may appear in a
    message or on a terminal. Such text can hold a newline, which would split the one-line message,
    or escape sequences that clear the screen or retitle the window; every character that is not
    printable is shown as its Python escape instead (\\n, \\x1b, \\u202e). This is the one place
    that decides how: messages pass names from files through it (or through repr, which escapes the
    same characters the same way)."""
    return "".join(c if c.isprintable() else ascii(c)[1:-1] for c in str(text))


def as_sentence(text: str) -> str:
    """A clause as a sentence on its own: a capital first letter and a full stop."""
    text = text.strip()
    if not text:
        return text
    text = text[0].upper() + text[1:]
    return text if text[-1] in ".!?" else text + "."
