"""Running a job on a terminal: a one-line progress bar on stderr, Ctrl+C cancels cleanly."""

from __future__ import annotations

import shutil
import sys
from typing import TextIO, TypeVar

from quantdesk.core.jobs import Cancelled, Job, Progress, format_progress

T = TypeVar("T")


def run_job(job: Job[T], stream: TextIO | None = None) -> T:
    """Run `job` here, drawing progress on a terminal (plain lines when not a terminal)."""
    stream = stream or sys.stderr
    tty = stream.isatty()
    last = [""]
    # One line, redrawn in place: cut to the terminal's width (a wrapped line cannot be redrawn)
    # and padded with spaces to wipe the previous one. No ANSI codes: the classic Windows console
    # prints them as text.
    width = max(20, shutil.get_terminal_size((80, 24)).columns - 1)

    def draw(p: Progress) -> None:
        line = format_progress(p)
        if tty:
            frac = p.fraction or 0.0
            bar = "█" * int(frac * 24) + "░" * (24 - int(frac * 24))
            stream.write("\r" + f"{bar} {line}"[:width].ljust(width))
            stream.flush()
        elif p.message != last[0]:
            last[0] = p.message
            stream.write(line + "\n")

    try:
        result = job.run(draw)
    except KeyboardInterrupt:
        job.cancel()
        raise
    except Cancelled:
        if tty:
            stream.write("\n")
        raise
    if tty:
        stream.write("\n")
    return result
