"""The one error contract: every domain error is a QuantdeskError whose text is for the user, an
OSError becomes a sentence, the CLI says either in one line with exit 2, and anything else is
called what it is, an internal error."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
from pathlib import Path

import pytest

from quantdesk.core.chat.engine import ChatError
from quantdesk.core.convert.errors import ConvertError
from quantdesk.core.errors import (
    QuantdeskError,
    UsageError,
    as_sentence,
    describe_os_error,
    explain,
    is_disk_full,
    user_message,
)
from quantdesk.core.gguf.index import GGUFError
from quantdesk.core.hub.client import GatedRepoError, HubError
from quantdesk.core.hub.downloads import DownloadError, VerificationError
from quantdesk.core.lab.ladder import LabError
from quantdesk.core.library import LibraryError
from quantdesk.core.quantize.imatrix import ImatrixError
from quantdesk.core.quantize.plan import PlanError
from quantdesk.core.quantize.run import QuantizeError

ROOT = Path(__file__).resolve().parents[2]
DOMAIN_ERRORS = [
    ChatError,
    ConvertError,
    DownloadError,
    VerificationError,
    GGUFError,
    HubError,
    GatedRepoError,
    ImatrixError,
    LabError,
    LibraryError,
    PlanError,
    QuantizeError,
    UsageError,
]


@pytest.mark.parametrize("cls", DOMAIN_ERRORS, ids=lambda c: c.__name__)
def test_every_domain_error_is_a_quantdesk_error(cls: type[Exception]) -> None:
    assert issubclass(cls, QuantdeskError)
    assert user_message(cls("model.gguf is not a GGUF file")) == "model.gguf is not a GGUF file"


def test_os_errors_become_sentences_for_the_user(tmp_path: Path) -> None:
    full = OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), "/models/out.gguf")
    assert is_disk_full(full)
    assert describe_os_error(full) == "the disk is full (/models/out.gguf): free some space and try again"
    denied = PermissionError(errno.EACCES, os.strerror(errno.EACCES), "/x")
    assert describe_os_error(denied).startswith("permission denied (/x)")
    assert "read-only" in describe_os_error(OSError(errno.EROFS, "Read-only file system", "/mnt/ro/a"))
    # A real one from the OS: a name longer than the file system allows.
    with pytest.raises(OSError) as long_name:
        (tmp_path / ("x" * 300)).write_bytes(b"")
    assert "name is too long" in describe_os_error(long_name.value)
    assert not is_disk_full(long_name.value) and not is_disk_full(ValueError("no"))
    # An errno we have no words for still says what the OS said, and where.
    assert describe_os_error(OSError(errno.EXDEV, "Invalid cross-device link", "/a")) == (
        "Invalid cross-device link (/a)"
    )


def test_our_bugs_are_not_dressed_as_the_users_problem() -> None:
    assert user_message(ZeroDivisionError("division by zero")) is None
    assert explain(ZeroDivisionError("division by zero")) == "an internal error (ZeroDivisionError: division by zero)"
    assert explain(GGUFError("not a GGUF file")) == "not a GGUF file"
    assert as_sentence("the disk is full") == "The disk is full."
    assert as_sentence("Done!") == "Done!"


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "quantdesk", *args], cwd=ROOT, capture_output=True, text=True, timeout=120
    )


def test_the_cli_says_a_domain_error_in_one_line_with_exit_2(tmp_path: Path) -> None:
    junk = tmp_path / "junk.gguf"
    junk.write_bytes(b"PK\x03\x04 not a model")
    r = _cli("info", str(junk))
    assert r.returncode == 2 and r.stdout == ""
    assert r.stderr.startswith("quantdesk: ") and r.stderr.count("\n") == 1 and "Traceback" not in r.stderr


def test_the_cli_says_an_os_error_in_one_line_with_exit_2(tmp_path: Path, starter_model: Path) -> None:
    r = _cli("quantize", str(starter_model), str(tmp_path / ("x" * 300 + ".gguf")), "--type", "Q8_0")
    assert r.returncode == 2, r.stderr
    *progress, last = r.stderr.splitlines()  # progress lines ("Checking the source"), then the one error line
    assert last.startswith("quantdesk: ") and "too long" in last and "Traceback" not in r.stderr


def test_a_bad_option_is_a_usage_error(tmp_path: Path, starter_model: Path) -> None:
    r = _cli("quantize", str(starter_model), str(tmp_path / "o.gguf"), "--type", "Q8_0", "--threads", "0")
    assert (r.returncode, r.stderr) == (2, "quantdesk: --threads must be at least 1\n")


def test_printable_escapes_what_a_terminal_would_act_on() -> None:
    """The one function every message passes names from files through: newlines, escape sequences
    and bidirectional overrides are shown as Python escapes; ordinary text, accents included, is kept."""
    from quantdesk.core.errors import printable

    assert printable("blk.0.\x1b[2J\nq\u202eweight\x00") == "blk.0.\\x1b[2J\\nq\\u202eweight\\x00"
    assert printable("Modèle 日本") == "Modèle 日本"
    assert printable(3) == "3"
