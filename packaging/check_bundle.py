"""Fail the build loudly when a part the app needs at run time did not make it into the bundle.

PyInstaller only warns (in a log few people read) when it cannot find something, and a bundle
without libggml-cpu or the offscreen platform plugin builds "fine" and dies on the user's
machine. This check lists every such part and exits 1 naming each one that is missing.

It also fails when the bundled llama.cpp was compiled for the build machine's CPU
(`-march=native`, llama.cpp's default) instead of portable: on x86-64 such a build uses AVX-512 or
AVX-VNNI where the build machine has them, and the bundle dies with "illegal instruction" on most
users' CPUs. See portability_problems(); QUANTDESK_ALLOW_NATIVE_LLAMA=1 lets a developer bundle
their own build anyway.
Usage: python packaging/check_bundle.py [dist/quantdesk | dist/Quantdesk.app]
"""

from __future__ import annotations

import hashlib
import os
import platform
import re
import shutil
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import project as P  # noqa: E402

EXE_SUFFIX = ".exe" if sys.platform == "win32" else ""


def internal_dir(bundle: Path) -> Path:
    """Where PyInstaller put modules, libraries and data: _internal/, or Contents/Frameworks/ in a .app."""
    if bundle.suffix == ".app":
        return bundle / "Contents" / "Frameworks"
    return bundle / "_internal"


def executables(bundle: Path) -> list[Path]:
    if bundle.suffix == ".app":
        return [bundle / "Contents" / "MacOS" / P.BUNDLE_NAME]
    exes = [bundle / (P.BUNDLE_NAME + EXE_SUFFIX)]
    if sys.platform == "win32":
        exes.append(bundle / (P.GUI_EXE_WINDOWS + EXE_SUFFIX))
    return exes


def problems(bundle: Path) -> list[str]:
    """One line per missing part; empty when the bundle is complete."""
    if not bundle.is_dir():
        return [f"{bundle} does not exist (did PyInstaller run?)"]
    inside = internal_dir(bundle)
    missing: list[str] = []

    def need(rel: str | Path, what: str, size: int | None = None) -> None:
        path = inside / rel
        if not path.exists():
            missing.append(f"{what}: {path.relative_to(bundle)} is missing")
        elif size is not None and path.stat().st_size != size:
            missing.append(f"{what}: {path.relative_to(bundle)} has {path.stat().st_size} bytes, expected {size}")

    def need_glob(pattern: str, what: str) -> None:
        if not list(inside.glob(pattern)):
            missing.append(f"{what}: nothing matches {pattern} in {inside.relative_to(bundle)}")

    for exe in executables(bundle):
        if not exe.is_file():
            missing.append(f"executable: {exe.relative_to(bundle)} is missing")
    need_glob("quantdesk/kquant/_kquant*", "our cffi extension (quantdesk.kquant._kquant)")
    need_glob("_cffi_backend*", "cffi's runtime (_cffi_backend)")
    need_glob("quantdesk*.*-info", "quantdesk's metadata (quantdesk.__version__)")  # .dist-info or .egg-info
    for f in P.llama_lib_files():  # the whole family, in one folder, so they find each other
        need(Path("llama_cpp") / "lib" / f.name, "llama.cpp library", f.stat().st_size)
    for f in P.starter_model_files():
        need(Path(P.STARTER_PACKAGE) / f.name, "starter model", f.stat().st_size)
    for f in P.resource_files():
        need(f.relative_to(P.ROOT), "resource")
    plugin_roots = [p for p in inside.glob("**/plugins") if (p / "platforms").is_dir()]
    if not plugin_roots:
        missing.append("Qt plugins: no plugins/platforms folder in the bundle")
    else:
        plugins = plugin_roots[0]
        for folder, stems in P.required_qt_plugins().items():
            have = {p.stem for p in (plugins / folder).glob("*")} if (plugins / folder).is_dir() else set()
            for stem in stems:
                if stem not in have:
                    missing.append(f"Qt plugin: {folder}/{stem} is missing from {plugins.relative_to(bundle)}")
    return missing


