"""Time from starting the bundled app to its main window being visible, measured from outside.

Starts a private Xvfb server, launches the app on it in a clean environment (as bundle_test.py
does, but with QT_QPA_PLATFORM=xcb), and polls `xdotool search --onlyvisible --name Quantdesk`
every 20 ms until the window is mapped; then closes the app. Nothing in the app is instrumented,
so the figure includes everything a user waits for: the bootloader unpacking nothing (onedir),
Python start-up, imports, Qt and the first paint's window mapping.

    python packaging/measure_startup.py [--runs 3] [--exe dist/quantdesk/quantdesk] [-- CMD ...]
(`-- CMD ...` times any other command instead, e.g. `-- .venv/bin/python -m quantdesk` for comparison.)
Linux only; needs `apt-get install xvfb xdotool`.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import project as P  # noqa: E402

POLL_S = 0.02


def start_xvfb() -> tuple[subprocess.Popen, str]:
    """A private X server on a display number it picks itself (-displayfd), so runs never collide."""
    read_fd, write_fd = os.pipe()
    xvfb = subprocess.Popen(
        ["Xvfb", "-displayfd", str(write_fd), "-screen", "0", "1440x900x24", "-nolisten", "tcp"],
        pass_fds=(write_fd,),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    os.close(write_fd)
    with os.fdopen(read_fd) as r:
        number = r.readline().strip()
    if not number:
        xvfb.kill()
        raise SystemExit("Xvfb did not start")
    return xvfb, f":{number}"


def window_visible(display: str) -> bool:
    found = subprocess.run(
        ["xdotool", "search", "--onlyvisible", "--name", P.APP_NAME],
        env={"DISPLAY": display, "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
    )
    return found.returncode == 0 and found.stdout.strip() != ""


def time_one(cmd: list[str], display: str, home: Path, timeout: float) -> float:
    env = {"PATH": "/usr/bin:/bin", "HOME": str(home), "DISPLAY": display, "QT_QPA_PLATFORM": "xcb"}
    with tempfile.TemporaryDirectory() as cwd, tempfile.TemporaryFile() as log:
        t0 = time.perf_counter()
        app = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            while True:
                if window_visible(display):
                    return time.perf_counter() - t0
                if app.poll() is not None:
                    log.seek(0)
                    raise SystemExit(
                        f"the app exited with {app.returncode} before showing a window:\n"
                        + log.read().decode(errors="replace")[-2000:]
                    )
                if time.perf_counter() - t0 > timeout:
                    raise SystemExit(f"no visible '{P.APP_NAME}' window after {timeout:.0f} s")
                time.sleep(POLL_S)
        finally:
            app.terminate()
            try:
                app.wait(10)
            except subprocess.TimeoutExpired:
                app.kill()
                app.wait()


def main(argv: list[str]) -> int:
    extra: list[str] = []
    if "--" in argv:
        extra = argv[argv.index("--") + 1 :]
        argv = argv[: argv.index("--")]
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--exe", type=Path, default=P.DIST / P.BUNDLE_NAME / P.BUNDLE_NAME)
    parser.add_argument("--timeout", type=float, default=120)
    args = parser.parse_args(argv)
    for tool in ("Xvfb", "xdotool"):
        if not shutil.which(tool):
            raise SystemExit(f"{tool} is not installed: apt-get install xvfb xdotool")
    cmd = extra or [str(args.exe.resolve())]
    xvfb, display = start_xvfb()
    try:
        with tempfile.TemporaryDirectory(prefix="quantdesk-startup-") as home:
            times = [time_one(cmd, display, Path(home), args.timeout) for _ in range(args.runs)]
    finally:
        xvfb.terminate()
        xvfb.wait()
    shown = ", ".join(f"{t:.2f}" for t in times)
    print(
        f"start-up to a visible window: median {statistics.median(times):.2f} s "
        f"(runs: {shown} s; first run has a fresh HOME) for {' '.join(cmd)}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
