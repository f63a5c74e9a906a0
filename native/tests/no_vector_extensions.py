"""Fails if the AVX2 kernels use GCC/Clang vector extensions, which MSVC does not have.

GCC and Clang let code add two __m256 values with `+` or read a lane with `v[3]`; MSVC, which
builds the Windows installer, accepts only the intrinsics. Both compilers here accept both, so
this reads Clang's syntax tree of avx2.c (with the kq_lanes_*.h files and kq_compiler.h) and
names every operator applied to a vector value (other than plain assignment) and every lane
subscript in native/'s own files. Run by `make test-portable`.

    python3 native/tests/no_vector_extensions.py [clang]
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

NATIVE = Path(__file__).resolve().parents[1]
LOCATION = re.compile(r"[ <]((?:/|native/)[^:> ]+\.[ch]):(\d+)")
OPERATOR = re.compile(r"(BinaryOperator|UnaryOperator|CompoundAssignOperator) .* '([^']+)'(?: \w+=.*)?$")


def main(argv: list[str]) -> int:
    clang = argv[0] if argv else "clang"
    ast = subprocess.run(
        [
            clang,
            "-std=c11",
            "-DKQ_HAVE_AVX2",
            "-Inative",
            "-Inative/include",
            "-fsyntax-only",
            "-Xclang",
            "-ast-dump",
            "-fno-color-diagnostics",
            "native/avx2.c",
        ],
        cwd=NATIVE.parent,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    where, found = ("", ""), []
    for line in ast.splitlines():
        loc = LOCATION.search(line)
        if loc:
            where = (loc.group(1), loc.group(2))
        elif re.search(r"<line:(\d+)", line):
            where = (where[0], re.search(r"<line:(\d+)", line).group(1))
        if not where[0].startswith("native/"):
            continue  # the compiler's own headers
        op = OPERATOR.search(line)
        if (op and "vector_size" in line and op.group(2) != "=") or "vectorcomponent" in line:
            found.append(f"{where[0]}:{where[1]}: {line.strip()[:140]}")
    for f in found:
        print(f)
    print(f"vector-extension uses in the AVX2 kernels: {len(found)}")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
