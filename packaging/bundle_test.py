"""Smoke-test the built bundle and installers the way a user would get them.

    python packaging/bundle_test.py            (`make bundle-test`; release.yml runs it on every OS)

0. check_bundle.py on the bundle: every part present, and llama.cpp built portable (x86-64).
1. `quantdesk selftest` from the bundle in a clean environment: no virtualenv, no PYTHONPATH,
   nothing but PATH, HOME (a fresh temporary one) and QT_QPA_PLATFORM=offscreen, started from a
   temporary folder, so nothing from the source tree or the build machine's Python can be used.
2. The installers, per platform:
   - Linux: when qemu-user is installed (x86-64), the selftest again on an emulated Haswell CPU,
     which a llama.cpp compiled with -march=native on an AVX-512 machine does not survive.
     The .tar.gz is unpacked and its `quantdesk --version` run; the .deb is installed into
     a scratch root with `dpkg --root`, its layout checked, its /usr/bin/quantdesk run, and it is
     removed again. Then, when Xvfb and xdotool are installed, the start-up time to a visible
     window is measured (measure_startup.py).
   - macOS: the .dmg is attached and `quantdesk selftest` runs from the .app inside it.
   - Windows: the installer runs silently into a temporary folder, `quantdesk selftest` runs from
     there, and the uninstaller removes it.
Exit 0 when everything passed; otherwise each failure is printed and the exit code is 1.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import check_bundle  # noqa: E402
import project as P  # noqa: E402

SELFTEST_TIMEOUT_S = 300
failures: list[str] = []


def clean_env(home: Path) -> dict[str, str]:
    """The smallest environment the app may rely on: no virtualenv, no PYTHON*, no LD_*."""
    home.mkdir(parents=True, exist_ok=True)
    if sys.platform == "win32":
        root = os.environ.get("SYSTEMROOT", r"C:\Windows")
        return {
            "SystemRoot": root,
            "WINDIR": root,
            "PATH": f"{root}\\System32;{root}",
            "TEMP": str(home),
            "TMP": str(home),
            "USERPROFILE": str(home),
            "APPDATA": str(home / "AppData" / "Roaming"),
            "LOCALAPPDATA": str(home / "AppData" / "Local"),
            "QT_QPA_PLATFORM": "offscreen",
        }
    return {"PATH": "/usr/bin:/bin", "HOME": str(home), "QT_QPA_PLATFORM": "offscreen"}


def run_clean(
    exe: Path,
    args: list[str],
    label: str,
    timeout: float = SELFTEST_TIMEOUT_S,
    wrapper: tuple[str, ...] = (),
    extra_env: dict[str, str] | None = None,
) -> str | None:
    """Run exe in a clean environment from an empty temporary folder; record a failure if it fails.

    wrapper: a command to run exe under (an emulator); extra_env: variables added to the clean ones.
    """
    with tempfile.TemporaryDirectory(prefix="quantdesk-smoke-") as tmp:
        cmd = [*wrapper, str(exe), *args]
        print(f"   $ (clean env, cwd {tmp}) {' '.join(cmd)}", flush=True)
        try:
            proc = subprocess.run(
                cmd,
                cwd=tmp,
                env={**clean_env(Path(tmp) / "home"), **(extra_env or {})},
                capture_output=True,
                text=True,
                timeout=timeout,
            )
        except subprocess.TimeoutExpired:
            failures.append(f"{label}: no answer within {timeout:.0f} s")
            return None
        except OSError as e:
            failures.append(f"{label}: could not start {exe}: {e}")
            return None
    output = (proc.stdout + proc.stderr).strip()
    shown = "\n".join(line for line in output.splitlines() if "TCG doesn't support" not in line)  # qemu's noise
    print("     " + shown.replace("\n", "\n     "), flush=True)
    if proc.returncode != 0:
        failures.append(f"{label}: exit code {proc.returncode}")
        return None
    return output


def expect_version(exe: Path, label: str) -> None:
    out = run_clean(exe, ["--version"], label, timeout=60)
    want = f"{P.BUNDLE_NAME} {P.project_version()}"
    if out is not None and want not in out:
        failures.append(f"{label}: --version said {out!r}, expected {want!r}")


def step(message: str) -> None:
    print(f"==> {message}", flush=True)


# ----------------------------------------------------------------------------------------- linux


def test_tarball() -> None:
    step("the .tar.gz: unpack and run")
    archives = sorted(P.DIST.glob(f"{P.BUNDLE_NAME}-{P.project_version()}-{P.platform_tag()}.tar.gz"))
    if not archives:
        failures.append("tar.gz: no archive in dist/ (run `make bundle`)")
        return
    with tempfile.TemporaryDirectory(prefix="quantdesk-tar-") as tmp:
        with tarfile.open(archives[0]) as tar:
            if hasattr(tarfile, "data_filter"):  # refuses absolute or escaping links
                tar.extractall(tmp, filter="data")
            else:
                tar.extractall(tmp)
        expect_version(Path(tmp) / P.BUNDLE_NAME / P.BUNDLE_NAME, "tar.gz")


def test_deb() -> None:
    step("the .deb: install into a scratch root with dpkg --root, check, remove")
    debs = sorted(P.DIST.glob(f"{P.BUNDLE_NAME}_{P.project_version()}_*.deb"))
    if not debs:
        failures.append("deb: no .deb in dist/ (run `make bundle`)")
        return
    deb = debs[0]
    fields = subprocess.run(
        ["dpkg-deb", "-f", deb, "Package", "Version", "Architecture", "Depends"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    print("     " + fields.strip().replace("\n", "\n     "))
    if f"Version: {P.project_version()}" not in fields:
        failures.append(f"deb: control has the wrong version (pyproject says {P.project_version()})")
    env = {**os.environ, "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}  # dpkg wants ldconfig on PATH
    with tempfile.TemporaryDirectory(prefix="quantdesk-root-") as tmp:
        root = Path(tmp)
        admin = root / "var" / "lib" / "dpkg"
        for sub in ("info", "updates", "triggers"):
            (admin / sub).mkdir(parents=True)
        (admin / "status").touch()
        (admin / "available").touch()
        dpkg = ["dpkg", f"--root={root}", "--force-not-root", "--force-script-chrootless"]
        # The scratch root has no libc6 or libgl1 packages registered: only Depends may be unmet.
        proc = subprocess.run([*dpkg, "--force-depends", "-i", str(deb)], env=env, capture_output=True, text=True)
        if proc.returncode != 0:
            failures.append(f"deb: dpkg -i into a scratch root failed: {proc.stderr.strip()[-500:]}")
            return
        listed = subprocess.run([*dpkg, "-L", P.BUNDLE_NAME], env=env, capture_output=True, text=True).stdout.split()
        required = [
            f"/opt/{P.BUNDLE_NAME}/{P.BUNDLE_NAME}",
            f"/opt/{P.BUNDLE_NAME}/_internal/llama_cpp/lib/libllama.so",
            f"/usr/bin/{P.BUNDLE_NAME}",
            "/usr/share/applications/quantdesk.desktop",
            "/usr/share/icons/hicolor/48x48/apps/quantdesk.png",
            "/usr/share/icons/hicolor/256x256/apps/quantdesk.png",
            "/usr/share/icons/hicolor/scalable/apps/quantdesk.svg",
            f"/usr/share/doc/{P.BUNDLE_NAME}/copyright",
        ]
        for path in required:
            if path not in listed or not (root / path.lstrip("/")).exists():
                failures.append(f"deb: {path} is not installed")
        exe = root / "usr" / "bin" / P.BUNDLE_NAME
        if exe.is_symlink() and exe.resolve() != (root / "opt" / P.BUNDLE_NAME / P.BUNDLE_NAME).resolve():
            failures.append(f"deb: /usr/bin/{P.BUNDLE_NAME} points to {os.readlink(exe)}")
        problems = check_bundle.problems(root / "opt" / P.BUNDLE_NAME)
        failures.extend(f"deb: {p}" for p in problems)
        desktop = root / "usr" / "share" / "applications" / "quantdesk.desktop"
        if shutil.which("desktop-file-validate") and desktop.exists():
            v = subprocess.run(["desktop-file-validate", str(desktop)], capture_output=True, text=True)
            if v.returncode != 0:
                failures.append(f"deb: the .desktop entry is invalid: {v.stdout.strip()}")
        expect_version(exe, "deb: /usr/bin/quantdesk")  # through the link, as a user types it
        proc = subprocess.run([*dpkg, "-r", P.BUNDLE_NAME], env=env, capture_output=True, text=True)
        if proc.returncode != 0 or (root / "opt" / P.BUNDLE_NAME).exists() or exe.is_symlink():
            failures.append(f"deb: dpkg -r did not remove the package cleanly: {proc.stderr.strip()[-300:]}")
        else:
            print(f"     installed {len(listed)} paths, layout as expected, removed cleanly")


# The oldest CPU a portable llama.cpp (-DGGML_NATIVE=OFF: AVX2, FMA, F16C, BMI2) must run on.
PORTABLE_CPU = "Haswell"


def test_emulated_cpu(bundle: Path) -> None:
    """The bundled selftest on an emulated Haswell CPU (qemu-user): no AVX-512, no AVX-VNNI.

    The direct proof that the bundle runs on users' CPUs and not only on the build machine's: a
    llama.cpp built with -march=native on an AVX-512 machine dies here with "illegal
    instruction". PyInstaller's bootloader re-executes itself once on Linux, and qemu-user would
    run that second process natively, outside the emulated CPU; so the variables the bootloader
    gives its second process are set up front (it then does not restart), and a `--version` run
    under qemu's -strace first shows that no execve leaves the emulator.
    """
    qemu = shutil.which("qemu-x86_64")
    if not (qemu and sys.platform.startswith("linux") and check_bundle.is_x86_64()):
        print("==> emulated CPU: skipped (needs x86-64 Linux and qemu-user: apt-get install qemu-user)")
        return
    version = subprocess.run([qemu, "--version"], capture_output=True, text=True).stdout
    found = re.search(r"version (\d+)\.(\d+)", version)
    if not found or (int(found.group(1)), int(found.group(2))) < (7, 2):  # AVX2 came to qemu's TCG in 7.2
        print(f"==> emulated CPU: skipped (qemu-user 7.2 or newer emulates AVX2; this is {version.strip()[:60]!r})")
        return
    step(f"quantdesk selftest on an emulated {PORTABLE_CPU} CPU (qemu-x86_64 -cpu {PORTABLE_CPU})")
    exe = bundle / P.BUNDLE_NAME
    no_restart = {  # what PyInstaller 6's bootloader sets for its second process
        "_PYI_ARCHIVE_FILE": str(exe),
        "_PYI_PARENT_PROCESS_LEVEL": "-1",
        "LD_LIBRARY_PATH": str(check_bundle.internal_dir(bundle)),
    }
    with tempfile.TemporaryDirectory(prefix="quantdesk-qemu-") as tmp:
        trace = subprocess.run(
            [qemu, "-cpu", PORTABLE_CPU, "-strace", str(exe), "--version"],
            cwd=tmp,
            env={**clean_env(Path(tmp) / "home"), **no_restart},
            capture_output=True,
            text=True,
            errors="replace",
            timeout=120,
        )
    if trace.returncode != 0 or " execve(" in trace.stderr:  # -strace logs the guest's system calls
        failures.append(
            "emulated CPU: `quantdesk --version` under qemu failed or re-executed itself outside "
            "the emulator (if PyInstaller changed how its bootloader restarts, update no_restart "
            f"in bundle_test.py); exit code {trace.returncode}"
        )
        return
    print(f"   `quantdesk --version` under qemu -strace: {trace.stdout.strip()}, no execve: stays emulated")
    run_clean(
        exe,
        ["selftest"],
        f"emulated CPU ({PORTABLE_CPU}): selftest",
        timeout=900,
        wrapper=(qemu, "-cpu", PORTABLE_CPU),
        extra_env=no_restart,
    )


def test_startup() -> None:
    if not (shutil.which("Xvfb") and shutil.which("xdotool")):
        print("==> start-up time: skipped (needs Xvfb and xdotool: apt-get install xvfb xdotool)")
        return
    step("start-up time to a visible window (Xvfb + xdotool)")
    import measure_startup

    try:
        measure_startup.main(["--runs", "3"])
    except SystemExit as e:
        if e.code:
            failures.append(f"start-up: {e.code}")


# ----------------------------------------------------------------------------------- macos, windows


def test_dmg() -> None:
    step("the .dmg: attach, run selftest from the .app inside, detach")
    dmgs = sorted(P.DIST.glob(f"{P.BUNDLE_NAME}-{P.project_version()}-{P.platform_tag()}.dmg"))
    if not dmgs:
        failures.append("dmg: no .dmg in dist/")
        return
    mount = Path(tempfile.mkdtemp(prefix="quantdesk-dmg-"))
    subprocess.run(["hdiutil", "attach", "-nobrowse", "-readonly", "-mountpoint", str(mount), str(dmgs[0])], check=True)
    try:
        app = mount / f"{P.APP_NAME}.app"
        failures.extend(f"dmg: {p}" for p in check_bundle.problems(app))
        run_clean(app / "Contents" / "MacOS" / P.BUNDLE_NAME, ["selftest"], "dmg: selftest")
    finally:
        subprocess.run(["hdiutil", "detach", str(mount)], check=False)


def test_windows_installer() -> None:
    step("the installer: silent install into a temporary folder, selftest, uninstall")
    setups = sorted(P.DIST.glob(f"{P.BUNDLE_NAME}-{P.project_version()}-{P.platform_tag()}-setup.exe"))
    if not setups:
        failures.append("installer: no -setup.exe in dist/")
        return
    target = Path(tempfile.mkdtemp(prefix="quantdesk-install-"))
    subprocess.run(
        [str(setups[0]), "/VERYSILENT", "/SUPPRESSMSGBOXES", "/NORESTART", "/CURRENTUSER", f"/DIR={target}"],
        check=True,
        timeout=600,
    )
    failures.extend(f"installer: {p}" for p in check_bundle.problems(target))
    run_clean(target / f"{P.BUNDLE_NAME}.exe", ["selftest"], "installer: selftest")
    uninstallers = sorted(target.glob("unins*.exe"))
    if not uninstallers:
        failures.append("installer: no uninstaller was installed")
    else:
        subprocess.run(
            [str(uninstallers[0]), "/VERYSILENT", "/SUPPRESSMSGBOXES", "/NORESTART"], check=False, timeout=600
        )


# ------------------------------------------------------------------------------------------ main


def main() -> int:
    bundle = P.DIST / (f"{P.APP_NAME}.app" if sys.platform == "darwin" else P.BUNDLE_NAME)
    step(f"bundle check: {bundle}")
    failures.extend(check_bundle.problems(bundle))
    if not check_bundle.check_portable(check_bundle.internal_dir(bundle) / "llama_cpp" / "lib"):
        failures.append("llama.cpp in the bundle is not a portable build (see above)")
    exe = check_bundle.executables(bundle)[0]
    step("quantdesk selftest from the bundle, in a clean environment")
    run_clean(exe, ["selftest"], "bundle: selftest")
    if sys.platform.startswith("linux"):
        test_emulated_cpu(bundle)
        test_tarball()
        test_deb()
        test_startup()
    elif sys.platform == "darwin":
        test_dmg()
    elif sys.platform == "win32":
        test_windows_installer()
    if failures:
        print(f"BUNDLE TEST FAILED ({len(failures)}):", file=sys.stderr)
        for f in failures:
            print(f"  - {f}", file=sys.stderr)
        return 1
    print("bundle test passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
