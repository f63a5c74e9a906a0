"""Fail the build loudly when a part the app needs at run time did not make it into the bundle.

PyInstaller only warns (in a log few people read) when it cannot find something, and a bundle
without libggml-cpu or the offscreen platform plugin builds "fine" and dies on the user's
machine. This check lists every such part and exits 1 naming each one that is missing.
Usage: python packaging/check_bundle.py [dist/quantdesk | dist/Quantdesk.app]
"""
from __future__ import annotations

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
    need_glob("app/kquant/_kquant*", "our cffi extension (app.kquant._kquant)")
    need_glob("_cffi_backend*", "cffi's runtime (_cffi_backend)")
    need_glob("quantdesk*.*-info", "quantdesk's metadata (app.__version__)")  # .dist-info or .egg-info
    for f in P.llama_lib_files():  # the whole family, in one folder, so they find each other
        need(Path("llama_cpp") / "lib" / f.name, "llama.cpp library", f.stat().st_size)
    for f in P.starter_model_files():
        need(Path(P.STARTER_PACKAGE) / f.name, "starter model", f.stat().st_size)
    resources = P.ROOT / "resources"
    for f in P.resource_files():
        need(Path("resources") / f.relative_to(resources), "resource")
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


def main(argv: list[str]) -> int:
    bundle = Path(argv[0]) if argv else P.DIST / P.BUNDLE_NAME
    found = problems(bundle)
    if found:
        print(f"BUNDLE CHECK FAILED: {len(found)} part(s) missing from {bundle}:", file=sys.stderr)
        for line in found:
            print(f"  - {line}", file=sys.stderr)
        return 1
    print(f"bundle check: {bundle} has the app, Qt plugins, resources, the cffi extension, "
          f"llama.cpp's libraries and the starter model")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
