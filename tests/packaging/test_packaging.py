"""Fast checks of packaging/ that need no PyInstaller build (the build itself is `make bundle`).

They catch the mistakes that otherwise surface only at release time, on another OS: a spec that
does not parse, icon files Windows or macOS would reject, a .desktop entry or .deb control
template with a typo, a workflow matrix that lost a platform, and a bundle check that stays
quiet about a missing part.
"""

from __future__ import annotations

import configparser
import struct
import sys
from pathlib import Path
from string import Template

import pytest

PACKAGING = Path(__file__).resolve().parents[2] / "packaging"
sys.path.insert(0, str(PACKAGING))

import check_bundle  # noqa: E402
import make_icons  # noqa: E402
import project as P  # noqa: E402


def test_spec_and_scripts_are_valid_python() -> None:
    for path in [PACKAGING / "quantdesk.spec", *PACKAGING.glob("*.py"), *PACKAGING.glob("rthooks/*.py")]:
        compile(path.read_text(encoding="utf-8"), str(path), "exec")


def test_version_comes_from_pyproject() -> None:
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    pyproject = tomllib.loads((P.ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    assert P.project_version() == pyproject["project"]["version"]
    assert "pyinstaller" in " ".join(pyproject["project"]["optional-dependencies"]["bundle"]).lower()


def test_what_the_spec_collects_is_installed() -> None:
    """The same lists the spec and check_bundle use: the llama.cpp family, the model, resources."""
    names = {f.name for f in P.llama_lib_files() if P.is_shared_library(f)}
    assert any("llama" in n for n in names) and any("ggml-base" in n for n in names)
    assert [f.suffix for f in P.starter_model_files()] == [".gguf"]
    assert any(f.name == "style.qss" for f in P.resource_files())


def test_icons_are_well_formed_ico_and_icns() -> None:
    pngs = make_icons.render_pngs(make_icons.SVG)
    assert all(data[:8] == b"\x89PNG\r\n\x1a\n" for data in pngs.values())

    ico = make_icons.ico_bytes(pngs)
    reserved, kind, count = struct.unpack_from("<HHH", ico, 0)
    assert (reserved, kind, count) == (0, 1, len(make_icons.ICO_SIZES))
    for i, size in enumerate(make_icons.ICO_SIZES):
        w, h, _, _, planes, bpp, length, offset = struct.unpack_from("<BBBBHHII", ico, 6 + 16 * i)
        assert (w, h) == ((size, size) if size < 256 else (0, 0)) and (planes, bpp) == (1, 32)
        assert ico[offset : offset + 8] == b"\x89PNG\r\n\x1a\n" and offset + length <= len(ico)

    icns = make_icons.icns_bytes(pngs)
    assert icns[:4] == b"icns" and struct.unpack_from(">I", icns, 4)[0] == len(icns)
    pos, kinds = 8, []
    while pos < len(icns):
        kinds.append(icns[pos : pos + 4])
        pos += struct.unpack_from(">I", icns, pos + 4)[0]
    assert pos == len(icns) and kinds == [k for k, _ in make_icons.ICNS_TYPES]


def test_desktop_entry_launches_the_command() -> None:
    entry = configparser.ConfigParser(interpolation=None)
    entry.optionxform = str  # keys are case-sensitive
    entry.read(PACKAGING / "linux" / "quantdesk.desktop", encoding="utf-8")
    d = entry["Desktop Entry"]
    assert d["Type"] == "Application" and d["Name"] == P.APP_NAME
    assert d["Exec"] == P.BUNDLE_NAME and d["Icon"] == "quantdesk" and d["Terminal"] == "false"
    assert d["Categories"].endswith(";")


def test_deb_control_template_fills_every_field() -> None:
    control = Template((PACKAGING / "linux" / "control.in").read_text()).substitute(
        version="1.2.3", arch="amd64", installed_size=1, depends="libc6", recommends="libwayland-client0"
    )
    fields = dict(line.split(": ", 1) for line in control.splitlines() if line and not line.startswith(" "))
    assert fields["Package"] == "quantdesk" and fields["Version"] == "1.2.3"
    assert {"Architecture", "Maintainer", "Description", "Depends", "Installed-Size"} <= fields.keys()


def test_inno_setup_script_has_start_menu_entry() -> None:
    iss = (PACKAGING / "windows" / "quantdesk.iss").read_text(encoding="utf-8")
    assert '"{group}\\Quantdesk"; Filename: "{app}\\' + P.GUI_EXE_WINDOWS + '.exe"' in iss
    assert "AppVersion={#AppVersion}" in iss


def test_release_workflow_covers_four_platforms() -> None:
    yaml = pytest.importorskip("yaml")
    workflow = yaml.safe_load((P.ROOT / ".github" / "workflows" / "release.yml").read_text(encoding="utf-8"))
    matrix = workflow["jobs"]["build"]["strategy"]["matrix"]["include"]
    assert {m["name"] for m in matrix} == {"linux-x86_64", "windows-x86_64", "macos-arm64", "macos-x86_64"}
    assert all("-DGGML_NATIVE=OFF" in m["cmake_args"] for m in matrix)
    steps = " ".join(str(s.get("run", "")) for s in workflow["jobs"]["build"]["steps"])
    for command in ("pytest", "packaging/build.py", "packaging/bundle_test.py"):
        assert command in steps


def test_bundle_check_names_what_is_missing(tmp_path: Path) -> None:
    assert check_bundle.problems(tmp_path / "nowhere") == [
        f"{tmp_path / 'nowhere'} does not exist (did PyInstaller run?)"
    ]
    found = "\n".join(check_bundle.problems(tmp_path))
    for part in (
        "executable",
        "_kquant",
        "_cffi_backend",
        "llama.cpp library",
        "starter model",
        "resource",
        "Qt plugins",
    ):
        assert part in found


def test_bundle_check_passes_a_complete_layout(tmp_path: Path) -> None:
    """A fake bundle with every required path (sparse files of the right sizes) passes."""
    inside = tmp_path / "_internal"

    def touch(rel: str | Path, size: int = 0) -> None:
        path = inside / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("wb") as f:
            f.truncate(size)

    for exe in check_bundle.executables(tmp_path):
        exe.parent.mkdir(parents=True, exist_ok=True)
        exe.touch()
    touch("quantdesk/kquant/_kquant.abi3.so")
    touch("_cffi_backend.so")
    touch("quantdesk-0.0.0.dist-info/METADATA")  # or quantdesk.egg-info, from an editable install
    for f in P.llama_lib_files():
        touch(Path("llama_cpp/lib") / f.name, f.stat().st_size)
    for f in P.starter_model_files():
        touch(Path(P.STARTER_PACKAGE) / f.name, f.stat().st_size)
    for f in P.resource_files():
        touch(f.relative_to(P.ROOT))
    ext = {"win32": ".dll", "darwin": ".dylib"}.get(sys.platform, ".so")
    for folder, stems in P.required_qt_plugins().items():
        for stem in stems:
            touch(Path("PySide6/Qt/plugins") / folder / (stem + ext))
    assert check_bundle.problems(tmp_path) == []


def test_llama_pin_is_read_from_pyproject() -> None:
    """make bundle builds the portable wheel of exactly the version the tests were run against."""
    from importlib.metadata import version

    assert P.pinned_version("llama-cpp-python") == version("llama-cpp-python")
    assert P.pinned_version("llama_cpp_python") == version("llama-cpp-python")
    with pytest.raises(SystemExit, match="does not pin"):
        P.pinned_version("numpy")  # a range, not a pin


def test_native_llama_features_are_named() -> None:
    portable = "CPU : SSE3 = 1 | SSSE3 = 1 | AVX = 1 | AVX2 = 1 | F16C = 1 | FMA = 1 | BMI2 = 1 | LLAMAFILE = 1 |"
    native = (
        "CPU : SSE3 = 1 | AVX2 = 1 | AVX512 = 1 | AVX512_VBMI = 1 | AVX512_VNNI = 0 | AVX_VNNI = 1 | AMX_INT8 = 1 |"
    )
    assert check_bundle.features_beyond_portable(portable) == []
    assert check_bundle.features_beyond_portable(native) == ["AVX512", "AVX512_VBMI", "AVX_VNNI", "AMX_INT8"]


@pytest.mark.skipif(
    not sys.platform.startswith("linux") or not check_bundle.is_x86_64(),
    reason="builds x86-64 ELF test libraries with gcc",
)
def test_machine_code_scan_finds_avx512(tmp_path: Path) -> None:
    """The objdump scan of the bundled llama.cpp: a library with AVX-512 code is caught, an AVX2 one is not."""
    import shutil
    import subprocess

    if shutil.which("gcc") is None or shutil.which("objdump") is None:
        pytest.skip("needs gcc and objdump")
    src = tmp_path / "k.c"
    src.write_text(
        "#include <immintrin.h>\n"
        "void add(float *a, const float *b) {\n"
        "#ifdef __AVX512F__\n"
        "  _mm512_storeu_ps(a, _mm512_add_ps(_mm512_loadu_ps(a), _mm512_loadu_ps(b)));\n"
        "#else\n"
        "  _mm256_storeu_ps(a, _mm256_add_ps(_mm256_loadu_ps(a), _mm256_loadu_ps(b)));\n"
        "#endif\n}\n",
        encoding="utf-8",
    )
    for flag, expect_found in (("-mavx2", False), ("-mavx512f", True)):
        lib = tmp_path / f"lib{flag[2:]}.so"
        subprocess.run(["gcc", "-O2", "-shared", "-fPIC", flag, str(src), "-o", str(lib)], check=True)
        scan = check_bundle.instructions_beyond_portable(lib)
        assert scan is not None
        count, example = scan
        assert (count > 0) == expect_found, (flag, count, example)
        if expect_found:
            assert "zmm" in example and "add" in example
