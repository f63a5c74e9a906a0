"""Build Quantdesk's bundle and installers. Every step fails loudly; outputs land in dist/.

    python packaging/build.py bundle     icons + PyInstaller onedir (dist/quantdesk) + check
    python packaging/build.py linux      bundle, then the .tar.gz and the .deb   (`make bundle`)
    python packaging/build.py macos      bundle (dist/Quantdesk.app), then the .dmg (hdiutil)
    python packaging/build.py windows    bundle, then the Inno Setup installer (iscc)
    python packaging/build.py tarball | deb | dmg | installer   one packaging step on an existing bundle

Artefacts are named quantdesk-<version>-<platform>... with the version from pyproject.toml.
Every file is written under a temporary name in dist/ and renamed when complete.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path
from string import Template

sys.path.insert(0, str(Path(__file__).resolve().parent))
import check_bundle  # noqa: E402
import make_icons  # noqa: E402
import project as P  # noqa: E402

ONEDIR = P.DIST / P.BUNDLE_NAME
APP = P.DIST / f"{P.APP_NAME}.app"
LINUX = P.PACKAGING / "linux"
HICOLOR_SIZES = (16, 24, 32, 48, 64, 128, 256, 512)
# What the bundle needs from the system on Debian/Ubuntu beyond glibc (whose floor is read from the
# binaries): the OpenGL/EGL stack and the two xcb helpers that PyInstaller did not find to bundle.
# Found with ldd over every library in the bundle (see packaging/README.md, "Linux dependencies").
DEB_DEPENDS = "libgl1, libegl1, libxcb1, libxcb-icccm4, libxcb-keysyms1"
# Only for Qt's native Wayland platform plugin; without them Qt uses X11 (XWayland).
DEB_RECOMMENDS = "libwayland-client0, libwayland-cursor0, libwayland-egl1"


def step(message: str) -> None:
    print(f"==> [{time.strftime('%H:%M:%S')}] {message}", flush=True)


def run(cmd: list[str], **kw) -> None:
    print("   $ " + " ".join(str(c) for c in cmd), flush=True)
    subprocess.run([str(c) for c in cmd], check=True, **kw)


def human(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1024
    return str(n)


def tree_size(path: Path) -> int:
    """Bytes in a folder, each file once (links not followed), as `du` counts apparent size."""
    return sum(p.lstat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())


def publish(tmp: Path, final: Path) -> Path:
    """Rename a finished temporary artefact to its final name and say how big it is."""
    tmp.replace(final)
    print(f"   wrote {final.relative_to(P.ROOT)} ({human(final.stat().st_size)})", flush=True)
    return final


def artefact_stem() -> str:
    return f"{P.BUNDLE_NAME}-{P.project_version()}-{P.platform_tag()}"


# ---------------------------------------------------------------------------------------- bundle


def build_bundle() -> Path:
    # Before PyInstaller's minutes: a llama.cpp compiled with -march=native must not ship.
    step(f"llama.cpp to bundle: {P.llama_lib_dir()}")
    if not check_bundle.check_portable(P.llama_lib_dir()):
        raise SystemExit(1)
    step("icons")
    make_icons.main([])
    step("PyInstaller (onedir)")
    t0 = time.monotonic()
    run(
        [
            sys.executable,
            "-m",
            "PyInstaller",
            "--noconfirm",
            "--log-level",
            "WARN",
            "--distpath",
            P.DIST,
            "--workpath",
            P.BUILD / "pyinstaller",
            P.PACKAGING / "quantdesk.spec",
        ],
        cwd=P.ROOT,
    )
    print(f"   PyInstaller took {time.monotonic() - t0:.0f} s", flush=True)
    bundle = APP if sys.platform == "darwin" else ONEDIR
    if sys.platform.startswith("linux"):
        link_duplicate_libraries(check_bundle.internal_dir(bundle) / "llama_cpp" / "lib")
    step("checking the bundle")
    if check_bundle.main([str(bundle)]) != 0:
        raise SystemExit(1)
    print(f"   bundle: {bundle.relative_to(P.ROOT)} ({human(tree_size(bundle))})", flush=True)
    return bundle


def link_duplicate_libraries(lib: Path) -> None:
    """The wheel holds libfoo.so, libfoo.so.0 and libfoo.so.0.x.y as three identical copies.

    Keep the longest-named one as the file and make the others relative symlinks to it, as an
    installed library looks; saves about 16 MB in every Linux artefact. Loading is unchanged:
    ctypes opens libllama.so, the dynamic linker looks up the soname libggml.so.0, both resolve.
    """
    groups: dict[str, list[Path]] = {}
    for p in sorted(lib.iterdir()):
        if p.is_file() and not p.is_symlink():
            groups.setdefault(hashlib.sha256(p.read_bytes()).hexdigest(), []).append(p)
    for same in groups.values():
        keep = max(same, key=lambda p: len(p.name))
        for p in same:
            if p != keep:
                p.unlink()
                p.symlink_to(keep.name)


# ----------------------------------------------------------------------------------------- linux


def build_tarball() -> Path:
    """dist/quantdesk-<v>-linux-<arch>.tar.gz holding the onedir folder as quantdesk/."""
    step("tar.gz")
    final = P.DIST / f"{artefact_stem()}.tar.gz"
    tmp = final.with_name(final.name + ".part")

    def owned_by_root(info: tarfile.TarInfo) -> tarfile.TarInfo:
        info.uid = info.gid = 0
        info.uname = info.gname = "root"
        return info

    with tarfile.open(tmp, "w:gz", compresslevel=6) as tar:
        tar.add(ONEDIR, arcname=P.BUNDLE_NAME, filter=owned_by_root)
    return publish(tmp, final)


def glibc_floor(bundle: Path) -> str:
    """The newest GLIBC_2.N symbol version any binary in the bundle refers to, e.g. "2.35".

    A bundle built on a newer distribution does not start on an older one; this becomes the
    .deb's libc6 (>= ...) so apt says so instead of the app failing at start.
    """
    newest = 0
    for p in bundle.rglob("*"):
        if p.is_file() and not p.is_symlink() and (p.suffix != ".gguf") and p.stat().st_size > 0:
            with p.open("rb") as f:
                if f.read(4) != b"\x7fELF":
                    continue
                for m in re.finditer(rb"GLIBC_2\.(\d+)", f.read()):
                    newest = max(newest, int(m.group(1)))
    return f"2.{newest}"


def deb_arch() -> str:
    if not shutil.which("dpkg"):
        raise SystemExit("building the .deb needs dpkg and dpkg-deb (Debian/Ubuntu)")
    return subprocess.run(["dpkg", "--print-architecture"], check=True, capture_output=True, text=True).stdout.strip()


def build_deb() -> Path:
    """A .deb: the bundle in /opt/quantdesk, /usr/bin/quantdesk, a menu entry and icons."""
    step(".deb")
    version, arch = P.project_version(), deb_arch()
    icons = P.ICONS_OUT
    if not (icons / "quantdesk.svg").exists():
        make_icons.main([])
    staging = P.BUILD / "deb" / f"{P.BUNDLE_NAME}_{version}_{arch}"
    shutil.rmtree(staging, ignore_errors=True)
    # Hard links, not copies: the staging tree costs no disk space and no time.
    shutil.copytree(ONEDIR, staging / "opt" / P.BUNDLE_NAME, symlinks=True, copy_function=os.link)
    (staging / "usr" / "bin").mkdir(parents=True)
    # Relative, so the link also works inside a scratch root (dpkg --root, dpkg -x).
    (staging / "usr" / "bin" / P.BUNDLE_NAME).symlink_to(Path("..", "..", "opt", P.BUNDLE_NAME, P.BUNDLE_NAME))
    share = staging / "usr" / "share"
    (share / "applications").mkdir(parents=True)
    shutil.copy2(LINUX / "quantdesk.desktop", share / "applications" / "quantdesk.desktop")
    for size in HICOLOR_SIZES:
        folder = share / "icons" / "hicolor" / f"{size}x{size}" / "apps"
        folder.mkdir(parents=True)
        shutil.copy2(icons / f"quantdesk-{size}.png", folder / "quantdesk.png")
    (share / "icons" / "hicolor" / "scalable" / "apps").mkdir(parents=True)
    shutil.copy2(icons / "quantdesk.svg", share / "icons" / "hicolor" / "scalable" / "apps" / "quantdesk.svg")
    (share / "doc" / P.BUNDLE_NAME).mkdir(parents=True)
    (share / "doc" / P.BUNDLE_NAME / "copyright").write_text(
        "Quantdesk is released under the MIT license.\n"
        "It bundles Python, Qt (PySide6, LGPLv3), llama.cpp (MIT) and SmolLM2-135M-Instruct (Apache-2.0).\n"
    )
    control = Template((LINUX / "control.in").read_text()).substitute(
        version=version,
        arch=arch,
        installed_size=(tree_size(staging) + 1023) // 1024,  # KiB, as dpkg wants
        depends=f"libc6 (>= {glibc_floor(ONEDIR)}), {DEB_DEPENDS}",
        recommends=DEB_RECOMMENDS,
    )
    (staging / "DEBIAN").mkdir(mode=0o755)
    (staging / "DEBIAN" / "control").write_text(control)
    final = P.DIST / f"{P.BUNDLE_NAME}_{version}_{arch}.deb"
    tmp = final.with_name(final.name + ".part")
    run(["dpkg-deb", "--root-owner-group", "-Zxz", "--build", staging, tmp])
    shutil.rmtree(staging)
    return publish(tmp, final)


# ----------------------------------------------------------------------------------------- macos


def build_dmg() -> Path:
    """dist/quantdesk-<v>-macos-<arch>.dmg: Quantdesk.app and a link to /Applications."""
    step(".dmg")
    if not APP.is_dir():
        raise SystemExit(f"{APP} is missing: build the bundle first")
    final = P.DIST / f"{artefact_stem()}.dmg"
    tmp = final.with_name(final.stem + ".part.dmg")  # hdiutil insists on the .dmg suffix
    with tempfile.TemporaryDirectory() as stage:
        run(["ditto", APP, Path(stage) / APP.name])  # ditto keeps the .app's symlinks and signatures
        (Path(stage) / "Applications").symlink_to("/Applications")
        run(
            [
                "hdiutil",
                "create",
                "-volname",
                f"{P.APP_NAME} {P.project_version()}",
                "-srcfolder",
                stage,
                "-fs",
                "HFS+",
                "-format",
                "UDZO",
                "-ov",
                tmp,
            ]
        )
    return publish(tmp, final)


# --------------------------------------------------------------------------------------- windows


def find_iscc() -> str:
    found = shutil.which("iscc")
    if found:
        return found
    for base in (os.environ.get("PROGRAMFILES(X86)"), os.environ.get("PROGRAMFILES")):
        if base and (Path(base) / "Inno Setup 6" / "ISCC.exe").exists():
            return str(Path(base) / "Inno Setup 6" / "ISCC.exe")
    raise SystemExit("Inno Setup 6 (iscc) is not installed: https://jrsoftware.org/isinfo.php")


def build_installer() -> Path:
    """dist/quantdesk-<v>-windows-x86_64-setup.exe, built by Inno Setup from windows/quantdesk.iss."""
    step("Inno Setup installer")
    if not ONEDIR.is_dir():
        raise SystemExit(f"{ONEDIR} is missing: build the bundle first")
    base = f"{artefact_stem()}-setup"
    run(
        [
            find_iscc(),
            f"/DAppVersion={P.project_version()}",
            f"/DSourceDir={ONEDIR}",
            f"/DOutputDir={P.DIST}",
            f"/DOutputBase={base}.part",
            f"/DIconFile={P.ICONS_OUT / 'quantdesk.ico'}",
            P.PACKAGING / "windows" / "quantdesk.iss",
        ]
    )
    return publish(P.DIST / f"{base}.part.exe", P.DIST / f"{base}.exe")


# ------------------------------------------------------------------------------------------ main

STEPS = {
    "bundle": lambda: [build_bundle()],
    "linux": lambda: [build_bundle(), build_tarball(), build_deb()],
    "macos": lambda: [build_bundle(), build_dmg()],
    "windows": lambda: [build_bundle(), build_installer()],
    "tarball": lambda: [build_tarball()],
    "deb": lambda: [build_deb()],
    "dmg": lambda: [build_dmg()],
    "installer": lambda: [build_installer()],
}


def main(argv: list[str]) -> int:
    if len(argv) != 1 or argv[0] not in STEPS:
        print(__doc__, file=sys.stderr)
        return 2
    t0 = time.monotonic()
    outputs = STEPS[argv[0]]()
    step(f"done in {time.monotonic() - t0:.0f} s")
    for out in outputs:
        size = tree_size(out) if out.is_dir() else out.stat().st_size
        print(f"   {out.relative_to(P.ROOT)}  {human(size)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