# ------------------------------------------------------------------------ llama.cpp portability

ALLOW_NATIVE_ENV = "QUANTDESK_ALLOW_NATIVE_LLAMA"
# What a portable x86-64 build (-DGGML_NATIVE=OFF) turns on: SSE3, SSSE3, AVX, AVX2, F16C, FMA,
# BMI2 -- every Intel CPU since Haswell (2013), every AMD since 2015. Anything in llama.cpp's
# system info beyond that means the library needs a newer CPU than most users have.
_BEYOND_PORTABLE_X86 = re.compile(r"^(AVX512\w*|AVX_VNNI|AMX\w*)$")
# The same, read from the machine code (objdump, AT&T syntax): AVX-512 (zmm registers, the opmask
# registers k0-k7, xmm/ymm 16-31 which only EVEX can encode), AVX-VNNI ({vex} vpdpbusd...) and AMX.
_BEYOND_PORTABLE_ASM = re.compile(
    r"%zmm\d|%k[0-7]\b|%[xy]mm(?:1[6-9]|2\d|3[01])\b|\{vex\}|\b(?:ldtilecfg|tileloadd\w*|tdpb\w+)\b"
)
# Prints llama.cpp's system info from the library given, in a fresh process (a library with the
# same soname already loaded here would be reused) that has no LD_LIBRARY_PATH to load another.
_SYSTEM_INFO = (
    "import ctypes, sys\n"
    "lib = ctypes.CDLL(sys.argv[1])\n"
    "lib.llama_print_system_info.restype = ctypes.c_char_p\n"
    "print(lib.llama_print_system_info().decode('utf-8', 'replace'))\n"
)


def is_x86_64() -> bool:
    return platform.machine().lower() in ("x86_64", "amd64")


def libllama(lib_dir: Path) -> Path | None:
    for name in ("libllama.so", "libllama.dylib", "llama.dll"):
        if (lib_dir / name).exists():
            return lib_dir / name
    return None


def llama_system_info(lib_dir: Path) -> str:
    """llama_print_system_info() of the libllama in lib_dir (not of the one Python would import).

    For the CPU backend it lists the instruction sets the library was compiled for ("AVX512 = 1"
    comes from the compiler's __AVX512F__), whatever CPU it runs on.
    """
    lib = libllama(lib_dir)
    if lib is None:
        raise RuntimeError(f"no libllama in {lib_dir}")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LD_", "DYLD_"))}
    proc = subprocess.run(
        [sys.executable, "-c", _SYSTEM_INFO, str(lib)], env=env, capture_output=True, text=True, timeout=120
    )
    if proc.returncode != 0:
        raise RuntimeError(f"loading {lib.name} failed (exit {proc.returncode}): {proc.stderr.strip()[-300:]}")
    return proc.stdout.strip()


def features_beyond_portable(system_info: str) -> list[str]:
    """x86 instruction-set features the system info reports as compiled in beyond AVX2."""
    on = re.findall(r"([A-Z][A-Z0-9_]*) = 1", system_info)
    return [name for name in on if _BEYOND_PORTABLE_X86.match(name)]


