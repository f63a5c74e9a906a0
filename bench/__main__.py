"""`python -m bench`: run every benchmark module that exists, in order, each printing its table.

Each module exposes main(argv) -> int and writes its JSON to bench/out/.
"""

from __future__ import annotations

import importlib
import sys

MODULES = ["bench.kernels", "bench.quantize_file", "bench.chat", "bench.gpu", "bench.server"]


def main() -> int:
    status = 0
    for name in MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as e:
            if e.name == name:
                print(f"[{name}: not written yet]")
                continue
            raise
        print(f"\n=== {name} ===", flush=True)
        status |= int(module.main(sys.argv[1:]) or 0)
    return status


if __name__ == "__main__":
    sys.exit(main())