def instructions_beyond_portable(library: Path) -> tuple[int, str] | None:
    """(how many, first example) of AVX-512/AVX-VNNI/AMX instructions in a library; None without objdump.

    Not on Windows: an objdump there is MinGW's, and an MSVC-built DLL may carry the C++ runtime's
    own CPU-dispatched code, which would be a false alarm.
    """
    objdump = shutil.which("objdump")
    if objdump is None or sys.platform == "win32":
        return None
    count, example, function = 0, "", ""
    with subprocess.Popen(
        [objdump, "-d", "--no-show-raw-insn", str(library)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        errors="replace",
    ) as proc:
        assert proc.stdout is not None
        for line in proc.stdout:
            if line.endswith(">:\n"):  # "0000000000015390 <ggml_cpu_fp32_to_bf16@@Base>:"
                function = line[line.find("<") + 1 : line.rfind(">")].split("@")[0]
            elif _BEYOND_PORTABLE_ASM.search(line):
                count += 1
                if not example:  # "  15390:\tvmovdqa64 0x137b4c(%rip),%zmm8   # 14cf00 <...>"
                    example = f"{line.split(chr(9))[-1].split('#')[0].strip()} in {function}"
    return count, example


def portability_problems(lib_dir: Path) -> list[str]:
    """Why the llama.cpp in lib_dir would die with "illegal instruction" on a common x86-64 CPU.

    Two independent looks, both needed to pass: what the library says it was compiled for
    (llama_print_system_info, works on every OS), and the instructions actually in the files
    (objdump, where installed: Linux, or macOS with Xcode's tools; not Windows). Empty on other
    architectures: on arm64 the portable/native question does not arise the same way (Apple
    Silicon builds with Metal; see packaging/README.md).
    """
    if not is_x86_64():
        return []
    found: list[str] = []
    try:
        info = llama_system_info(lib_dir)
    except (RuntimeError, OSError, subprocess.SubprocessError) as e:
        return [f"llama.cpp portability: could not read the system info of {lib_dir}: {e}"]
    beyond = features_beyond_portable(info)
    if beyond:
        found.append(
            f"llama.cpp was compiled for the build machine's CPU ({', '.join(beyond)} = 1 in "
            f"llama_print_system_info), not portable: it dies with 'illegal instruction' on CPUs "
            f"without them. Build llama-cpp-python with CMAKE_ARGS=-DGGML_NATIVE=OFF (make bundle does)."
        )
    seen: set[bytes] = set()  # the wheel holds libfoo.so, .so.0 and .so.0.x.y as identical copies
    for lib in sorted(lib_dir.iterdir(), key=lambda p: (-len(p.name), p.name)):
        if not lib.is_file() or lib.is_symlink() or not P.is_shared_library(lib):
            continue
        digest = hashlib.sha256(lib.read_bytes()).digest()
        if digest in seen:
            continue
        seen.add(digest)
        scan = instructions_beyond_portable(lib)
        if scan is None:
            print("   (no objdump, or Windows: the machine-code scan of llama.cpp is skipped)", flush=True)
            break
        count, example = scan
        if count:
            found.append(
                f"llama.cpp library {lib.name} holds {count} AVX-512/AVX-VNNI/AMX instructions "
                f"(e.g. {example}): not a portable build"
            )
    return found


def main(argv: list[str]) -> int:
    bundle = Path(argv[0]) if argv else P.DIST / P.BUNDLE_NAME
    found = problems(bundle)
    if found:
        print(f"BUNDLE CHECK FAILED: {len(found)} part(s) missing from {bundle}:", file=sys.stderr)
        for line in found:
            print(f"  - {line}", file=sys.stderr)
        return 1
    print(
        f"bundle check: {bundle} has the app, Qt plugins, resources, the cffi extension, "
        f"llama.cpp's libraries and the starter model"
    )
    return 0 if check_portable(internal_dir(bundle) / "llama_cpp" / "lib") else 1


def check_portable(lib_dir: Path) -> bool:
    """Print the verdict on lib_dir's llama.cpp; False when it is not portable and that is not allowed."""
    found = portability_problems(lib_dir)
    if not found:
        print(
            f"llama.cpp check: {lib_dir} is a portable build"
            if is_x86_64()
            else f"llama.cpp check: skipped on {platform.machine()} (x86-64 only)",
            flush=True,
        )
        return True
    allowed = os.environ.get(ALLOW_NATIVE_ENV, "") not in ("", "0")
    head = "WARNING (allowed by" if allowed else "LLAMA.CPP CHECK FAILED (set"
    tail = f"{ALLOW_NATIVE_ENV}=1)" if allowed else f"{ALLOW_NATIVE_ENV}=1 to bundle it anyway, for this machine only)"
    print(f"{head} {tail}: {lib_dir}", file=sys.stderr)
    for line in found:
        print(f"  - {line}", file=sys.stderr)
    return allowed


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
